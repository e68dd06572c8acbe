import type { StepStates, StepStatus } from './run.js';
import type { AnyCatalog, StageDefinitionData, StageOf } from './stage.js';

const TERMINAL: ReadonlySet<StepStatus> = new Set(['completed', 'failed', 'cancelled']);

export function isTerminal(state: StepStatus | undefined): boolean {
  return state !== undefined && TERMINAL.has(state);
}

const orders = new WeakMap<AnyCatalog, readonly string[]>();

/**
 * The catalog's stages, each after every stage it depends on; among stages free to go, the
 * catalog's own order. Throws on a dependency that names no stage and on a cycle, so a catalog
 * that cannot run is refused when it is first used, not when a run gets stuck.
 */
export function stageOrder<C extends AnyCatalog>(catalog: C): readonly StageOf<C>[] {
  const known = orders.get(catalog);
  if (known) return known as readonly StageOf<C>[];
  const names = Object.keys(catalog);
  for (const name of names) {
    const definition = catalog[name]!;
    if (definition.name !== name) throw new Error(`stage ${name} is defined as ${definition.name}`);
    for (const dep of definition.dependsOn) if (!Object.hasOwn(catalog, dep)) throw new Error(`stage ${name} depends on unknown stage ${dep}`);
  }
  const placed: string[] = [];
  const remaining = new Set(names);
  while (remaining.size > 0) {
    const next = names.find((name) => remaining.has(name) && catalog[name]!.dependsOn.every((dep) => !remaining.has(dep)));
    if (!next) throw new Error(`the stages ${[...remaining].join(', ')} depend on each other in a cycle`);
    placed.push(next);
    remaining.delete(next);
  }
  orders.set(catalog, Object.freeze(placed));
  return placed as readonly StageOf<C>[];
}

/**
 * The steps of a run that may start now: not started yet, and every stage they depend on (among
 * those the run includes) has finished, one way or the other.
 */
export function readyStages<C extends AnyCatalog>(catalog: C, states: StepStates<StageOf<C>>): StageOf<C>[] {
  const of = states as Partial<Record<string, StepStatus>>;
  return stageOrder(catalog).filter(
    (stage) => of[stage] === 'pending' && catalog[stage]!.dependsOn.every((dep) => of[dep] === undefined || isTerminal(of[dep])),
  );
}

/** The ready steps among the dependents of steps that just finished: the ones this finish lets go. */
export function readyDependents<C extends AnyCatalog>(catalog: C, states: StepStates<StageOf<C>>, finished: readonly string[]): StageOf<C>[] {
  return readyStages(catalog, states).filter((stage) => catalog[stage]!.dependsOn.some((dep) => finished.includes(dep)));
}

/** Exponential backoff: the delay before retry n (1-based) is baseDelayMs * 2^(n-1). */
export function backoffDelay(definition: Pick<StageDefinitionData, 'backoff'>, failedAttempts: number): number {
  return definition.backoff.baseDelayMs * 2 ** Math.max(0, failedAttempts - 1);
}

/** Each stage's dependencies, by stage (what the run store's load statement takes). */
export function dependenciesOf(catalog: AnyCatalog): Record<string, readonly string[]> {
  return Object.fromEntries(stageOrder(catalog).map((stage) => [stage, catalog[stage]!.dependsOn]));
}
