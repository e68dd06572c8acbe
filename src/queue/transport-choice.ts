import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { openDatabase } from '../adapters/postgres/client.js';
import { readSystemSetting, recordSystemSettingOnce } from '../adapters/postgres/system-settings.js';
import { closeRedis, createRedisConnection, waitUntilReady, type RedisTarget } from '../adapters/redis/connections.js';
import type { QueueBackendName } from '../adapters/bullmq/backend.js';

/** The name of the system setting that holds the transport every process of the system uses. */
export const QUEUE_BACKEND_SETTING = 'queue_backend';
/** How long a start without QUEUE_BACKEND waits for Redis before it settles on PostgreSQL. */
const REDIS_PROBE_MS = 1_500;

export class QueueBackendMismatchError extends Error {
  override name = 'QueueBackendMismatchError';
}

export interface TransportChoice {
  backend: QueueBackendName;
  /** Why, for the start-up line. */
  reason: string;
}

/**
 * Settles which transport this process uses, so that the processes of one system never split
 * across two: the first start records its choice in the database (`system_settings`); every later
 * start uses the recorded one, and one configured otherwise (QUEUE_BACKEND) refuses to start.
 * Without QUEUE_BACKEND and without a record, Redis is used when REDIS_URL is set and answers now;
 * otherwise PostgreSQL, so that a machine with PostgreSQL alone gets real queue workers.
 */
export async function chooseTransport(config: Readonly<Config>, logger: Logger): Promise<TransportChoice> {
  const database = openDatabase(config.database.url, { poolMax: 1, applicationName: 'honeyjar-start' });
  try {
    const recorded = parseBackend(await readSystemSetting(database.pool, QUEUE_BACKEND_SETTING));
    const configured = config.queue.backend;
    if (configured !== 'auto') {
      const inForce = parseBackend(recorded ?? (await recordSystemSettingOnce(database.pool, QUEUE_BACKEND_SETTING, configured)));
      if (inForce !== configured) throw mismatch(configured, inForce ?? 'unknown');
      return { backend: configured, reason: recorded ? 'QUEUE_BACKEND, as recorded for this system' : 'QUEUE_BACKEND (now recorded for this system)' };
    }
    if (recorded) return { backend: recorded, reason: 'recorded for this system by its first start' };
    const candidate: QueueBackendName = config.redis.configured && (await redisAnswers(config.redis, logger)) ? 'redis' : 'postgres';
    const inForce = parseBackend(await recordSystemSettingOnce(database.pool, QUEUE_BACKEND_SETTING, candidate)) ?? candidate;
    const why =
      inForce !== candidate
        ? 'recorded for this system by a process that started at the same time'
        : candidate === 'redis'
          ? 'REDIS_URL answers (now recorded for this system)'
          : config.redis.configured
            ? 'REDIS_URL does not answer (now recorded for this system)'
            : 'REDIS_URL is not set (now recorded for this system)';
    return { backend: inForce, reason: why };
  } finally {
    await database.close();
  }
}

function mismatch(configured: QueueBackendName, recorded: string): QueueBackendMismatchError {
  return new QueueBackendMismatchError(
    `QUEUE_BACKEND=${configured}, but this system's queues are on ${recorded} (recorded in the database by its first start): ` +
      `start every process with QUEUE_BACKEND=${recorded}, or stop them all and run \`honeyjar queue-backend ${configured}\``,
  );
}

function parseBackend(value: string | undefined): QueueBackendName | undefined {
  return value === 'redis' || value === 'postgres' ? value : undefined;
}

async function redisAnswers(target: RedisTarget, logger: Logger): Promise<boolean> {
  const probe = createRedisConnection(target, 'commands', logger);
  try {
    await waitUntilReady(probe, REDIS_PROBE_MS);
    await probe.ping();
    return true;
  } catch {
    return false;
  } finally {
    await closeRedis(probe).catch(() => undefined);
  }
}

/** The config with the transport settled (what the container builds on). */
export function withTransport(config: Readonly<Config>, backend: QueueBackendName): Readonly<Config> {
  return Object.freeze({ ...config, queue: Object.freeze({ ...config.queue, backend }) });
}
