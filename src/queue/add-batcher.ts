import type { JobsOptions, Queue } from 'bullmq';
import type { StageName } from '../domain/stages/types.js';
import type { StageJobData } from './pipeline.js';

interface PendingAdd {
  stage: StageName;
  data: StageJobData;
  opts: JobsOptions;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Adds jobs in batches without waiting for a timer: an add waits at most for the batch in flight
 * (or the current turn of the event loop), and what accumulates meanwhile goes in the next batch,
 * one `addBulk` per queue (one round trip, all or nothing). When idle, a job is added at once;
 * under load — many accepts, many workers finishing steps — dozens share a round trip. Each
 * caller's promise settles when its own jobs are in Redis, as with `queue.add`.
 */
export function createAddBatcher(queues: Record<StageName, Queue<StageJobData>>, options: { maxInFlight?: number; maxBatch?: number } = {}) {
  const maxInFlight = options.maxInFlight ?? 1;
  const maxBatch = options.maxBatch ?? 500;
  let pending: PendingAdd[] = [];
  let inFlight = 0;
  let scheduled = false;

  function schedule(): void {
    if (scheduled || inFlight >= maxInFlight || pending.length === 0) return;
    scheduled = true;
    // The rest of this turn's adds join the batch.
    setImmediate(flush);
  }

  function flush(): void {
    scheduled = false;
    if (inFlight >= maxInFlight || pending.length === 0) return;
    const batch = pending.slice(0, maxBatch);
    pending = pending.slice(batch.length);
    inFlight++;
    const byStage = new Map<StageName, PendingAdd[]>();
    for (const item of batch) {
      const items = byStage.get(item.stage);
      if (items) items.push(item);
      else byStage.set(item.stage, [item]);
    }
    void Promise.all(
      [...byStage].map(async ([stage, items]) => {
        try {
          await queues[stage].addBulk(items.map((item) => ({ name: stage, data: item.data, opts: item.opts })));
          for (const item of items) item.resolve();
        } catch (error) {
          for (const item of items) item.reject(error);
        }
      }),
    ).finally(() => {
      inFlight--;
      schedule();
    });
    schedule();
  }

  return {
    add(stage: StageName, data: StageJobData, opts: JobsOptions): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        pending.push({ stage, data, opts, resolve, reject });
        schedule();
      });
    },
  };
}
