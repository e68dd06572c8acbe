import { AppError } from '../errors.js';

/**
 * Tells a waiter when a run may have finished: on the run's own finish, and after anything that
 * may have hidden one (the feed reconnecting). The waiter then reads the run again; a wake-up
 * that turns out to be early costs one read.
 */
export interface RunFinishedFeed {
  /** Calls `listener` for each such moment until the returned function is called. */
  subscribe(runId: string, listener: () => void): () => void;
}

/** A reserved place among an organization's concurrent waits; `release` gives it back (idempotent). */
export interface WaitSlot {
  readonly orgId: string;
  release(): void;
}

export class TooManyWaitsError extends AppError {
  constructor(
    max: number,
    readonly retryAfterSeconds: number,
  ) {
    super('too_many_waits', 429, `This organization already has ${max} requests waiting for results; retry later or poll the batch`);
    this.name = 'TooManyWaitsError';
  }
}

/**
 * Waits for runs to finish without a loop per waiter: each waiter sleeps until the feed wakes it,
 * its deadline passes or its caller goes away. Concurrent waits are capped per organization in
 * this process, so a tenant cannot hold an unbounded number of requests open.
 */
export function createRunWaits(deps: { feed: RunFinishedFeed; maxPerOrg: number }) {
  /** Fires on shutdown: every wait answers with what it has, so no request holds the close up. */
  const stopping = new AbortController();
  /** The deadline of each of an organization's waits, for the cap and its Retry-After. */
  const active = new Map<string, Map<symbol, number>>();

  function reserve(orgId: string, timeoutMs: number): WaitSlot {
    const deadlines = active.get(orgId) ?? new Map<symbol, number>();
    if (deadlines.size >= deps.maxPerOrg) {
      const soonest = Math.min(...deadlines.values());
      throw new TooManyWaitsError(deps.maxPerOrg, Math.max(1, Math.ceil((soonest - Date.now()) / 1000)));
    }
    const key = Symbol('wait');
    deadlines.set(key, Date.now() + timeoutMs);
    active.set(orgId, deadlines);
    return {
      orgId,
      release() {
        if (!deadlines.delete(key)) return;
        if (deadlines.size === 0 && active.get(orgId) === deadlines) active.delete(orgId);
      },
    };
  }

  /**
   * Reads the run with `read` until `isFinished` says so, the timeout passes or `signal` aborts;
   * answers the last read. Subscribes before each read, so a finish between the read and the
   * sleep still wakes it.
   */
  async function waitFor<T>(
    runId: string,
    options: { timeoutMs: number; signal?: AbortSignal | undefined; read: () => Promise<T>; isFinished: (value: T) => boolean },
  ): Promise<T> {
    const deadline = Date.now() + options.timeoutMs;
    const signal = options.signal ? AbortSignal.any([options.signal, stopping.signal]) : stopping.signal;
    for (;;) {
      let wake!: () => void;
      const woken = new Promise<void>((resolve) => (wake = resolve));
      const unsubscribe = deps.feed.subscribe(runId, wake);
      try {
        const value = await options.read();
        const remaining = deadline - Date.now();
        if (options.isFinished(value) || remaining <= 0 || signal.aborted) return value;
        const outcome = await sleepUntil(woken, remaining, signal);
        if (outcome === 'aborted') return value;
        if (outcome === 'timeout') return await options.read();
      } finally {
        unsubscribe();
      }
    }
  }

  return {
    reserve,
    waitFor,
    /** Waits in progress per organization (for tests and metrics). */
    activeWaits: (orgId: string) => active.get(orgId)?.size ?? 0,
    /** Ends every wait now and any later one at once (the server is closing). */
    close: () => stopping.abort(),
  };
}

export type RunWaits = ReturnType<typeof createRunWaits>;

function sleepUntil(woken: Promise<void>, ms: number, signal: AbortSignal): Promise<'woken' | 'timeout' | 'aborted'> {
  return new Promise((resolve) => {
    const done = (value: 'woken' | 'timeout' | 'aborted') => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(value);
    };
    const onAbort = () => done('aborted');
    const timer = setTimeout(() => done('timeout'), ms);
    signal.addEventListener('abort', onAbort, { once: true });
    void woken.then(() => done('woken'));
  });
}
