import type { FastifyInstance } from 'fastify';
import type { Coordination } from '../../engine/ports/coordination.js';
import { AppError } from '../../domain/errors.js';

interface WindowCount {
  window: number;
  /** Requests counted here and not yet added to the shared counter. */
  pending: number;
  /** Requests being added to the shared counter right now (still counted until it answers). */
  sending: number;
  /** The shared counter (all processes) as last read back from the coordination store. */
  shared: number;
}

const FLUSH_EVERY_MS = 100;

/**
 * Per-organization request limit (fixed window) shared by every API process through the
 * coordination store (Redis, or PostgreSQL). Requests are counted in memory and added to the shared
 * counter every 100 ms, so the accept path makes no round trip of its own; the limit can be
 * overshot by what the other processes accept within one flush interval. Without the store each
 * process still enforces it on its own.
 */
export function registerRateLimit(app: FastifyInstance, coordination: Coordination, options: { max: number; windowMs: number; prefix: string }): void {
  const counts = new Map<string, WindowCount>();
  const keyOf = (orgId: string, window: number) => `${options.prefix}:ratelimit:${orgId}:${window}`;

  async function flush(): Promise<void> {
    if (!coordination.available()) return;
    const batch = [...counts.entries()].filter(([, count]) => count.pending > 0);
    if (batch.length === 0) return;
    const sent = batch.map(([, count]) => count.pending);
    for (const [i, [, count]] of batch.entries()) {
      count.sending = sent[i]!;
      count.pending = 0;
    }
    try {
      const totals = await coordination.addToCounters(
        batch.map(([orgId, count], i) => ({ key: keyOf(orgId, count.window), by: sent[i]!, ttlMs: options.windowMs + 1_000 })),
      );
      batch.forEach(([, count], i) => {
        count.shared = totals[i]!;
        count.sending = 0;
      });
    } catch {
      batch.forEach(([, count], i) => {
        count.pending += sent[i]!;
        count.sending = 0;
      });
    }
  }

  let flushing: Promise<void> | undefined;
  const timer = setInterval(() => {
    flushing ??= flush().finally(() => (flushing = undefined));
    // Forget the windows that are over.
    const current = Math.floor(Date.now() / options.windowMs);
    for (const [orgId, count] of counts) if (count.window < current && count.pending === 0 && count.sending === 0) counts.delete(orgId);
  }, FLUSH_EVERY_MS);
  timer.unref();
  app.addHook('onClose', async () => {
    clearInterval(timer);
    await flushing;
    await flush().catch(() => undefined);
  });

  app.addHook('onRequest', async (request, reply) => {
    const orgId = request.actor?.orgId;
    if (!orgId) return;
    const now = Date.now();
    const window = Math.floor(now / options.windowMs);
    let count = counts.get(orgId);
    if (!count || count.window !== window) {
      count = { window, pending: 0, sending: 0, shared: 0 };
      counts.set(orgId, count);
    }
    const used = count.shared + count.sending + count.pending;
    reply.header('x-ratelimit-limit', options.max);
    reply.header('x-ratelimit-remaining', Math.max(0, options.max - used - 1));
    if (used >= options.max) {
      const resetMs = (window + 1) * options.windowMs - now;
      reply.header('retry-after', Math.max(1, Math.ceil(resetMs / 1000)));
      throw new AppError('rate_limited', 429, `Too many requests for this organization: ${options.max} per ${options.windowMs} ms`);
    }
    count.pending++;
  });
}
