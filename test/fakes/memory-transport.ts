import type { QueuedDriver } from '../../src/engine/drivers/queued.js';
import { jobIdFor } from '../../src/engine/job-id.js';
import type { JobState, JobTransport, LiveJob, QueueCounts } from '../../src/engine/ports/job-transport.js';

interface MemoryJob<S extends string> {
  runId: string;
  orgId: string;
  stage: S;
  fanout?: readonly S[];
  state: JobState;
  attemptsMade: number;
  controller: AbortController;
}

/**
 * A JobTransport in memory with a consumer, in the spirit of BullMQ: job ids are deterministic
 * (adding one that exists adds nothing), a retry goes back to waiting after its delay, a pause
 * retries without using an attempt, and `idle()` resolves once no job is waiting or running.
 */
export function createMemoryTransport<S extends string>() {
  const jobs = new Map<string, MemoryJob<S>>();
  const added: string[] = [];
  let consume: QueuedDriver<S> | undefined;
  let inFlight = 0;
  /** Reachable: jobs can be added and are delivered. While not, added jobs stay waiting (as in a Redis that is gone). */
  let up = true;
  /** What each delivered job's consumer answered, in order (for leftovers: `already_finished`). */
  const outcomes: Array<{ jobId: string; verdict: string }> = [];
  let idleWaiters: Array<() => void> = [];

  function settleIdle(): void {
    if (inFlight > 0) return;
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  function run(job: MemoryJob<S>, afterMs = 0): void {
    inFlight++;
    setTimeout(() => void process(job), afterMs);
  }

  async function process(job: MemoryJob<S>): Promise<void> {
    try {
      if (!consume || !up || (job.state !== 'waiting' && job.state !== 'delayed')) return;
      job.state = 'active';
      const verdict = await consume({ runId: job.runId, orgId: job.orgId, stage: job.stage, attemptsMade: job.attemptsMade, fanout: job.fanout }, job.controller.signal);
      outcomes.push({ jobId: jobIdFor(job.runId, job.stage), verdict: verdict.kind === 'done' ? verdict.status : verdict.kind });
      if (verdict.kind === 'retry' || verdict.kind === 'pause') {
        if (verdict.kind === 'retry') job.attemptsMade++;
        job.state = 'delayed';
        run(job, verdict.kind === 'retry' ? Math.min(verdict.delayMs, 5) : Math.min(verdict.ms, 5));
      } else {
        job.state = verdict.kind === 'done' ? 'completed' : 'failed';
      }
    } catch {
      job.state = 'failed';
    } finally {
      inFlight--;
      settleIdle();
    }
  }

  const transport: JobTransport<S> = {
    available: () => up,
    async enqueue(runId, orgId, stages, options = {}) {
      if (!up) throw new Error('the queues are unreachable');
      for (const stage of stages) {
        const jobId = jobIdFor(runId, stage);
        if (jobs.has(jobId)) continue;
        const job: MemoryJob<S> = {
          runId,
          orgId,
          stage,
          state: options.retry ? 'delayed' : 'waiting',
          attemptsMade: options.retry?.attemptsMade ?? 0,
          controller: new AbortController(),
          ...(options.fanout ? { fanout: options.fanout } : {}),
        };
        jobs.set(jobId, job);
        added.push(jobId);
        run(job, options.retry ? Math.min(options.retry.delayMs, 5) : 0);
      }
    },
    async inspect(refs) {
      const live = new Map<string, LiveJob>();
      for (const { jobId } of refs) {
        const job = jobs.get(jobId);
        if (job) live.set(jobId, { state: job.state, attemptsMade: job.attemptsMade });
      }
      return live;
    },
    async cancel(refs, reason) {
      const before = new Map<string, JobState | 'missing'>();
      for (const { jobId } of refs) {
        const job = jobs.get(jobId);
        before.set(jobId, job?.state ?? 'missing');
        if (!job) continue;
        if (job.state === 'active') job.controller.abort(reason);
        else if (job.state === 'waiting' || job.state === 'delayed') job.state = 'failed';
      }
      return before;
    },
    async discardFinished(refs) {
      for (const { jobId } of refs) if (['completed', 'failed'].includes(jobs.get(jobId)?.state ?? '')) jobs.delete(jobId);
    },
    async counts() {
      const counts: Record<string, QueueCounts> = {};
      return counts;
    },
  };

  return {
    ...transport,
    /** Starts delivering jobs to the engine's queue driver. */
    consumeWith(driver: QueuedDriver<S>): void {
      consume = driver;
    },
    /** Resolves when no job is waiting, delayed or running. */
    idle(): Promise<void> {
      return inFlight === 0 ? Promise.resolve() : new Promise((resolve) => idleWaiters.push(resolve));
    },
    /** Job ids in the order they were added. */
    added: () => [...added],
    /** Jobs delivered and what their consumer answered. */
    outcomes: () => [...outcomes],
    /**
     * Makes the queues unreachable (nothing added, nothing delivered; jobs already added stay
     * waiting) or reachable again, delivering the jobs left waiting.
     */
    setAvailable(available: boolean): void {
      up = available;
      if (available) for (const job of jobs.values()) if (job.state === 'waiting' || job.state === 'delayed') run(job);
    },
  };
}
