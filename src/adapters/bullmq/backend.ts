import { createPostgresBackend, Queue, Worker, type Processor, type WorkerOptions } from 'bullmq';
import pg from 'pg';
import type { Logger } from 'pino';
import { closeRedis, createRedisConnection, type RedisClient, type RedisTarget } from '../redis/connections.js';
import { createPeriodicTask } from '../../lib/periodic.js';
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

/** On PostgreSQL, completed jobs are kept this long (see COMPLETED_RETENTION), trimmed every TRIM_EVERY_MS. */
export const POSTGRES_COMPLETED_KEEP_MS = 60_000;
const TRIM_EVERY_MS = 5_000;
const TRIM_LIMIT = 10_000;

/**
 * On PostgreSQL: every queue and worker of the process shares one pool whose connections look in
 * BullMQ's schema first and commit without waiting for the WAL flush. Each worker also holds one
 * of its connections for LISTEN, so the pool has room for `workers` of those on top of `poolMax`
 * for queries. The process trims its queues' completed jobs older than POSTGRES_COMPLETED_KEEP_MS
 * every few seconds, one statement a queue (BullMQ's own trimming would read every kept job on
 * every completion); several processes trimming the same queues delete each job once.
 */
export function createPostgresQueueBackend(options: {
  url: string;
  poolMax: number;
  workers: number;
  logger: Logger;
  /** For tests: POSTGRES_COMPLETED_KEEP_MS and TRIM_EVERY_MS. */
  completedKeepMs?: number;
  trimEveryMs?: number;
}): QueueBackend {
  const keepMs = options.completedKeepMs ?? POSTGRES_COMPLETED_KEEP_MS;
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolMax + options.workers,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    application_name: 'honeyjar-queues',
    keepAlive: true,
    // The queues carry ids; the runs in our schema are the truth. A job operation lost with the
    // last moments of a crash is made good like any lost job: the restart watch re-drives the runs
    // that were open (a lost add), and a job done again finds its step stored (a lost
    // completion). So their commits do not wait for the WAL flush.
    options: `-c search_path=${QUEUE_SCHEMA} -c synchronous_commit=off`,
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
  const trimmed = new Map<string, StageQueue>();
  const trimming = createPeriodicTask(
    async () => {
      if (!reachable) return;
      for (const queue of trimmed.values()) {
        await queue.clean(keepMs, TRIM_LIMIT, 'completed').catch((error: Error) => {
          options.logger.debug({ queue: queue.name, err: { message: error.message } }, 'could not trim completed jobs');
        });
      }
    },
    () => undefined,
  );
  trimming.start(options.trimEveryMs ?? TRIM_EVERY_MS);
  // The PostgreSQL flavour of the classes has the same methods; the rest of the code is written
  // against one type, so the instances are seen as that.
  return {
    name: 'postgres',
    queue(name) {
      const queue = new Queue(name, { connection: pool }, createPostgresBackend) as unknown as StageQueue;
      if (!trimmed.has(name)) trimmed.set(name, queue);
      return queue;
    },
    worker: (name, processor, workerOptions) =>
      new Worker(name, processor, { ...workerOptions, connection: pool }, createPostgresBackend) as unknown as StageWorker,
    available: () => reachable,
    async close() {
      await trimming.stop();
      await pool.end().catch(() => undefined);
    },
  };
}
