import { describe, expect, it } from 'vitest';
import { createRunWaits, TooManyWaitsError, type RunFinishedFeed } from '../../src/domain/chat/run-waits.js';

/** An in-memory feed: `finish(runId)` wakes that run's subscribers. */
function createFeed() {
  const listeners = new Map<string, Set<() => void>>();
  const feed: RunFinishedFeed & { finish(runId: string): void; subscribers(runId: string): number } = {
    subscribe(runId, listener) {
      const set = listeners.get(runId) ?? new Set();
      set.add(listener);
      listeners.set(runId, set);
      return () => set.delete(listener);
    },
    finish(runId) {
      for (const listener of [...(listeners.get(runId) ?? [])]) listener();
    },
    subscribers: (runId) => listeners.get(runId)?.size ?? 0,
  };
  return feed;
}

/** A run whose state the waiter reads, counting the reads. */
function createRun() {
  let finished = false;
  let reads = 0;
  return {
    read: async () => {
      reads++;
      return { finished };
    },
    finish: () => (finished = true),
    reads: () => reads,
  };
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

const untilSubscribed = (feed: ReturnType<typeof createFeed>, runId: string) => until(() => feed.subscribers(runId) > 0);

describe('run waits', () => {
  it('sleeps until the feed wakes it, reading once per wake-up', async () => {
    const feed = createFeed();
    const waits = createRunWaits({ feed, maxPerOrg: 5 });
    const run = createRun();
    const waiting = waits.waitFor('r1', { timeoutMs: 30_000, read: run.read, isFinished: (v) => v.finished });
    await untilSubscribed(feed, 'r1');
    // An early wake-up (the run is still open) costs one read and the waiter sleeps again.
    feed.finish('r1');
    await until(() => run.reads() === 2 && feed.subscribers('r1') === 1);
    run.finish();
    feed.finish('r1');
    expect(await waiting).toEqual({ finished: true });
    expect(run.reads()).toBe(3);
    expect(feed.subscribers('r1')).toBe(0);
  });

  it('answers the last read when the signal aborts or the waits are closed', async () => {
    const feed = createFeed();
    const waits = createRunWaits({ feed, maxPerOrg: 5 });
    const run = createRun();
    const controller = new AbortController();
    const aborted = waits.waitFor('r2', { timeoutMs: 30_000, signal: controller.signal, read: run.read, isFinished: (v) => v.finished });
    const other = waits.waitFor('r3', { timeoutMs: 30_000, read: run.read, isFinished: (v) => v.finished });
    await untilSubscribed(feed, 'r2');
    await untilSubscribed(feed, 'r3');
    controller.abort();
    expect(await aborted).toEqual({ finished: false });
    waits.close();
    expect(await other).toEqual({ finished: false });
  });

  it('caps concurrent waits per organization, with a Retry-After from the soonest deadline', () => {
    const waits = createRunWaits({ feed: createFeed(), maxPerOrg: 2 });
    const a = waits.reserve('org-a', 10_000);
    waits.reserve('org-a', 30_000);
    const refused = (() => {
      try {
        waits.reserve('org-a', 5_000);
      } catch (error) {
        return error;
      }
      return undefined;
    })();
    expect(refused).toBeInstanceOf(TooManyWaitsError);
    expect(refused).toMatchObject({ code: 'too_many_waits', statusCode: 429, retryAfterSeconds: 10 });
    expect(() => waits.reserve('org-b', 5_000)).not.toThrow();
    a.release();
    a.release();
    expect(waits.activeWaits('org-a')).toBe(1);
    expect(() => waits.reserve('org-a', 5_000)).not.toThrow();
  });
});
