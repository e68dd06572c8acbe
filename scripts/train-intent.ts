/**
 * Trains the local intent classifier from data/intent/dataset.jsonl.
 *
 *   npm run intent:train               # train, report, write src/domain/stages/intent/intent-model.json
 *   npm run intent:train -- --dry-run  # train and report only
 *   npm run intent:train -- --show-cv-errors   # also list cross-validation mistakes (train split only)
 *
 * 1. Seeded stratified split: 80% train, 20% held-out test (the test split is never used to choose
 *    anything).
 * 2. 5-fold cross-validation on the train split picks the L2 strength and the weight of the lexicon
 *    features, and its out-of-fold logits fit the softmax temperature (calibration).
 * 3. The final model is trained on the whole train split, its weights rounded for storage, and the
 *    stored model is evaluated once on the test split; that accuracy goes into the metadata.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { INTENT_CATEGORIES, type IntentCategory } from '../src/domain/stages/types.js';
import {
  SPLIT_SEED,
  TEST_FRACTION,
  datasetHash,
  evaluate,
  parseDataset,
  round4,
  stratifiedFolds,
  stratifiedSplit,
  type Evaluation,
  type LabelledExample,
} from '../src/domain/stages/intent/dataset.js';
import {
  DEFAULT_TRAIN_OPTIONS,
  MODEL_FORMAT,
  MODEL_VERSION,
  argmax,
  fitTemperature,
  loadModel,
  logits,
  parseModelFile,
  predict,
  trainSoftmax,
  type IntentModelFile,
  type TrainOptions,
} from '../src/domain/stages/intent/intent-model.js';
import {
  DEFAULT_FEATURE_CONFIG,
  buildVocabulary,
  extractFeatures,
  vectorize,
  type FeatureConfig,
} from '../src/domain/stages/intent/text-features.js';

const DATASET_URL = new URL('../data/intent/dataset.jsonl', import.meta.url);
const MODEL_URL = new URL('../src/domain/stages/intent/intent-model.json', import.meta.url);
const FOLDS = 5;
const L2_GRID = [3e-5, 1e-4, 3e-4];
const LEXICON_WEIGHT_GRID = [0.5, 0.75, 1];
const MIN_DOC_FREQ = 2;
const WEIGHT_DECIMALS = 4;

interface Fitted {
  vocabulary: string[];
  index: Map<string, number>;
  weights: Float64Array[];
  bias: Float64Array;
}

function fit(train: readonly LabelledExample[], config: FeatureConfig, minDocFreq: number, options: TrainOptions): Fitted {
  const vocabulary = buildVocabulary(
    train.map((e) => e.text),
    config,
    minDocFreq,
  );
  const index = new Map(vocabulary.map((f, i) => [f, i]));
  const xs = train.map((e) => vectorize(extractFeatures(e.text, config), index));
  const ys = train.map((e) => INTENT_CATEGORIES.indexOf(e.label));
  const { weights, bias } = trainSoftmax(xs, ys, vocabulary.length, INTENT_CATEGORIES.length, options);
  return { vocabulary, index, weights, bias };
}

function fittedLogits(model: Fitted, config: FeatureConfig, text: string): number[] {
  return logits(model.weights, model.bias, vectorize(extractFeatures(text, config), model.index));
}

interface CvResult {
  accuracy: number;
  outOfFoldLogits: number[][];
  errors: Array<{ text: string; label: IntentCategory; predicted: IntentCategory }>;
}

function crossValidate(train: readonly LabelledExample[], config: FeatureConfig, minDocFreq: number, options: TrainOptions): CvResult {
  const folds = stratifiedFolds(train, FOLDS, SPLIT_SEED);
  const outOfFoldLogits: number[][] = new Array<number[]>(train.length);
  for (let f = 0; f < FOLDS; f++) {
    const model = fit(
      train.filter((_, i) => folds[i] !== f),
      config,
      minDocFreq,
      options,
    );
    train.forEach((e, i) => {
      if (folds[i] === f) outOfFoldLogits[i] = fittedLogits(model, config, e.text);
    });
  }
  const errors: CvResult['errors'] = [];
  let correct = 0;
  train.forEach((e, i) => {
    const predicted = INTENT_CATEGORIES[argmax(outOfFoldLogits[i]!)]!;
    if (predicted === e.label) correct += 1;
    else errors.push({ text: e.text, label: e.label, predicted });
  });
  return { accuracy: correct / train.length, outOfFoldLogits, errors };
}

/** Expected calibration error over equal-width confidence bins. */
function expectedCalibrationError(confidences: readonly number[], correct: readonly boolean[], bins = 10): number {
  let total = 0;
  for (let b = 0; b < bins; b++) {
    const members = confidences.flatMap((c, i) => (Math.min(bins - 1, Math.floor(c * bins)) === b ? [i] : []));
    if (members.length === 0) continue;
    const accuracy = members.filter((i) => correct[i]).length / members.length;
    const confidence = members.reduce((s, i) => s + confidences[i]!, 0) / members.length;
    total += (members.length / confidences.length) * Math.abs(accuracy - confidence);
  }
  return total;
}

function printEvaluation(title: string, evaluation: Evaluation): void {
  console.log(`\n${title}: accuracy ${evaluation.accuracy.toFixed(4)} (n=${evaluation.n})`);
  console.log(`${'category'.padEnd(18)}${'precision'.padStart(10)}${'recall'.padStart(10)}${'f1'.padStart(10)}${'support'.padStart(9)}`);
  for (const c of INTENT_CATEGORIES) {
    const m = evaluation.perClass[c];
    console.log(
      `${c.padEnd(18)}${m.precision.toFixed(3).padStart(10)}${m.recall.toFixed(3).padStart(10)}${m.f1.toFixed(3).padStart(10)}${String(m.support).padStart(9)}`,
    );
  }
  console.log('\nconfusion (rows = actual, columns = predicted):');
  const abbrev = (c: string): string => c.slice(0, 7);
  console.log(`${''.padEnd(18)}${INTENT_CATEGORIES.map((c) => abbrev(c).padStart(8)).join('')}`);
  for (const a of INTENT_CATEGORIES) {
    console.log(`${a.padEnd(18)}${INTENT_CATEGORIES.map((p) => String(evaluation.confusion[a][p]).padStart(8)).join('')}`);
  }
}

function main(): void {
  const args = new Set(process.argv.slice(2));
  const dryRun = args.has('--dry-run');
  const showCvErrors = args.has('--show-cv-errors');

  const examples = parseDataset(readFileSync(DATASET_URL, 'utf8'));
  const { train, test } = stratifiedSplit(examples, SPLIT_SEED, TEST_FRACTION);
  const counts = INTENT_CATEGORIES.map((c) => `${c}=${examples.filter((e) => e.label === c).length}`).join(' ');
  console.log(`dataset: ${examples.length} examples (${counts})`);
  console.log(`split: seed ${SPLIT_SEED}, train ${train.length}, test ${test.length}`);

  let best: { l2: number; config: FeatureConfig; cv: CvResult } | undefined;
  for (const lexiconWeight of LEXICON_WEIGHT_GRID) {
    const config: FeatureConfig = { ...DEFAULT_FEATURE_CONFIG, lexiconWeight };
    for (const l2 of L2_GRID) {
      const cv = crossValidate(train, config, MIN_DOC_FREQ, { ...DEFAULT_TRAIN_OPTIONS, l2 });
      console.log(`cv: l2=${l2} lexiconWeight=${lexiconWeight} accuracy=${cv.accuracy.toFixed(4)}`);
      if (!best || cv.accuracy > best.cv.accuracy) best = { l2, config, cv };
    }
  }
  if (!best) throw new Error('empty hyper-parameter grid');
  const { config } = best;
  const temperature = fitTemperature(
    best.cv.outOfFoldLogits,
    train.map((e) => INTENT_CATEGORIES.indexOf(e.label)),
  );
  console.log(`chosen: l2=${best.l2} lexiconWeight=${config.lexiconWeight} (cv accuracy ${best.cv.accuracy.toFixed(4)}), temperature=${temperature}`);
  if (showCvErrors) {
    console.log('\ncross-validation mistakes (train split):');
    for (const e of best.cv.errors) console.log(`  [${e.label} → ${e.predicted}] ${e.text}`);
  }

  const options: TrainOptions = { ...DEFAULT_TRAIN_OPTIONS, l2: best.l2 };
  const final = fit(train, config, MIN_DOC_FREQ, options);
  const factor = 10 ** WEIGHT_DECIMALS;
  const roundWeight = (v: number): number => Math.round(v * factor) / factor || 0;

  const file: IntentModelFile = {
    format: MODEL_FORMAT,
    version: MODEL_VERSION,
    labels: [...INTENT_CATEGORIES],
    features: config,
    temperature,
    vocabulary: final.vocabulary,
    weights: final.weights.map((row) => Array.from(row, roundWeight)),
    bias: Array.from(final.bias, roundWeight),
    metadata: {
      splitSeed: SPLIT_SEED,
      testFraction: TEST_FRACTION,
      trainSize: train.length,
      testSize: test.length,
      heldOutAccuracy: 0,
      perClass: {} as IntentModelFile['metadata']['perClass'],
      crossValidationAccuracy: round4(best.cv.accuracy),
      l2: best.l2,
      minDocFreq: MIN_DOC_FREQ,
      datasetSha256: datasetHash(examples),
    },
  };

  // Evaluate exactly what gets stored: serialise, parse back, then predict.
  const stored = loadModel(parseModelFile(JSON.parse(JSON.stringify(file))));
  const predictions = test.map((e) => predict(stored, e.text));
  const evaluation = evaluate(
    test.map((e) => e.label),
    predictions.map((p) => p.label),
  );
  printEvaluation('held-out test', evaluation);
  const calibration = expectedCalibrationError(
    predictions.map((p) => p.confidence),
    predictions.map((p, i) => p.label === test[i]!.label),
  );
  const meanConfidence = predictions.reduce((s, p) => s + p.confidence, 0) / predictions.length;
  console.log(`\ncalibration on the test split: mean confidence ${meanConfidence.toFixed(4)}, ECE (10 bins) ${calibration.toFixed(4)}`);
  file.metadata.heldOutAccuracy = evaluation.accuracy;
  file.metadata.perClass = evaluation.perClass;

  const json = `${JSON.stringify(file)}\n`;
  console.log(`\nmodel: ${final.vocabulary.length} features, ${(json.length / 1024).toFixed(0)} KiB`);
  if (dryRun) {
    console.log('dry run: model not written');
    return;
  }
  writeFileSync(MODEL_URL, json);
  console.log(`wrote ${MODEL_URL.pathname}`);
}

main();
