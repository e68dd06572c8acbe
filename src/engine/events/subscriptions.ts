import type { RunEvent, ThreadCursor, ThreadRunEvent, Unsubscribe } from '../ports/run-events.js';
import { deliveredOf } from './thread-cursor.js';

/** What a store's notification says: a run has events up to `lastSeq`, with them when they fitted. */
export interface EventNotice {
  runId: string;
  threadId: string;
  runSeq: number;
  lastSeq: number;
  /** The new events, in order; missing when they were too large for a notification (then they are read). */
  events?: RunEvent[];
}

/** The reads a subscription catches up with. */
export interface EventReads {
  read(target: { orgId: string; runId: string }, afterSeq: number, limit: number): Promise<RunEvent[]>;
  readThread(target: { orgId: string; threadId: string }, cursor: ThreadCursor, limit: number): Promise<ThreadRunEvent[]>;
}

const PAGE = 500;

interface Subscription {
  /** Reading from the store now; notices meanwhile only mark it `dirty`. */
  reading: boolean;
  dirty: boolean;
  closed: boolean;
  notice(notice: EventNotice): void;
  pull(): void;
}

/**
 * The subscriptions of one process, over any store: each catches up from the store, then takes
 * the events its notifications carry, and reads again whenever a notification shows a gap (it
 * came without its events, or the subscriber missed some), so that every event is delivered once
 * and in order. `resync` (after the notification channel reconnects, and every `resyncMs` as a
 * safety net) makes every subscription read what it may have missed.
 */
export function createSubscriptions(reads: EventReads, options: { resyncMs?: number; onError?: (error: unknown) => void } = {}) {
  const byRun = new Map<string, Set<Subscription>>();
  const byThread = new Map<string, Set<Subscription>>();
  const all = new Set<Subscription>();
  const resyncMs = options.resyncMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;

  function index(map: Map<string, Set<Subscription>>, key: string, sub: Subscription): Unsubscribe {
    const set = map.get(key) ?? new Set();
    set.add(sub);
    map.set(key, set);
    all.add(sub);
    if (!timer && resyncMs > 0) {
      timer = setInterval(resync, resyncMs);
      timer.unref();
    }
    return () => {
      sub.closed = true;
      set.delete(sub);
      if (set.size === 0 && map.get(key) === set) map.delete(key);
      all.delete(sub);
      if (all.size === 0 && timer) {
        clearInterval(timer);
        timer = undefined;
      }
    };
  }

  /** Runs `read` until nothing is left and no notice came meanwhile; one at a time per subscription. */
  function pullWith(sub: Subscription, read: () => Promise<boolean>, after: () => void, onError?: (error: unknown) => void): void {
    if (sub.closed) return;
    if (sub.reading) {
      sub.dirty = true;
      return;
    }
    sub.reading = true;
    void (async () => {
      try {
        do {
          sub.dirty = false;
          while (!sub.closed && (await read()));
        } while (sub.dirty && !sub.closed);
        after();
      } catch (error) {
        (onError ?? options.onError)?.(error);
      } finally {
        sub.reading = false;
      }
    })();
  }

  function safely<A extends unknown[]>(listener: (...args: A) => void, ...args: A): void {
    try {
      listener(...args);
    } catch (error) {
      options.onError?.(error);
    }
  }

  function subscribeRun(
    target: { orgId: string; runId: string },
    afterSeq: number,
    onEvent: (event: RunEvent) => void,
    onError?: (error: unknown) => void,
  ): Unsubscribe {
    let last = afterSeq;
    let ended = false;
    /** Delivers the next event; false when it is not the next one (a gap: read instead). */
    function deliver(event: RunEvent): boolean {
      if (event.seq <= last) return true;
      if (event.seq !== last + 1) return false;
      last = event.seq;
      if (event.type === 'end') ended = true;
      safely(onEvent, event);
      return true;
    }
    const sub: Subscription = {
      reading: false,
      dirty: false,
      closed: false,
      notice(notice) {
        if (ended || notice.lastSeq <= last) return;
        if (sub.reading) {
          sub.dirty = true;
          return;
        }
        for (const event of notice.events ?? []) {
          if (!deliver(event)) break;
        }
        if (last < notice.lastSeq) sub.pull();
      },
      pull() {
        if (ended) return;
        pullWith(
          sub,
          async () => {
            const events = await reads.read(target, last, PAGE);
            for (const event of events) if (sub.closed || !deliver(event)) return false;
            return events.length === PAGE && !ended;
          },
          () => {},
          onError,
        );
      },
    };
    const unsubscribe = index(byRun, target.runId, sub);
    sub.pull();
    return unsubscribe;
  }

  function subscribeThread(
    target: { orgId: string; threadId: string },
    start: ThreadCursor,
    onEvent: (event: ThreadRunEvent, cursor: ThreadCursor) => void,
    onError?: (error: unknown) => void,
  ): Unsubscribe {
    const cursor: ThreadCursor = { floor: start.floor, runs: { ...start.runs } };
    const ended = new Set<number>();
    function deliver(event: ThreadRunEvent): boolean {
      const delivered = deliveredOf(cursor, event.runSeq);
      if (event.seq <= delivered) return true;
      if (event.seq !== delivered + 1) return false;
      cursor.runs[String(event.runSeq)] = event.seq;
      if (event.type === 'end') ended.add(event.runSeq);
      safely(onEvent, event, { floor: cursor.floor, runs: { ...cursor.runs } });
      // Once the store has been read after it, the floor can pass an ended run.
      if (event.type === 'end') sub.pull();
      return true;
    }
    /**
     * After a complete read every run of the thread above the floor is in the cursor (each run's
     * first event is written with the run), so the floor moves over the ended runs at its bottom.
     */
    function raiseFloor(): void {
      const seqs = Object.keys(cursor.runs)
        .map(Number)
        .sort((a, b) => a - b);
      for (const runSeq of seqs) {
        if (!ended.has(runSeq)) break;
        cursor.floor = runSeq;
        delete cursor.runs[String(runSeq)];
        ended.delete(runSeq);
      }
    }
    const sub: Subscription = {
      reading: false,
      dirty: false,
      closed: false,
      notice(notice) {
        if (notice.lastSeq <= deliveredOf(cursor, notice.runSeq)) return;
        if (sub.reading) {
          sub.dirty = true;
          return;
        }
        for (const event of notice.events ?? []) {
          if (!deliver({ ...event, runSeq: notice.runSeq })) break;
        }
        if (deliveredOf(cursor, notice.runSeq) < notice.lastSeq) sub.pull();
      },
      pull() {
        pullWith(
          sub,
          async () => {
            const events = await reads.readThread(target, cursor, PAGE);
            for (const event of events) if (sub.closed || !deliver(event)) return false;
            return events.length === PAGE;
          },
          raiseFloor,
          onError,
        );
      },
    };
    const unsubscribe = index(byThread, target.threadId, sub);
    sub.pull();
    return unsubscribe;
  }

  function notice(notice: EventNotice): void {
    for (const sub of [...(byRun.get(notice.runId) ?? [])]) sub.notice(notice);
    for (const sub of [...(byThread.get(notice.threadId) ?? [])]) sub.notice(notice);
  }

  function resync(): void {
    for (const sub of [...all]) sub.pull();
  }

  return {
    subscribeRun,
    subscribeThread,
    notice,
    resync,
    /** Subscriptions open in this process. */
    size: () => all.size,
    close(): void {
      for (const sub of all) sub.closed = true;
      all.clear();
      byRun.clear();
      byThread.clear();
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}

export type Subscriptions = ReturnType<typeof createSubscriptions>;
