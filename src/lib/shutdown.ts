export type StepOutcome = 'done' | 'failed' | 'timeout';

/**
 * Waits for `work` until `until` (epoch ms) at the latest: a step of a shutdown must never hold it
 * up, whatever Redis or PostgreSQL does. Never rejects.
 */
export function settleBy(work: Promise<unknown>, until: number): Promise<StepOutcome> {
  return new Promise<StepOutcome>((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), Math.max(0, until - Date.now()));
    work.then(
      () => resolve('done'),
      () => resolve('failed'),
    ).finally(() => clearTimeout(timer));
  });
}

/**
 * The steps of one shutdown, by name, so that whoever gives up on it (the watchdog) can say what
 * was still pending. A step that times out stays pending until its work settles.
 */
export interface ShutdownSteps {
  run(name: string, work: () => Promise<unknown>, until: number): Promise<StepOutcome>;
  pending(): string[];
}

export function createShutdownSteps(): ShutdownSteps {
  const pending = new Set<string>();
  return {
    run(name, work, until) {
      pending.add(name);
      let started: Promise<unknown>;
      try {
        started = work();
      } catch (error) {
        started = Promise.reject(error);
      }
      void started.then(
        () => pending.delete(name),
        () => pending.delete(name),
      );
      return settleBy(started, until);
    },
    pending: () => [...pending],
  };
}

/**
 * Gives up on a shutdown after `afterMs`: calls `giveUp` with the steps still pending (the caller
 * logs them and exits). Answers a function that disarms it.
 */
export function armWatchdog(afterMs: number, steps: ShutdownSteps, giveUp: (pending: string[]) => void): () => void {
  const timer = setTimeout(() => giveUp(steps.pending()), afterMs);
  return () => clearTimeout(timer);
}
