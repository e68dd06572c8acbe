import type { Engine } from './engine.js';
import type { JobTransport } from './ports/job-transport.js';
import type { RunStore } from './ports/run-store.js';
import type { AnyCatalog, StageOf } from './stage.js';

/** How often the transport's availability is looked at. */
const CHECK_MS = 200;
/** How often, while the transport stays unreachable, open runs are looked for again (a lease expired, a run was left). */
const PASS_EVERY_MS = 1_000;
/** Runs taken in one statement. */
const BATCH = 500;

export interface TakeoverLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
}

/**
 * Transport-loss takeover: when the queues stay unreachable for `afterMs`, this process takes
 * over the open runs they were driving — PostgreSQL knows which — and drives them in-process, in
 * thread order (the in-process driver's turn wait), each under a lease that the store's step
 * statements check: a leftover job, here or in another process, cannot run a step of a run it
 * does not hold to completion nor store its reply. Several processes noticing at once take
 * disjoint runs. The leases are renewed while the runs are driven here and given back when they
 * end. When the transport returns, new runs go to the queues again; runs taken over finish here.
 */
export function createTakeover<C extends AnyCatalog>(deps: {
  engine: Engine<StageOf<C>>;
  runs: RunStore<StageOf<C>>;
  transport: JobTransport<StageOf<C>>;
  /** This process's name on a lease: unique per process. */
  owner: string;
  afterMs: number;
  leaseMs: number;
  logger: TakeoverLogger;
  /** For tests: the clock. */
  now?: () => number;
}) {
  const { engine, runs, transport, owner, logger } = deps;
  const now = deps.now ?? Date.now;
  /** Runs this process holds, driven here. */
  const held = new Set<string>();
  let unavailableSince: number | undefined;
  let lastPass = 0;
  let lastRenew = 0;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  const releasing = new Set<Promise<void>>();

  /** One look: takes over when the transport has been gone long enough, renews what is held. */
  async function tick(): Promise<number> {
    const at = now();
    let taken = 0;
    if (transport.available()) {
      if (unavailableSince !== undefined) logger.info({ held: held.size }, 'queue transport is back: new runs go to the queues');
      unavailableSince = undefined;
    } else {
      unavailableSince ??= at;
      if (at - unavailableSince >= deps.afterMs && at - lastPass >= PASS_EVERY_MS) {
        lastPass = at;
        taken = await takeOver();
      }
    }
    if (held.size > 0 && at - lastRenew >= deps.leaseMs / 3) {
      lastRenew = at;
      await renew();
    }
    return taken;
  }

  async function takeOver(): Promise<number> {
    const taken = await runs.takeOver(owner, deps.leaseMs, BATCH);
    // Oldest message first: a thread's earlier runs are driven before its later ones wait for them.
    for (const run of taken) {
      held.add(run.id);
      void engine.inline
        .drive(run.id, run.orgId, run.states, undefined, { lease: owner, thread: { threadId: run.threadId, messageSeq: run.seq } })
        .finally(() => release(run.id));
    }
    if (taken.length > 0) logger.warn({ taken: taken.length }, 'queue transport unreachable: took over open runs in-process');
    return taken.length;
  }

  async function renew(): Promise<void> {
    const ids = [...held];
    const still = new Set(await runs.renewLeases(owner, ids, deps.leaseMs));
    // Finished meanwhile, or lost (expired and taken by another process): the fence stops what is left here.
    for (const id of ids) if (!still.has(id)) held.delete(id);
  }

  function release(runId: string): void {
    if (!held.delete(runId)) return;
    const done = runs
      .releaseLeases(owner, [runId])
      .catch((err: unknown) => logger.warn({ runId, err: { message: (err as Error)?.message } }, 'takeover: could not release a lease; it expires'))
      .finally(() => releasing.delete(done));
    releasing.add(done);
  }

  return {
    tick,
    /** Runs this process holds now. */
    held: () => [...held],
    start(): void {
      if (timer) return;
      timer = setInterval(() => {
        if (running) return;
        running = tick()
          .catch((err: unknown) => logger.warn({ err: { message: (err as Error)?.message } }, 'takeover check failed'))
          .finally(() => (running = undefined));
      }, CHECK_MS);
      timer.unref();
    },
    /** Stops looking; runs taken over go on until they end (the in-process driver's drain), and a lease not given back expires. */
    async stop(): Promise<void> {
      clearInterval(timer);
      timer = undefined;
      await running;
    },
    /** Resolves when the leases of the runs that ended have been given back (tests). */
    async released(): Promise<void> {
      await Promise.all([...releasing]);
    },
  };
}

export type Takeover = ReturnType<typeof createTakeover>;
