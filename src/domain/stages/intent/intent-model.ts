/**
 * Multinomial logistic regression (softmax) over sparse text features, with temperature scaling.
 * Training and inference both live here and in text-features.ts, used by the trainer script and
 * the runtime classifier alike.
 */
import { INTENT_CATEGORIES, type IntentCategory } from '../types.js';
import { DEFAULT_FEATURE_CONFIG, extractFeatures, vectorize, type FeatureConfig, type SparseVector } from './text-features.js';

export const MODEL_FORMAT = 'honeyjar-intent-softmax';
export const MODEL_VERSION = 1;

export interface ClassMetrics {
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface IntentModelMetadata {
  /** Seed of the stratified train/test split (and of the cross-validation folds). */
  splitSeed: number;
  testFraction: number;
  trainSize: number;
  testSize: number;
  /** Accuracy of this very model (as stored, rounded weights) on the held-out test split. */
  heldOutAccuracy: number;
  perClass: Record<IntentCategory, ClassMetrics>;
  /** Mean accuracy of the chosen settings in cross-validation on the train split. */
  crossValidationAccuracy: number;
  l2: number;
  minDocFreq: number;
  /** sha256 of the dataset's (text, label) pairs, to detect a model that is out of date. */
  datasetSha256: string;
}

export interface IntentModelFile {
  format: typeof MODEL_FORMAT;
  version: typeof MODEL_VERSION;
  labels: IntentCategory[];
  features: FeatureConfig;
  /** Logits are divided by this before the softmax; fitted on out-of-fold predictions. */
  temperature: number;
  vocabulary: string[];
  /** weights[label][feature] */
  weights: number[][];
  bias: number[];
  metadata: IntentModelMetadata;
}

/** A model ready for inference: the file plus a feature → index map. */
export interface IntentModel {
  file: IntentModelFile;
  index: ReadonlyMap<string, number>;
}

export interface Prediction {
  label: IntentCategory;
  confidence: number;
  probabilities: number[];
}

export function loadModel(file: IntentModelFile): IntentModel {
  return { file, index: new Map(file.vocabulary.map((feature, i) => [feature, i])) };
}

/** Raw (untempered) logits for a sparse vector. */
export function logits(weights: ArrayLike<number>[], bias: ArrayLike<number>, x: SparseVector): number[] {
  const out: number[] = [];
  for (let k = 0; k < weights.length; k++) {
    const w = weights[k]!;
    let z = bias[k]!;
    for (let j = 0; j < x.indices.length; j++) z += w[x.indices[j]!]! * x.values[j]!;
    out.push(z);
  }
  return out;
}

export function softmax(z: readonly number[], temperature = 1): number[] {
  let max = -Infinity;
  for (const v of z) if (v > max) max = v;
  const exps = z.map((v) => Math.exp((v - max) / temperature));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

export function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

export function predict(model: IntentModel, text: string): Prediction {
  const x = vectorize(extractFeatures(text, model.file.features), model.index);
  const probabilities = softmax(logits(model.file.weights, model.file.bias, x), model.file.temperature);
  const best = argmax(probabilities);
  return { label: model.file.labels[best]!, confidence: probabilities[best]!, probabilities };
}

// ---------------------------------------------------------------------------------------------
// Training

export interface TrainOptions {
  l2: number;
  iterations: number;
  learningRate: number;
}

export const DEFAULT_TRAIN_OPTIONS: TrainOptions = { l2: 1e-4, iterations: 250, learningRate: 0.1 };

export interface TrainedWeights {
  weights: Float64Array[];
  bias: Float64Array;
}

/**
 * Minimises mean cross-entropy + l2/2·‖W‖² (bias unregularised) with full-batch Adam. The
 * objective is convex and the procedure has no randomness, so the result is deterministic.
 */
export function trainSoftmax(
  xs: readonly SparseVector[],
  ys: readonly number[],
  dim: number,
  classes: number,
  options: TrainOptions = DEFAULT_TRAIN_OPTIONS,
): TrainedWeights {
  const weights = Array.from({ length: classes }, () => new Float64Array(dim));
  const bias = new Float64Array(classes);
  const mW = Array.from({ length: classes }, () => new Float64Array(dim));
  const vW = Array.from({ length: classes }, () => new Float64Array(dim));
  const mB = new Float64Array(classes);
  const vB = new Float64Array(classes);
  const gW = Array.from({ length: classes }, () => new Float64Array(dim));
  const gB = new Float64Array(classes);
  const beta1 = 0.9;
  const beta2 = 0.999;
  const eps = 1e-8;
  const n = xs.length;

  for (let t = 1; t <= options.iterations; t++) {
    for (let k = 0; k < classes; k++) {
      const g = gW[k]!;
      const w = weights[k]!;
      for (let j = 0; j < dim; j++) g[j] = options.l2 * w[j]!;
      gB[k] = 0;
    }
    for (let i = 0; i < n; i++) {
      const x = xs[i]!;
      const p = softmax(logits(weights, bias, x));
      for (let k = 0; k < classes; k++) {
        const err = (p[k]! - (ys[i] === k ? 1 : 0)) / n;
        if (err === 0) continue;
        const g = gW[k]!;
        for (let j = 0; j < x.indices.length; j++) g[x.indices[j]!]! += err * x.values[j]!;
        gB[k]! += err;
      }
    }
    const lr = options.learningRate;
    const c1 = 1 - beta1 ** t;
    const c2 = 1 - beta2 ** t;
    for (let k = 0; k < classes; k++) {
      const w = weights[k]!;
      const g = gW[k]!;
      const m = mW[k]!;
      const v = vW[k]!;
      for (let j = 0; j < dim; j++) {
        const gj = g[j]!;
        m[j] = beta1 * m[j]! + (1 - beta1) * gj;
        v[j] = beta2 * v[j]! + (1 - beta2) * gj * gj;
        w[j]! -= (lr * (m[j]! / c1)) / (Math.sqrt(v[j]! / c2) + eps);
      }
      const gb = gB[k]!;
      mB[k] = beta1 * mB[k]! + (1 - beta1) * gb;
      vB[k] = beta2 * vB[k]! + (1 - beta2) * gb * gb;
      bias[k]! -= (lr * (mB[k]! / c1)) / (Math.sqrt(vB[k]! / c2) + eps);
    }
  }
  return { weights, bias };
}

/**
 * Fits the softmax temperature that minimises the negative log-likelihood of held-out logits
 * (a one-parameter calibration; it never changes which class wins).
 */
export function fitTemperature(heldOutLogits: readonly number[][], ys: readonly number[]): number {
  const nll = (temperature: number): number => {
    let total = 0;
    for (let i = 0; i < heldOutLogits.length; i++) {
      const p = softmax(heldOutLogits[i]!, temperature);
      total -= Math.log(Math.max(p[ys[i]!]!, 1e-12));
    }
    return total / Math.max(1, heldOutLogits.length);
  };
  let best = 1;
  let bestLoss = nll(1);
  for (let t = 0.05; t <= 5.0001; t += 0.05) {
    const temperature = Math.round(t * 100) / 100;
    const loss = nll(temperature);
    if (loss < bestLoss) {
      bestLoss = loss;
      best = temperature;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// Loading a model file from JSON

/** Validates parsed JSON as a model file; throws on anything unexpected. */
export function parseModelFile(json: unknown): IntentModelFile {
  const fail = (why: string): never => {
    throw new Error(`invalid intent model: ${why}`);
  };
  if (typeof json !== 'object' || json === null) return fail('not an object');
  const file = json as Partial<IntentModelFile>;
  if (file.format !== MODEL_FORMAT || file.version !== MODEL_VERSION) fail('unknown format or version');
  const labels = file.labels;
  if (!Array.isArray(labels) || labels.length !== INTENT_CATEGORIES.length || !labels.every((l) => INTENT_CATEGORIES.includes(l))) {
    fail('labels do not match the intent categories');
  }
  const vocabulary = file.vocabulary;
  if (!Array.isArray(vocabulary) || !vocabulary.every((v) => typeof v === 'string')) fail('bad vocabulary');
  const dim = (vocabulary as string[]).length;
  const weights = file.weights;
  if (
    !Array.isArray(weights) ||
    weights.length !== INTENT_CATEGORIES.length ||
    !weights.every((row) => Array.isArray(row) && row.length === dim && row.every((v) => typeof v === 'number'))
  ) {
    fail('bad weights');
  }
  if (!Array.isArray(file.bias) || file.bias.length !== INTENT_CATEGORIES.length) fail('bad bias');
  if (typeof file.temperature !== 'number' || !(file.temperature > 0)) fail('bad temperature');
  const features = file.features;
  if (
    typeof features !== 'object' ||
    features === null ||
    !Array.isArray(features.wordNgrams) ||
    !Array.isArray(features.charNgrams) ||
    typeof features.wordWeight !== 'number' ||
    typeof features.charWeight !== 'number'
  ) {
    fail('bad feature config');
  }
  if (typeof file.metadata !== 'object' || file.metadata === null) fail('missing metadata');
  return { ...(file as IntentModelFile), features: { ...DEFAULT_FEATURE_CONFIG, ...file.features } };
}
