import type { JobsOptions, Queue } from 'bullmq';
import type { StageName } from '../../engine/catalog.js';
import { createCoalescer } from '../../lib/coalescer.js';
import type { StageJobData } from './job-options.js';

interface Add {
  stage: StageName;
  data: StageJobData;
  opts: JobsOptions;
}

/**
 * Adds jobs in batches (see createCoalescer): the adds made while a batch is in flight go out
 * together, one `addBulk` per queue (one round trip, all or nothing per queue). Under load —
 * many accepts, many workers finishing steps — dozens share a round trip. Each caller's promise
 * settles when its own job is in the queue, as with `queue.add`. `bulk: false` (BullMQ's
 * PostgreSQL backend, whose bulk add builds two temporary tables per call: ten times the cost
 * of adding its jobs one by one) adds each job of a batch with its own `add`, concurrently.
 */
export function createAddBatcher(queues: Record<StageName, Queue<StageJobData>>, options: { maxInFlight?: number; maxBatch?: number; bulk?: boolean } = {}) {
  const bulk = options.bulk ?? true;
  const add = createCoalescer<Add, void>(async (items) => {
    const byStage = new Map<StageName, number[]>();
    items.forEach((item, i) => {
      const indexes = byStage.get(item.stage);
      if (indexes) indexes.push(i);
      else byStage.set(item.stage, [i]);
    });
    const results: Array<PromiseSettledResult<void>> = new Array(items.length);
    await Promise.all(
      [...byStage].map(async ([stage, indexes]) => {
        let outcome: PromiseSettledResult<void>;
        try {
          if (bulk) await queues[stage].addBulk(indexes.map((i) => ({ name: stage, data: items[i]!.data, opts: items[i]!.opts })));
          else await Promise.all(indexes.map((i) => queues[stage].add(stage, items[i]!.data, items[i]!.opts)));
          outcome = { status: 'fulfilled', value: undefined };
        } catch (error) {
          outcome = { status: 'rejected', reason: error };
        }
        for (const i of indexes) results[i] = outcome;
      }),
    );
    return results;
  }, options);

  return {
    add(stage: StageName, data: StageJobData, opts: JobsOptions): Promise<void> {
      return add({ stage, data, opts });
    },
  };
}
