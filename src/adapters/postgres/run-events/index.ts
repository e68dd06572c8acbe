import type pg from 'pg';
import type { Logger } from 'pino';
import { createCoalescer } from '../../../lib/coalescer.js';
import { createSubscriptions, type EventNotice } from '../../../engine/events/subscriptions.js';
import type { RunEvent, RunEventBody, RunEvents, ThreadCursor, ThreadRunEvent } from '../../../engine/ports/run-events.js';
import { createPostgresListener } from '../listener.js';
import { ANNOUNCE, APPEND_EVENTS, PRUNE_EVENTS, READ_EVENTS, READ_THREAD_EVENTS, RUN_EVENTS_CHANNEL, THREAD_START } from './sql.js';

export interface PostgresRunEventsOptions {
  /** Connection string for this process's one LISTEN connection. */
  url: string;
  logger: Logger;
  /** How often every subscription reads again, in case a notification was lost (0: never). */
  resyncMs?: number;
}

function toEvent(runId: string, row: { seq: number; data: RunEventBody; created_at: Date }): RunEvent {
  return { ...row.data, runId, seq: Number(row.seq), at: row.created_at.toISOString() };
}

/** A notification's payload, `{r, t, m, s, e?}` (see sql.ts); undefined when it is not one. */
function parseNotice(payload: string | undefined): EventNotice | undefined {
  if (!payload) return undefined;
  try {
    const raw = JSON.parse(payload) as { r: string; t: string; m: number; s: number; e?: Array<RunEventBody & { seq: number; at: string }> };
    const events = raw.e?.map((event) => ({ ...event, runId: raw.r, seq: Number(event.seq), at: new Date(event.at).toISOString() }));
    return { runId: raw.r, threadId: raw.t, runSeq: Number(raw.m), lastSeq: Number(raw.s), ...(events ? { events } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * The event log in PostgreSQL (tables run_events and run_event_heads, migration 0005). Appends
 * from concurrent callers share one statement (see createCoalescer); its NOTIFY carries the new
 * events to every process's subscribers, which read the table only to catch up. One LISTEN
 * connection per process (listener.ts), opened by the first subscription, re-opened when it
 * drops; each time it listens again every subscription reads what it may have missed.
 */
export function createPostgresRunEvents(
  pool: pg.Pool,
  options: PostgresRunEventsOptions,
): RunEvents & {
  prune(retentionMs: number, limit?: number): Promise<{ runs: number; events: number }>;
  subscriptions(): number;
  close(): Promise<void>;
} {
  const { logger } = options;

  const appendBatch = createCoalescer<{ runId: string; events: readonly RunEventBody[] }, number>(async (items) => {
    // One entry per run: the upsert may touch a head once per statement.
    const byRun = new Map<string, RunEventBody[]>();
    const offsets = items.map((item) => {
      const list = byRun.get(item.runId) ?? [];
      byRun.set(item.runId, list);
      list.push(...item.events);
      return list.length;
    });
    const runIds = [...byRun.keys()];
    const { rows } = await pool.query({
      name: 'honeyjar-append-events',
      text: APPEND_EVENTS,
      values: [runIds, runIds.map((id) => JSON.stringify(byRun.get(id)))],
    });
    const last = new Map<string, number>();
    for (const row of rows) if (row.last_seq !== null) last.set(runIds[Number(row.idx) - 1]!, Number(row.last_seq));
    return items.map((item, i) => {
      const end = last.get(item.runId);
      const total = byRun.get(item.runId)!.length;
      return { status: 'fulfilled' as const, value: end === undefined ? 0 : end - total + offsets[i]! };
    });
  });

  const announceBatch = createCoalescer<string, void>(async (runIds) => {
    await pool.query({ name: 'honeyjar-announce-events', text: ANNOUNCE, values: [[...new Set(runIds)]] });
    return runIds.map(() => ({ status: 'fulfilled' as const, value: undefined }));
  });

  async function read(target: { orgId: string; runId: string }, afterSeq: number, limit = 1000): Promise<RunEvent[]> {
    const { rows } = await pool.query({ name: 'honeyjar-read-events', text: READ_EVENTS, values: [target.runId, target.orgId, afterSeq, limit] });
    return rows.map((row) => toEvent(target.runId, row));
  }

  async function readThread(target: { orgId: string; threadId: string }, cursor: ThreadCursor, limit = 1000): Promise<ThreadRunEvent[]> {
    const { rows } = await pool.query({
      name: 'honeyjar-read-thread-events',
      text: READ_THREAD_EVENTS,
      values: [target.threadId, target.orgId, cursor.floor, JSON.stringify(cursor.runs), limit],
    });
    return rows.map((row) => ({ ...toEvent(row.run_id, row), runSeq: Number(row.run_seq) }));
  }

  const subscriptions = createSubscriptions(
    { read, readThread },
    { ...(options.resyncMs === undefined ? {} : { resyncMs: options.resyncMs }), onError: (err) => logger.warn({ err }, 'event subscription: read failed') },
  );

  const listener = createPostgresListener({
    url: options.url,
    applicationName: 'honeyjar-events',
    channels: [RUN_EVENTS_CHANNEL],
    onNotification(message) {
      const notice = parseNotice(message.payload);
      if (notice) subscriptions.notice(notice);
    },
    // Whatever was appended while nobody listened is read now.
    onListening: () => subscriptions.resync(),
    name: 'run events',
    logger,
  });

  return {
    append(runId, events) {
      if (events.length === 0) return Promise.resolve(0);
      return appendBatch({ runId, events });
    },
    read,
    readThread,
    subscribe(
      target: { orgId: string; runId: string } | { orgId: string; threadId: string },
      cursor: number | ThreadCursor,
      onEvent: never,
      onError?: (error: unknown) => void,
    ) {
      listener.start();
      if ('runId' in target) return subscriptions.subscribeRun(target, cursor as number, onEvent as (event: RunEvent) => void, onError);
      return subscriptions.subscribeThread(target, cursor as ThreadCursor, onEvent as (event: ThreadRunEvent, cursor: ThreadCursor) => void, onError);
    },
    async threadStart(target) {
      const { rows } = await pool.query({ name: 'honeyjar-thread-events-start', text: THREAD_START, values: [target.threadId, target.orgId] });
      return { floor: Number(rows[0]?.floor ?? 0), runs: {} };
    },
    announce: (runId) => announceBatch(runId),
    async prune(retentionMs, limit = 1000) {
      const { rows } = await pool.query({ text: PRUNE_EVENTS, values: [retentionMs, limit] });
      return { runs: rows[0]?.runs ?? 0, events: rows[0]?.events ?? 0 };
    },
    subscriptions: () => subscriptions.size(),
    async close() {
      subscriptions.close();
      await listener.close();
    },
  } as ReturnType<typeof createPostgresRunEvents>;
}

export type PostgresRunEvents = ReturnType<typeof createPostgresRunEvents>;
