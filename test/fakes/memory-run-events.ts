import { createSubscriptions } from '../../src/engine/events/subscriptions.js';
import type { RunEvent, RunEventBody, RunEvents, ThreadCursor, ThreadRunEvent } from '../../src/engine/ports/run-events.js';
import { deliveredOf } from '../../src/engine/events/thread-cursor.js';

interface Log {
  orgId: string;
  threadId: string;
  runSeq: number;
  finished: boolean;
  events: RunEvent[];
}

/**
 * The RunEvents contract in memory, for engine and HTTP-free tests: the same subscription logic
 * as the PostgreSQL adapter (engine/events/subscriptions.ts) over a map, with notifications
 * delivered on the next turn of the event loop like a LISTEN connection's. `dropNotices` makes
 * notifications get lost, so that a test can check that subscribers still catch up by reading.
 */
export function createMemoryRunEvents() {
  const logs = new Map<string, Log>();
  let dropping = false;

  function push(runId: string, bodies: readonly RunEventBody[]): RunEvent[] {
    const log = logs.get(runId);
    if (!log) return [];
    const added = bodies.map((body, i) => ({ ...body, runId, seq: log.events.length + i + 1, at: new Date().toISOString() }) as RunEvent);
    log.events.push(...added);
    return added;
  }

  function notify(runId: string, events?: RunEvent[]): void {
    const log = logs.get(runId);
    if (!log || dropping) return;
    const notice = { runId, threadId: log.threadId, runSeq: log.runSeq, lastSeq: log.events.length, ...(events ? { events } : {}) };
    setImmediate(() => subscriptions.notice(notice));
  }

  async function read(target: { orgId: string; runId: string }, afterSeq: number, limit = 1000): Promise<RunEvent[]> {
    const log = logs.get(target.runId);
    if (!log || log.orgId !== target.orgId) return [];
    return log.events.filter((e) => e.seq > afterSeq).slice(0, limit);
  }

  async function readThread(target: { orgId: string; threadId: string }, cursor: ThreadCursor, limit = 1000): Promise<ThreadRunEvent[]> {
    return [...logs.values()]
      .filter((log) => log.threadId === target.threadId && log.orgId === target.orgId && log.runSeq > cursor.floor)
      .sort((a, b) => a.runSeq - b.runSeq)
      .flatMap((log) => log.events.filter((e) => e.seq > deliveredOf(cursor, log.runSeq)).map((e) => ({ ...e, runSeq: log.runSeq })))
      .slice(0, limit);
  }

  const subscriptions = createSubscriptions({ read, readThread }, { resyncMs: 0 });

  const port: RunEvents = {
    async append(runId, bodies) {
      const added = push(runId, bodies);
      if (added.length > 0) notify(runId, added);
      return logs.get(runId)?.events.length ?? 0;
    },
    read,
    readThread,
    subscribe(target: { orgId: string; runId: string } | { orgId: string; threadId: string }, cursor: number | ThreadCursor, onEvent: never, onError?: (error: unknown) => void) {
      if ('runId' in target) return subscriptions.subscribeRun(target, cursor as number, onEvent, onError);
      return subscriptions.subscribeThread(target, cursor as ThreadCursor, onEvent, onError);
    },
    async threadStart(target) {
      const runs = [...logs.values()].filter((log) => log.threadId === target.threadId && log.orgId === target.orgId);
      const open = runs.filter((log) => !log.finished).map((log) => log.runSeq);
      const floor = open.length > 0 ? Math.min(...open) - 1 : Math.max(0, ...runs.map((log) => log.runSeq));
      return { floor, runs: {} };
    },
    async announce(runId) {
      notify(runId);
    },
  } as RunEvents;

  return {
    ...port,
    /** A run's log begins (what the run store's accept does): its `accepted` event, seq 1, without a notification. */
    begin(run: { runId: string; orgId: string; threadId: string; runSeq: number }): void {
      logs.set(run.runId, { orgId: run.orgId, threadId: run.threadId, runSeq: run.runSeq, finished: false, events: [] });
      push(run.runId, [{ type: 'run', status: 'accepted' }]);
    },
    /** Events a run store writes in a step statement, with a notification (as the statement's NOTIFY). */
    write(runId: string, bodies: readonly RunEventBody[]): void {
      const log = logs.get(runId);
      if (!log || log.finished || bodies.length === 0) return;
      notify(runId, push(runId, bodies));
    },
    /** The closing events a run store writes with the run's end, without a notification (the engine announces them). */
    close(runId: string, bodies: readonly RunEventBody[]): void {
      const log = logs.get(runId);
      if (!log || log.finished) return;
      log.finished = true;
      push(runId, bodies);
    },
    events: (runId: string) => [...(logs.get(runId)?.events ?? [])],
    dropNotices(drop: boolean): void {
      dropping = drop;
    },
    resync: () => subscriptions.resync(),
    subscriptions: () => subscriptions.size(),
  };
}

export type MemoryRunEvents = ReturnType<typeof createMemoryRunEvents>;
