import { createHash, randomBytes } from 'node:crypto';
import type pg from 'pg';

import type { StreamTicketGrant, StreamTickets } from '../../../domain/chat/events.service.js';

const hash = (ticket: string) => createHash('sha256').update(ticket).digest('hex');

/**
 * Stream tickets: random, shown once, stored as their SHA-256, valid for one connection within
 * their time to live. A browser's EventSource cannot send an Authorization header, and an API
 * token in a URL would end up in proxy and server logs.
 */
export function createStreamTicketsRepository(pool: pg.Pool): StreamTickets & { prune(): Promise<number> } {
  return {
    async issue(grant: StreamTicketGrant, ttlMs: number): Promise<{ ticket: string; expiresAt: Date }> {
      const ticket = `hjst_${randomBytes(24).toString('base64url')}`;
      const { rows } = await pool.query(
        `insert into stream_tickets (token_hash, org_id, user_id, run_id, thread_id, expires_at)
         values ($1, $2, $3, $4, $5, now() + make_interval(secs => $6::double precision / 1000)) returning expires_at`,
        [hash(ticket), grant.orgId, grant.userId, grant.runId, grant.threadId, ttlMs],
      );
      return { ticket, expiresAt: rows[0].expires_at };
    },

    /** Uses the ticket up: its grant once, while it has not expired; undefined otherwise. */
    async redeem(ticket: string): Promise<StreamTicketGrant | undefined> {
      if (!/^hjst_[A-Za-z0-9_-]{32}$/.test(ticket)) return undefined;
      const { rows } = await pool.query(
        `update stream_tickets set used_at = now()
          where token_hash = $1 and used_at is null and expires_at > now()
          returning org_id, user_id, run_id, thread_id`,
        [hash(ticket)],
      );
      const row = rows[0];
      return row ? { orgId: row.org_id, userId: row.user_id, runId: row.run_id, threadId: row.thread_id } : undefined;
    },

    /** Forgets tickets that expired (used or not). */
    async prune(): Promise<number> {
      const { rowCount } = await pool.query(`delete from stream_tickets where expires_at < now() - interval '1 hour'`);
      return rowCount ?? 0;
    },
  };
}

export type StreamTicketsRepository = ReturnType<typeof createStreamTicketsRepository>;
