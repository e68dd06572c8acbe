import { createPostgresBackend, Queue, Worker, type Processor, type WorkerOptions } from 'bullmq';
import pg from 'pg';
import type { Logger } from 'pino';
import { closeRedis, createRedisConnection, type RedisClient, type RedisTarget } from '../redis/connections.js';
import { queuePrefix, type StageJobData } from './job-options.js';

export type QueueBackendName = 'redis' | 'postgres';

/** BullMQ's schema in the database when the queues run on PostgreSQL (its default, kept apart from ours). */
export const QUEUE_SCHEMA = 'bullmq';

export type StageQueue = Queue<StageJobData>;
export type StageWorker = Worker<StageJobData>;
export type StageWorkerOptions = Omit<WorkerOptions, 'connection' | 'prefix'>;

/**
 * Where BullMQ keeps the queues: Redis, or PostgreSQL (BullMQ 6's `createPostgresBackend`, the
 * same Queue/Worker API; LISTEN/NOTIFY wakes the workers). Queues and workers of a process are
 * made here, so that nothing else knows which one it is.
 */
export interface QueueBackend {
  readonly name: QueueBackendName;
  /** A producer-side queue (adds, counts, inspection). */
  queue(name: string): StageQueue;
  /** A worker of `name`; on Redis on a blocking connection shared by the process's workers. */
  worker(name: string, processor: Processor<StageJobData>, options: StageWorkerOptions): StageWorker;
  /** Whether jobs can be added right now. */
  available(): boolean;
  /** Closes what the backend opened for the workers (queues and workers close themselves first). */
  close(): Promise<void>;
}

/**
 * On Redis: queues on the given fail-fast producer connection, workers on one connection of their
 * own that blocks and retries forever (BullMQ's production settings, see connections.ts).
 */
export function createRedisQueueBackend(options: {
  producer: RedisClient;
  target: RedisTarget;
  prefix: string;
  logger: Logger;
  /** Whether the producer's Redis answers (see watchResponsiveness); a connected, silent Redis is unavailable. */
  responsive?: () => boolean;
}): QueueBackend {
  let workerConnection: RedisClient | undefined;
  const responsive = options.responsive ?? (() => true);
  return {
    name: 'redis',
    queue: (name) => new Queue<StageJobData>(name, { connection: options.producer, prefix: queuePrefix(options.prefix, name) }),
    worker(name, processor, workerOptions) {
      workerConnection ??= createRedisConnection(options.target, 'worker', options.logger);
      return new Worker<StageJobData>(name, processor, { ...workerOptions, connection: workerConnection, prefix: queuePrefix(options.prefix, name) });
    },
    available: () => options.producer.status === 'ready' && responsive(),
    async close() {
      if (workerConnection) await closeRedis(workerConnection);
    },
  };
}

/**
 * On PostgreSQL: every queue and worker of the process shares one pool whose connections look in
 * BullMQ's schema first. Each worker also holds one of its connections for LISTEN, so the pool has
 * room for `workers` of those on top of `poolMax` for queries.
 */
export function createPostgresQueueBackend(options: { url: string; poolMax: number; workers: number; logger: Logger }): QueueBackend {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolMax + options.workers,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    application_name: 'honeyjar-queues',
    keepAlive: true,
    options: `-c search_path=${QUEUE_SCHEMA}`,
  });
  // Each queue and worker of the process listens for the pool's errors.
  pool.setMaxListeners(0);
  let reachable = true;
  pool.on('error', () => {
    reachable = false;
  });
  pool.on('connect', () => {
    reachable = true;
  });
  // The PostgreSQL flavour of the classes has the same methods; the rest of the code is written
  // against one type, so the instances are seen as that.
  return {
    name: 'postgres',
    queue: (name) => new Queue(name, { connection: pool }, createPostgresBackend) as unknown as StageQueue,
    worker: (name, processor, workerOptions) =>
      new Worker(name, processor, { ...workerOptions, connection: pool }, createPostgresBackend) as unknown as StageWorker,
    available: () => reachable,
    async close() {
      await pool.end().catch(() => undefined);
    },
  };
}
