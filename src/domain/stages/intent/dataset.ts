/**
 * The labelled intent dataset (data/intent/dataset.jsonl): parsing, the seeded stratified split
 * used by both the trainer and the tests, and evaluation metrics.
 */
import { createHash } from 'node:crypto';
import { INTENT_CATEGORIES, type IntentCategory } from '../types.js';
import type { ClassMetrics } from './intent-model.js';
import { normalizeText } from './text-features.js';

export interface LabelledExample {
  text: string;
  label: IntentCategory;
}

export const SPLIT_SEED = 20240611;
export const TEST_FRACTION = 0.2;

const isCategory = (value: unknown): value is IntentCategory =>
  typeof value === 'string' && (INTENT_CATEGORIES as readonly string[]).includes(value);

/** Parses JSON Lines of `{"text", "label"}`; throws with the line number on a bad or duplicate line. */
export function parseDataset(jsonl: string): LabelledExample[] {
  const examples: LabelledExample[] = [];
  const seen = new Map<string, number>();
  jsonl.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new Error(`dataset line ${i + 1}: not JSON`);
    }
    if (typeof parsed !== 'object' || parsed === null) throw new Error(`dataset line ${i + 1}: not an object`);
    const { text, label } = parsed as { text?: unknown; label?: unknown };
    if (typeof text !== 'string' || text.trim() === '') throw new Error(`dataset line ${i + 1}: missing text`);
    if (!isCategory(label)) throw new Error(`dataset line ${i + 1}: unknown label ${String(label)}`);
    const key = normalizeText(text);
    const previous = seen.get(key);
    if (previous !== undefined) throw new Error(`dataset line ${i + 1}: duplicate of line ${previous}`);
    seen.set(key, i + 1);
    examples.push({ text, label });
  });
  return examples;
}

/** sha256 over the (text, label) pairs, independent of line endings and key order. */
export function datasetHash(examples: readonly LabelledExample[]): string {
  return createHash('sha256')
    .update(JSON.stringify(examples.map((e) => [e.text, e.label])))
    .digest('hex');
}

/** mulberry32: a small, fast, seeded PRNG returning floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * Seeded stratified split: within each label (in INTENT_CATEGORIES order) the examples are
 * shuffled and round(n · testFraction) of them go to the test split.
 */
export function stratifiedSplit<T extends { label: IntentCategory }>(
  examples: readonly T[],
  seed: number = SPLIT_SEED,
  testFraction: number = TEST_FRACTION,
): { train: T[]; test: T[] } {
  const random = seededRandom(seed);
  const train: T[] = [];
  const test: T[] = [];
  for (const label of INTENT_CATEGORIES) {
    const group = shuffled(
      examples.filter((e) => e.label === label),
      random,
    );
    const nTest = Math.round(group.length * testFraction);
    test.push(...group.slice(0, nTest));
    train.push(...group.slice(nTest));
  }
  return { train, test };
}

/** Seeded stratified k-fold assignment: fold index for each example. */
export function stratifiedFolds<T extends { label: IntentCategory }>(examples: readonly T[], k: number, seed: number): number[] {
  const random = seededRandom(seed ^ 0x9e3779b9);
  const folds = new Array<number>(examples.length).fill(0);
  for (const label of INTENT_CATEGORIES) {
    const indices = shuffled(
      examples.flatMap((e, i) => (e.label === label ? [i] : [])),
      random,
    );
    indices.forEach((index, position) => {
      folds[index] = position % k;
    });
  }
  return folds;
}

export interface Evaluation {
  accuracy: number;
  n: number;
  perClass: Record<IntentCategory, ClassMetrics>;
  /** confusion[actual][predicted] */
  confusion: Record<IntentCategory, Record<IntentCategory, number>>;
}

export function evaluate(actual: readonly IntentCategory[], predicted: readonly IntentCategory[]): Evaluation {
  const zeroRow = (): Record<IntentCategory, number> =>
    Object.fromEntries(INTENT_CATEGORIES.map((c) => [c, 0])) as Record<IntentCategory, number>;
  const confusion = Object.fromEntries(INTENT_CATEGORIES.map((c) => [c, zeroRow()])) as Record<
    IntentCategory,
    Record<IntentCategory, number>
  >;
  let correct = 0;
  actual.forEach((a, i) => {
    const p = predicted[i]!;
    confusion[a][p] += 1;
    if (a === p) correct += 1;
  });
  const perClass = Object.fromEntries(
    INTENT_CATEGORIES.map((c) => {
      const tp = confusion[c][c];
      const support = INTENT_CATEGORIES.reduce((s, p) => s + confusion[c][p], 0);
      const predictedCount = INTENT_CATEGORIES.reduce((s, a) => s + confusion[a][c], 0);
      const precision = predictedCount === 0 ? 0 : tp / predictedCount;
      const recall = support === 0 ? 0 : tp / support;
      const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
      return [c, { precision: round4(precision), recall: round4(recall), f1: round4(f1), support }];
    }),
  ) as Record<IntentCategory, ClassMetrics>;
  return { accuracy: round4(actual.length === 0 ? 0 : correct / actual.length), n: actual.length, perClass, confusion };
}

export const round4 = (value: number): number => Math.round(value * 10_000) / 10_000;
