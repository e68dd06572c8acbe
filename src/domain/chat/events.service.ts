import { AppError, notFound } from '../errors.js';
import type { RunStore } from '../../engine/ports/run-store.js';
import type { RunEvent, RunEvents, ThreadCursor, ThreadRunEvent, Unsubscribe } from '../../engine/ports/run-events.js';
import type { Actor } from './chat.service.js';

/** What a stream ticket lets its bearer open: one run's or one thread's events, of one organization. */
export interface StreamTicketGrant {
  orgId: string;
  userId: string;
  runId: string | null;
  threadId: string | null;
}

/** Where stream tickets are kept (hashed): issued for a time to live, redeemed once. */
export interface StreamTickets {
  issue(grant: StreamTicketGrant, ttlMs: number): Promise<{ ticket: string; expiresAt: Date }>;
  redeem(ticket: string): Promise<StreamTicketGrant | undefined>;
}

/** The most events a poller gets in one batch results document. */
export const POLL_PAGE = 1000;

/**
 * Live results for clients: a batch's or a thread's events (after a cursor, then as they come),
 * each only in the caller's organization (another's is 404, like everywhere), and the stream
 * tickets browsers open them with.
 */
export function createEventsService(deps: {
  runs: Pick<RunStore, 'get'>;
  threads: { get(orgId: string, threadId: string): Promise<unknown> };
  events: RunEvents;
  tickets: StreamTickets;
  ticketTtlMs: number;
}) {
  const { events } = deps;

  async function requireBatch(actor: Actor, batchId: string): Promise<void> {
    if (!(await deps.runs.get(actor.orgId, batchId))) throw notFound('Batch');
  }

  async function requireThread(actor: Actor, threadId: string): Promise<void> {
    if (!(await deps.threads.get(actor.orgId, threadId))) throw notFound('Thread');
  }

  return {
    requireBatch,
    requireThread,

    /**
     * The batch's events after `afterSeq` as they are appended; the batch must be the
     * organization's. A finished run whose events are past their retention is 410 `events_expired`
     * (its stream would have nothing to send, ever).
     */
    async followBatch(actor: Actor, batchId: string, afterSeq: number, onEvent: (event: RunEvent) => void, onError?: (error: unknown) => void): Promise<Unsubscribe> {
      const run = await deps.runs.get(actor.orgId, batchId);
      if (!run) throw notFound('Batch');
      const target = { orgId: actor.orgId, runId: batchId };
      if (run.finishedAt && (await events.read(target, 0, 1)).length === 0) {
        throw new AppError('events_expired', 410, "The batch's events are no longer kept; its results are at GET /batch/:batchId/results");
      }
      return events.subscribe(target, afterSeq, onEvent, onError);
    },

    /** Every run's events of the thread after the cursor (none: from its open runs on), as they come. */
    async followThread(
      actor: Actor,
      threadId: string,
      cursor: ThreadCursor | undefined,
      onEvent: (event: ThreadRunEvent, cursor: ThreadCursor) => void,
      onError?: (error: unknown) => void,
    ): Promise<{ start: ThreadCursor; unsubscribe: Unsubscribe }> {
      await requireThread(actor, threadId);
      const target = { orgId: actor.orgId, threadId };
      const start = cursor ?? (await events.threadStart(target));
      return { start, unsubscribe: events.subscribe(target, start, onEvent, onError) };
    },

    /** What a poller has not seen yet: the batch's events after `afterSeq` (at most POLL_PAGE). */
    readBatch(actor: Actor, batchId: string, afterSeq: number): Promise<RunEvent[]> {
      return events.read({ orgId: actor.orgId, runId: batchId }, afterSeq, POLL_PAGE);
    },

    /** A ticket for one batch's or thread's stream, of the caller's organization. */
    async issueTicket(actor: Actor, target: { batchId: string } | { threadId: string }): Promise<{ ticket: string; expiresAt: string }> {
      if ('batchId' in target) await requireBatch(actor, target.batchId);
      else await requireThread(actor, target.threadId);
      const grant: StreamTicketGrant = {
        orgId: actor.orgId,
        userId: actor.userId,
        runId: 'batchId' in target ? target.batchId : null,
        threadId: 'threadId' in target ? target.threadId : null,
      };
      const { ticket, expiresAt } = await deps.tickets.issue(grant, deps.ticketTtlMs);
      return { ticket, expiresAt: expiresAt.toISOString() };
    },

    redeemTicket: (ticket: string) => deps.tickets.redeem(ticket),
  };
}

export type EventsService = ReturnType<typeof createEventsService>;
