import { createOrgPauses, type OrgPauses } from '../fairness.js';
import type { Progression } from '../progression.js';
import type { ProcessStep, StepVerdict } from '../process-step.js';
import type { JobTransport } from '../ports/job-transport.js';

/** A step's job as the queues deliver it: ids only, and on a run's entry job the stages to fan out to. */
export interface QueuedJob<S extends string> {
  runId: string;
  orgId: string;
  stage: S;
  attemptsMade: number;
  /** The run's other root stages, added first; `true` (older jobs): whatever the run's states say is ready. */
  fanout?: readonly S[] | true | undefined;
}

/**
 * The queue driver's consumer: what a queue worker runs for each job, through the same step
 * processor as the in-process driver. The worker (src/adapters/bullmq/stage.worker.ts) translates the verdict.
 * A provider's 429 pauses only the organization it answered (see OrgPauses): its jobs of the
 * stage taken meanwhile are put back for the rest of the wait without calling the provider.
 */
export function createQueuedDriver<S extends string>(deps: {
  transport: JobTransport<S>;
  progression: Progression<S>;
  processStep: () => ProcessStep<S>;
  pauses?: OrgPauses;
}) {
  const pauses = deps.pauses ?? createOrgPauses();
  return async function consume(job: QueuedJob<S>, signal?: AbortSignal): Promise<StepVerdict> {
    const run = { id: job.runId, orgId: job.orgId, driver: 'queue' as const };
    // The run's entry job adds the other stages that can start at once.
    if (Array.isArray(job.fanout)) {
      if (job.fanout.length > 0) await deps.transport.enqueue(job.runId, job.orgId, job.fanout);
    } else if (job.fanout) {
      await deps.progression.advance(run, { exclude: job.stage });
    }
    const waiting = pauses.remainingMs(job.stage, job.orgId);
    if (waiting > 0) return { kind: 'pause', ms: waiting };
    const verdict = await deps.processStep()({ run, stage: job.stage, attemptsMade: job.attemptsMade }, signal, { canPause: true });
    if (verdict.kind === 'pause') pauses.pause(job.stage, job.orgId, verdict.ms);
    return verdict;
  };
}

export type QueuedDriver<S extends string = string> = (job: QueuedJob<S>, signal?: AbortSignal) => Promise<StepVerdict>;
