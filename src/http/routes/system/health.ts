import { Type } from '@sinclair/typebox';
import { sql } from 'drizzle-orm';
import type { App } from '../../types.js';
import type { Db } from '../../../db/client.js';

const CHECK_TIMEOUT_MS = 2_000;

/** Liveness and readiness for a load balancer: no auth, nothing secret. */
export function registerHealth(app: App, db: Db): void {
  app.get(
    '/system/health',
    {
      config: { public: true },
      schema: {
        tags: ['system'],
        summary: 'Health of the server and its dependencies (no authentication)',
        response: {
          200: Type.Object({ status: Type.String(), timestamp: Type.String(), checks: Type.Record(Type.String(), Type.Unknown()) }),
          503: Type.Object({ status: Type.String(), timestamp: Type.String(), checks: Type.Record(Type.String(), Type.Unknown()) }),
        },
      },
    },
    async (_request, reply) => {
      const database = await timed(() => db.execute(sql`select 1`));
      const status = database.status === 'healthy' ? 'healthy' : 'unhealthy';
      return reply.status(status === 'healthy' ? 200 : 503).send({ status, timestamp: new Date().toISOString(), checks: { database } });
    },
  );
}

async function timed(check: () => Promise<unknown>): Promise<{ status: 'healthy' | 'unhealthy'; latencyMs: number; error?: string }> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    return { status: 'healthy', latencyMs: round(performance.now() - started) };
  } catch (error) {
    return { status: 'unhealthy', latencyMs: round(performance.now() - started), error: error instanceof Error ? error.message : 'failed' };
  } finally {
    clearTimeout(timer);
  }
}

const round = (ms: number) => Math.round(ms * 10) / 10;
