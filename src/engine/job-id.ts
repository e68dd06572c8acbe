import type { AnyCatalog, StageOf } from './stage.js';

/** A step's job id: deterministic, so that adding the same step twice adds one job. */
export function jobIdFor(runId: string, stage: string): string {
  return `${runId}.${stage}`;
}

const JOB_ID = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.([a-z0-9_-]+)$/;

/** The run and stage a job id names, or undefined when it is not a step of the given catalog. */
export function parseJobId<C extends AnyCatalog>(catalog: C, jobId: string): { runId: string; stage: StageOf<C> } | undefined {
  const match = JOB_ID.exec(jobId.toLowerCase());
  if (!match || !Object.hasOwn(catalog, match[2]!)) return undefined;
  return { runId: match[1]!, stage: match[2] as StageOf<C> };
}
