import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { HealthService } from '../../../monitoring/health.service.js';
import { requireOperator } from '../../plugins/auth.js';
import { errorResponses } from '../../schemas/common.js';
import { ComponentCheck, HealthReport } from './health.js';

const Nullable = <T extends ReturnType<typeof Type.Number>>(schema: T) => Type.Union([schema, Type.Null()]);

const QueueDetail = Type.Object({
  counts: Type.Record(Type.String(), Type.Integer()),
  oldestWaitingAgeMs: Nullable(Type.Number()),
  lastFetchAgeMs: Nullable(Type.Number()),
  consumingProcesses: Type.Integer(),
  workersSeen: Nullable(Type.Number()),
  paused: Type.Boolean(),
  rateLimitTtlMs: Type.Number(),
  globalConcurrency: Nullable(Type.Number()),
});

const DetailedHealth = Type.Composite([
  HealthReport,
  Type.Object({
    uptimeSeconds: Type.Number(),
    process: Type.Object({ pid: Type.Integer(), startedAt: Type.String(), uptimeSeconds: Type.Number() }),
    transport: Type.Union([Type.Literal('redis'), Type.Literal('postgres')], {
      description: 'Where the queues and the coordination between processes are (QUEUE_BACKEND); on postgres, `redis` is the check of that store',
    }),
    versions: Type.Object({
      node: Type.String(),
      app: Type.String(),
      postgresql: Type.Union([Type.String(), Type.Null()]),
      redis: Type.Union([Type.String(), Type.Null()]),
    }),
    database: Type.Composite([
      ComponentCheck,
      Type.Object({ pool: Type.Object({ total: Type.Integer(), idle: Type.Integer(), waiting: Type.Integer(), max: Type.Integer() }) }),
    ]),
    redis: ComponentCheck,
    queues: Type.Union([Type.Record(Type.String(), QueueDetail), Type.Null()]),
    queuesError: Type.Optional(Type.String()),
    workers: Type.Object({
      thisProcess: Type.Record(Type.String(), Type.Object({ concurrency: Type.Integer(), running: Type.Boolean(), paused: Type.Boolean() })),
      seen: Type.Record(Type.String(), Nullable(Type.Number())),
    }),
    eventLoop: Type.Object({ windowMs: Type.Number(), meanMs: Type.Number(), p50Ms: Type.Number(), p99Ms: Type.Number(), maxMs: Type.Number() }),
    memory: Type.Object({ rss: Type.Number(), heapTotal: Type.Number(), heapUsed: Type.Number(), external: Type.Number(), arrayBuffers: Type.Number() }),
  }),
]);

/** Every component with its latency, queues, workers, event loop, memory, pool, versions: process details of the whole system, operators only. */
export function registerHealthDetailed(app: App, health: HealthService): void {
  app.get(
    '/system/health/detailed',
    {
      schema: {
        tags: ['system'],
        summary: 'Detailed health: components, queues, workers and their concurrency, event loop, memory, pool, versions (system operators)',
        response: { 200: DetailedHealth, 503: DetailedHealth, ...errorResponses },
      },
    },
    async (request, reply) => {
      requireOperator(request);
      const report = await health.detailed();
      return reply
        .status(report.status === 'unhealthy' ? 503 : 200)
        .header('cache-control', 'no-store')
        .send(report);
    },
  );
}
