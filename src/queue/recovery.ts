import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Container } from '../container.js';
import { watchPostgresRestarts } from '../adapters/postgres/restart-watch.js';
import { createTakeover } from '../engine/takeover.js';

/**
 * What keeps runs from being stranded, in every role: the transport-loss takeover (runs of
 * unreachable queues driven here under a lease) and, after a PostgreSQL restart, an immediate
 * reconciler pass over the runs that were open.
 */
export function startRecovery(container: Container, reconciler: { reconcileNow(): Promise<number> }, logger: Logger) {
  const { config } = container;
  const takeover = createTakeover({
    engine: container.engine,
    runs: container.repositories.runs,
    transport: container.producer,
    owner: `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`,
    afterMs: config.queue.takeoverAfterMs,
    leaseMs: config.queue.takeoverLeaseMs,
    logger,
  });
  const restarts = watchPostgresRestarts(container.database.pool, {
    intervalMs: config.queue.restartCheckMs,
    logger,
    async onRestart() {
      const redriven = await reconciler.reconcileNow();
      logger.warn({ redriven }, 'reconciled the open runs after a PostgreSQL restart');
    },
  });
  takeover.start();
  restarts.start();
  return {
    takeover,
    async stop(): Promise<void> {
      restarts.stop();
      await takeover.stop();
    },
  };
}
