import { createOrgPauses, type OrgPauses } from '../fairness.js';
import type { Progression } from '../progression.js';
import type { ProcessStep, StepVerdict } from '../process-step.js';
import type { JobTransport } from '../ports/job-transport.js';
import type { AnyCatalog, StageOf } from '../stage.js';

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
 *
 * A run's entry job fans out to the run's other root stages. Those that call out get jobs of
 * their own (their limiters and concurrency are per queue); local ones (`callsOut: false`) run in
 * the entry job, beside its own stage: a job costs a dozen Redis round trips and a share of the
 * worker's time, a local step a few milliseconds. A local step that failed and may be retried
 * gets its own job then, with its stage's attempts and backoff.
 *
 * A provider's 429 pauses only the organization it answered (see OrgPauses): its jobs of the
 * stage taken meanwhile are put back for the rest of the wait without calling the provider.
 */
export function createQueuedDriver<C extends AnyCatalog>(deps: {
  catalog: C;
  transport: JobTransport<StageOf<C>>;
  progression: Progression<StageOf<C>>;
  processStep: () => ProcessStep<StageOf<C>>;
  pauses?: OrgPauses;
}) {
  type S = StageOf<C>;
  const { catalog, transport } = deps;
  const pauses = deps.pauses ?? createOrgPauses();
  return async function consume(job: QueuedJob<S>, signal?: AbortSignal): Promise<StepVerdict> {
    const run = { id: job.runId, orgId: job.orgId, driver: 'queue' as const };
    const processStep = deps.processStep();
    /** The job's own step, unless its organization is held for a provider's 429. */
    const own = async (): Promise<StepVerdict> => {
      const waiting = pauses.remainingMs(job.stage, job.orgId);
      if (waiting > 0) return { kind: 'pause', ms: waiting };
      const verdict = await processStep({ run, stage: job.stage, attemptsMade: job.attemptsMade }, signal, { canPause: true });
      if (verdict.kind === 'pause') pauses.pause(job.stage, job.orgId, verdict.ms);
      return verdict;
    };
    if (!Array.isArray(job.fanout)) {
      if (job.fanout) await deps.progression.advance(run, { exclude: job.stage });
      return own();
    }
    const alongside = job.fanout.filter((stage) => !catalog[stage]!.callsOut);
    const ownJobs = job.fanout.filter((stage) => !alongside.includes(stage));
    if (ownJobs.length > 0) await transport.enqueue(job.runId, job.orgId, ownJobs);
    const [verdict, ...others] = await Promise.all([
      own(),
      // Its first attempt; the rest, if it fails, in a job of its own.
      ...alongside.map((stage) => processStep({ run, stage, attemptsMade: 0 }, signal, { canPause: false })),
    ]);
    if (!signal?.aborted) {
      await Promise.all(
        alongside.map((stage, i) => {
          const other = others[i]!;
          if (other.kind !== 'retry') return undefined;
          return transport.enqueue(job.runId, job.orgId, [stage], { retry: { attemptsMade: 1, delayMs: other.delayMs } });
        }),
      );
    }
    return verdict!;
  };
}

export type QueuedDriver<S extends string = string> = (job: QueuedJob<S>, signal?: AbortSignal) => Promise<StepVerdict>;
