import { resolve } from 'node:path';
import { z } from 'zod';
import { CATALOG, type Catalog } from './engine/catalog.js';
import type { StageDefinitionData, StageLimiter } from './engine/stage.js';
import type { StageName } from './engine/catalog.js';
import { stageOrder } from './engine/dag.js';
import { FAIRNESS_ENV, fairnessConfig, type FairnessConfig, type FairnessEnv } from './fairness.config.js';

/**
 * Every setting the server reads, validated once. `loadConfig(process.env)` is called by the entry
 * points only; everything else receives the frozen result.
 */
const optionalString = z
  .string()
  .trim()
  .transform((value) => (value === '' ? undefined : value))
  .optional();

/** Where Redis is looked for when REDIS_URL is not set and the queues are on Redis all the same. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

const schema = z.object({
  DATABASE_URL: z.string().url().default('postgres://postgres@127.0.0.1:5432/honeyjar'),
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(200).default(20),
  REDIS_URL: optionalString.pipe(z.string().url().optional()),
  QUEUE_BACKEND: optionalString.pipe(z.enum(['redis', 'postgres']).optional()),
  QUEUE_POSTGRES_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
  REDIS_CLUSTER_NODES: optionalString.pipe(
    z
      .string()
      .regex(/^[A-Za-z0-9.-]+:\d{1,5}(\s*,\s*[A-Za-z0-9.-]+:\d{1,5})*$/, 'must be host:port pairs separated by commas')
      .optional(),
  ),
  HONEYJAR_DATA_DIR: optionalString,
  PORT: z.coerce.number().int().min(0).max(65535).default(3005),
  HOST: z.string().min(1).default('127.0.0.1'),
  TRUST_PROXY: optionalString.pipe(
    z
      .string()
      .regex(/^(true|false|\d{1,2}|[0-9A-Fa-f.:/]+(\s*,\s*[0-9A-Fa-f.:/]+)*)$/, 'must be true, false, a number of hops, or addresses/CIDRs separated by commas')
      .optional(),
  ),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

  OPENAI_API_KEY: optionalString,
  OPENAI_BASE_URL: optionalString.pipe(z.string().url().optional()),
  OPENAI_MODEL: z.string().min(1).default('gpt-4o-mini'),
  OPENAI_TIMEOUT_MS: z.coerce.number().int().min(1000).max(600_000).default(60_000),
  INTENT_CLASSIFIER: z.enum(['local', 'llm']).default('local'),
  LLM_HISTORY_TOKEN_BUDGET: z.coerce.number().int().min(0).max(1_000_000).default(3_000),

  ROCKETREACH_API_KEY: optionalString,
  ROCKETREACH_BASE_URL: z.string().url().default('https://api.rocketreach.co/api/v2'),
  ROCKETREACH_DEADLINE_MS: z.coerce.number().int().min(1000).max(300_000).default(30_000),
  ROCKETREACH_POLL_INTERVAL_MS: z.coerce.number().int().min(10).max(60_000).default(1000),

  QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_.-]+$/).default('honeyjar'),
  RATE_LIMIT_MAX: z.coerce.number().int().min(1).default(600),
  RATE_LIMIT_WINDOW_MS: z.coerce.number().int().min(100).default(60_000),
  COMPREHENSIVE_MAX_WAITS_PER_ORG: z.coerce.number().int().min(1).max(10_000).default(20),
  BACKLOG_MAX_PER_ORG: z.coerce.number().int().min(1).default(20_000),
  BACKLOG_MAX_TOTAL: z.coerce.number().int().min(1).default(50_000),
  BACKLOG_REFRESH_MS: z.coerce.number().int().min(10).max(10_000).default(250),
  BACKLOG_RATE_HALF_LIFE_MS: z.coerce.number().int().min(100).max(600_000).default(5_000),
  BACKLOG_CALIBRATION_HALF_LIFE_RUNS: z.coerce.number().int().min(1).max(1_000_000).default(1_000),
  EVENTS_FLUSH_MS: z.coerce.number().int().min(0).max(1_000).default(50),
  EVENTS_RETENTION_MS: z.coerce.number().int().min(60_000).max(30 * 86_400_000).default(86_400_000),
  EVENTS_HEARTBEAT_MS: z.coerce.number().int().min(1_000).max(300_000).default(15_000),
  STREAM_TICKET_TTL_MS: z.coerce.number().int().min(1_000).max(600_000).default(60_000),
  AUTH_FAILURE_RATE_LIMIT_MAX: z.coerce.number().int().min(1).default(20),
  AUTH_FAILURE_RATE_LIMIT_WINDOW_MS: z.coerce.number().int().min(100).default(60_000),
  DOCUMENT_QUOTA_COUNT: z.coerce.number().int().min(1).default(1_000),
  DOCUMENT_QUOTA_BYTES: z.coerce.number().int().min(1024).default(100 * 1024 * 1024),
  HTTP_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(10_000),
  HTTP_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(72_000),
  HTTP_IDLE_TIMEOUT_MS: z.coerce.number().int().min(0).max(3_600_000).optional(),
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).max(600_000).default(25_000),
  QUEUE_STALLED_INTERVAL_MS: z.coerce.number().int().min(100).max(600_000).default(30_000),
  QUEUE_LOCK_DURATION_MS: z.coerce.number().int().min(500).max(600_000).default(30_000),
  RECONCILE_INTERVAL_MS: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
  RECONCILE_AFTER_MS: z.coerce.number().int().min(100).max(86_400_000).default(60_000),
  TAKEOVER_AFTER_MS: z.coerce.number().int().min(100).max(600_000).default(1_000),
  TAKEOVER_LEASE_MS: z.coerce.number().int().min(1_000).max(3_600_000).default(10_000),
  PG_RESTART_CHECK_MS: z.coerce.number().int().min(0).max(600_000).default(1_000),
  AUTOSCALE_ENABLED: z.string().trim().toLowerCase().pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'])).default('true'),
  AUTOSCALE_INTERVAL_MS: z.coerce.number().int().min(50).max(600_000).default(5_000),
  AUTOSCALE_TARGET_DRAIN_MS: z.coerce.number().int().min(100).max(3_600_000).default(10_000),
  AUTOSCALE_UP_COOLDOWN_MS: z.coerce.number().int().min(0).max(3_600_000).default(10_000),
  AUTOSCALE_DOWN_COOLDOWN_MS: z.coerce.number().int().min(0).max(3_600_000).default(30_000),
  AUTOSCALE_IDLE_MS: z.coerce.number().int().min(0).max(86_400_000).default(60_000),

  ALERTS_INTERVAL_MS: z.coerce.number().int().min(0).max(86_400_000).default(15_000),
  ALERTS_WINDOW_MS: z.coerce.number().int().min(10_000).max(86_400_000).default(300_000),
  ALERTS_QUEUE_BACKLOG: z.coerce.number().int().min(0).default(1_000),
  ALERTS_OLDEST_WAITING_MS: z.coerce.number().int().min(0).default(120_000),
  ALERTS_FAILURE_RATE: z.coerce.number().min(0).max(1).default(0.2),
  ALERTS_MIN_SAMPLES: z.coerce.number().int().min(1).default(20),
  ALERTS_P95_MS: z.coerce.number().int().min(0).default(30_000),
  ALERTS_STALLED_JOBS: z.coerce.number().int().min(0).default(0),
  ALERTS_NOT_CONSUMING_MS: z.coerce.number().int().min(1_000).default(60_000),
  ALERTS_PROVIDER_ERROR_RATE: z.coerce.number().min(0).max(1).default(0.25),
  ALERTS_PROVIDER_429_RATE: z.coerce.number().min(0).max(1).default(0.1),
  ALERTS_ROCKETREACH_CREDITS: z.coerce.number().min(0).default(100),
  ALERTS_ROCKETREACH_CHECK_MS: z.coerce.number().int().min(60_000).default(300_000),
  ALERTS_WEBHOOK_URL: optionalString.pipe(z.string().url().optional()),
  ALERTS_WEBHOOK_SECRET: optionalString.pipe(z.string().min(16, 'must be at least 16 characters').optional()),
  ALERTS_WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(5_000),

  METRICS_TOKEN: optionalString.pipe(z.string().min(16, 'must be at least 16 characters').optional()),
  HEALTH_WORKER_STALE_MS: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
  HEALTH_CHECK_TIMEOUT_MS: z.coerce.number().int().min(50).max(30_000).default(1_000),

  BOOTSTRAP_ORG_NAME: z.string().min(1).max(200).default('Default organization'),
  BOOTSTRAP_ADMIN_EMAIL: z.string().email().default('admin@example.com'),
});

type Env = z.infer<typeof schema>;

/** The settings of a stage's name, `CONCURRENCY_<NAME>` and its autoscaling bounds. */
export function concurrencyEnvKey(stage: string): string {
  return `CONCURRENCY_${stage.toUpperCase().replace(/-/g, '_')}`;
}

/**
 * The settings each stage of the catalog brings: its concurrency and autoscaling bounds, and for
 * a stage with a limiter its rate limit and global concurrency — named as they always were
 * (`CONCURRENCY_OPENAI`, `OPENAI_RATE_LIMIT_MAX`, `ROCKETREACH_MAX_CONCURRENT`).
 */
function stageSettingsSchema(catalog: Catalog): Record<string, z.ZodType<number | undefined>> {
  const shape: Record<string, z.ZodType<number | undefined>> = {};
  for (const stage of stageOrder(catalog)) {
    const definition = catalog[stage];
    const name = concurrencyEnvKey(stage);
    const bounded = () => z.coerce.number().int().min(1).max(definition.concurrency.max);
    shape[name] = bounded().default(definition.concurrency.default);
    shape[`${name}_MIN`] = bounded().optional();
    shape[`${name}_MAX`] = bounded().optional();
    const limiter = definition.limiter;
    if (!limiter) continue;
    shape[`${limiter.env}_RATE_LIMIT_MAX`] = z.coerce.number().int().min(1).default(limiter.max);
    shape[`${limiter.env}_RATE_LIMIT_DURATION_MS`] = z.coerce.number().int().min(100).default(limiter.durationMs);
    if (limiter.globalConcurrency) {
      shape[`${limiter.env}_MAX_CONCURRENT`] = z.coerce.number().int().min(1).max(limiter.globalConcurrency.max).default(limiter.globalConcurrency.default);
    }
  }
  return shape;
}

/** A stage's provider limits, from its limiter's settings. */
export interface StageLimits {
  /** Jobs started per `duration` ms across every worker of the stage. */
  max: number;
  duration: number;
  /** Whether workers apply the rate limit (the offline LLM provider calls nobody and is not limited). */
  enforced: boolean;
  /** Jobs of the stage running at once across every process. */
  globalConcurrency?: number;
}

export interface Config {
  /** The stages this process runs; every per-stage setting below is derived from it. */
  catalog: Catalog;
  database: { url: string; poolMax: number };
  /**
   * `url`: one Redis. `configured`: REDIS_URL or REDIS_CLUSTER_NODES was set; otherwise `url` is
   * the default address, tried only when asked for. `clusterNodes`: the seed nodes of a Redis
   * Cluster; when set, `url` is not used, `queue.prefix` is a hash tag and every queue gets a tag
   * of its own.
   */
  redis: { url: string; configured: boolean; clusterNodes?: ReadonlyArray<{ host: string; port: number }> };
  /**
   * `trustProxy` of Fastify: whose X-Forwarded-* headers are believed (the client address, and
   * X-Forwarded-Proto for the session cookie's Secure flag). false: none, the socket is the truth.
   */
  http: { port: number; host: string; trustProxy: boolean | number | string; timeouts: HttpTimeouts };
  logLevel: Env['LOG_LEVEL'];
  openai: { apiKey: string | undefined; baseURL: string | undefined; model: string; timeoutMs: number; historyTokenBudget: number };
  intentClassifier: 'local' | 'llm';
  rocketreach: { apiKey: string | undefined; baseUrl: string; deadlineMs: number; pollIntervalMs: number };
  bootstrap: { orgName: string; adminEmail: string };
  queue: {
    /**
     * Where the queues and the coordination between processes live. `auto` (QUEUE_BACKEND unset) is
     * settled at start-up (src/queue/transport-choice.ts): the system's recorded choice, else Redis
     * when REDIS_URL is set and answers, else PostgreSQL.
     */
    backend: 'redis' | 'postgres' | 'auto';
    /** Connections of the process's PostgreSQL queue pool for queries (each worker holds one more for LISTEN). */
    postgresPoolMax: number;
    prefix: string;
    concurrency: Record<StageName, number>;
    /** The stages with a limiter in the catalog. */
    limiters: Partial<Record<StageName, StageLimits>>;
    stalledIntervalMs: number;
    lockDurationMs: number;
    reconcileIntervalMs: number;
    reconcileAfterMs: number;
    /** Transport-loss takeover (src/engine/takeover.ts): after how long unreachable, and the lease of a run taken over. */
    takeoverAfterMs: number;
    takeoverLeaseMs: number;
    /** How often PostgreSQL's start time is read to notice a restart (0: never). */
    restartCheckMs: number;
    autoscale: AutoscaleConfig;
  };
  rateLimit: { max: number; windowMs: number };
  /** Failed authentications (401) per client address and window, in this process. */
  authFailureLimit: { max: number; windowMs: number };
  /** Concurrent `wait`s on /comprehensive per organization, in this process. */
  maxWaitsPerOrg: number;
  /** Backpressure (src/domain/chat/backlog.ts): open runs per organization and overall, and how they are counted. */
  backlog: { maxPerOrg: number; maxTotal: number; refreshMs: number; halfLifeMs: number; calibrationHalfLifeRuns: number };
  /** Live event streams (README "Event streams"). */
  events: { flushMs: number; retentionMs: number; heartbeatMs: number; ticketTtlMs: number };
  documentQuota: { count: number; bytes: number };
  shutdownTimeoutMs: number;
  limits: { maxContentBytes: number; maxDocumentBytes: number };
  /** Health checks and metrics (src/monitoring/). */
  monitoring: { metricsToken: string | undefined; workerStaleMs: number; healthCheckTimeoutMs: number };
  alerts: AlertsConfig;
  /** Fairness across organizations (src/fairness.config.ts). */
  fairness: FairnessConfig;
  /** Where this working directory's data lives (HONEYJAR_DATA_DIR, absolute): the embedded PostgreSQL, and which database is used. */
  dataDir: string;
  /** Which addresses were set in the environment rather than defaulted: the start-up lines say why a database or transport is used. */
  explicit: { databaseUrl: boolean; redisUrl: boolean };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function loadConfig(env: Record<string, string | undefined>, catalog: Catalog = CATALOG): Readonly<Config> {
  const parsed = schema.extend(stageSettingsSchema(catalog)).extend(FAIRNESS_ENV).safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const e = parsed.data as unknown as Env;
  const stageEnv = parsed.data as unknown as Record<string, number | undefined>;
  if (e.INTENT_CLASSIFIER === 'llm' && !e.OPENAI_API_KEY) {
    throw new ConfigError('Invalid configuration:\n  INTENT_CLASSIFIER=llm needs OPENAI_API_KEY');
  }
  return deepFreeze({
    catalog,
    database: { url: e.DATABASE_URL, poolMax: e.DATABASE_POOL_MAX },
    redis: {
      url: e.REDIS_URL ?? DEFAULT_REDIS_URL,
      configured: e.REDIS_URL !== undefined || e.REDIS_CLUSTER_NODES !== undefined,
      ...(e.REDIS_CLUSTER_NODES ? { clusterNodes: clusterNodesOf(e.REDIS_CLUSTER_NODES) } : {}),
    },
    http: { port: e.PORT, host: e.HOST, trustProxy: trustProxyOf(e.TRUST_PROXY), timeouts: httpTimeouts(e, replyStageOf(catalog).attempts) },
    logLevel: e.LOG_LEVEL,
    openai: {
      apiKey: e.OPENAI_API_KEY,
      baseURL: e.OPENAI_BASE_URL,
      model: e.OPENAI_MODEL,
      timeoutMs: e.OPENAI_TIMEOUT_MS,
      historyTokenBudget: e.LLM_HISTORY_TOKEN_BUDGET,
    },
    intentClassifier: e.INTENT_CLASSIFIER,
    rocketreach: {
      apiKey: e.ROCKETREACH_API_KEY,
      baseUrl: e.ROCKETREACH_BASE_URL,
      deadlineMs: e.ROCKETREACH_DEADLINE_MS,
      pollIntervalMs: e.ROCKETREACH_POLL_INTERVAL_MS,
    },
    bootstrap: { orgName: e.BOOTSTRAP_ORG_NAME, adminEmail: e.BOOTSTRAP_ADMIN_EMAIL },
    queue: {
      backend: e.QUEUE_BACKEND ?? 'auto',
      postgresPoolMax: e.QUEUE_POSTGRES_POOL_MAX,
      // On a cluster every key of the system hashes to one slot through this tag (multi-key
      // commands stay legal), except the queues, which each get their own (src/adapters/bullmq).
      prefix: e.REDIS_CLUSTER_NODES ? `{${e.QUEUE_PREFIX}}` : e.QUEUE_PREFIX,
      concurrency: Object.fromEntries(stageOrder(catalog).map((stage) => [stage, stageEnv[concurrencyEnvKey(stage)]!])) as Record<StageName, number>,
      limiters: limitsOf(catalog, env, stageEnv),
      stalledIntervalMs: e.QUEUE_STALLED_INTERVAL_MS,
      lockDurationMs: e.QUEUE_LOCK_DURATION_MS,
      reconcileIntervalMs: e.RECONCILE_INTERVAL_MS,
      reconcileAfterMs: e.RECONCILE_AFTER_MS,
      takeoverAfterMs: e.TAKEOVER_AFTER_MS,
      takeoverLeaseMs: e.TAKEOVER_LEASE_MS,
      restartCheckMs: e.PG_RESTART_CHECK_MS,
      autoscale: autoscaleConfig(e, catalog, stageEnv),
    },
    rateLimit: { max: e.RATE_LIMIT_MAX, windowMs: e.RATE_LIMIT_WINDOW_MS },
    authFailureLimit: { max: e.AUTH_FAILURE_RATE_LIMIT_MAX, windowMs: e.AUTH_FAILURE_RATE_LIMIT_WINDOW_MS },
    maxWaitsPerOrg: e.COMPREHENSIVE_MAX_WAITS_PER_ORG,
    backlog: {
      maxPerOrg: e.BACKLOG_MAX_PER_ORG,
      maxTotal: e.BACKLOG_MAX_TOTAL,
      refreshMs: e.BACKLOG_REFRESH_MS,
      halfLifeMs: e.BACKLOG_RATE_HALF_LIFE_MS,
      calibrationHalfLifeRuns: e.BACKLOG_CALIBRATION_HALF_LIFE_RUNS,
    },
    events: { flushMs: e.EVENTS_FLUSH_MS, retentionMs: e.EVENTS_RETENTION_MS, heartbeatMs: e.EVENTS_HEARTBEAT_MS, ticketTtlMs: e.STREAM_TICKET_TTL_MS },
    documentQuota: { count: e.DOCUMENT_QUOTA_COUNT, bytes: e.DOCUMENT_QUOTA_BYTES },
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    limits: { maxContentBytes: 32 * 1024, maxDocumentBytes: 1024 * 1024 },
    monitoring: { metricsToken: e.METRICS_TOKEN, workerStaleMs: e.HEALTH_WORKER_STALE_MS, healthCheckTimeoutMs: e.HEALTH_CHECK_TIMEOUT_MS },
    alerts: alertsConfig(e),
    fairness: fairnessConfig(parsed.data as unknown as FairnessEnv),
    dataDir: resolve(e.HONEYJAR_DATA_DIR ?? '.honeyjar'),
    explicit: { databaseUrl: env.DATABASE_URL !== undefined, redisUrl: env.REDIS_URL !== undefined },
  });
}

function clusterNodesOf(value: string): Array<{ host: string; port: number }> {
  return value.split(',').map((pair) => {
    const [host, port] = pair.trim().split(':') as [string, string];
    const number = Number(port);
    if (number < 1 || number > 65535) throw new ConfigError(`Invalid configuration:\n  REDIS_CLUSTER_NODES: port out of range in ${pair.trim()}`);
    return { host, port: number };
  });
}

function trustProxyOf(value: string | undefined): boolean | number | string {
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  if (/^\d+$/.test(value)) return Number(value);
  return value.split(',').map((part) => part.trim()).join(',');
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** Timeouts of the HTTP server (Node's http server, set through Fastify's options). */
export interface HttpTimeouts {
  /** The request line and headers must arrive within this (slow-header clients). */
  headersMs: number;
  /** The whole request, body included, must arrive within this; answering may take longer. */
  requestMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveMs: number;
  /** A socket with no traffic either way is closed after this; 0: never. */
  idleMs: number;
}

/**
 * The idle timeout must outlast the slowest answer the API gives in silence: the blocking endpoint
 * waits for the LLM (every attempt of it) and `wait` on /comprehensive for up to a minute. By
 * default it is the LLM timeout times its attempts plus a minute; streaming endpoints send
 * keep-alive comments well within it.
 */
function httpTimeouts(e: Env, replyAttempts: number): HttpTimeouts {
  if (e.HTTP_HEADERS_TIMEOUT_MS > e.HTTP_REQUEST_TIMEOUT_MS) {
    throw new ConfigError(`Invalid configuration:\n  HTTP_HEADERS_TIMEOUT_MS (${e.HTTP_HEADERS_TIMEOUT_MS}) is above HTTP_REQUEST_TIMEOUT_MS (${e.HTTP_REQUEST_TIMEOUT_MS})`);
  }
  return {
    headersMs: e.HTTP_HEADERS_TIMEOUT_MS,
    requestMs: e.HTTP_REQUEST_TIMEOUT_MS,
    keepAliveMs: e.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    idleMs: e.HTTP_IDLE_TIMEOUT_MS ?? e.OPENAI_TIMEOUT_MS * replyAttempts + 60_000,
  };
}

/** Auto-scaling of worker concurrency (src/domain/monitoring/autoscaler.ts, src/queue/autoscaling.ts). */
export interface AutoscaleConfig {
  enabled: boolean;
  intervalMs: number;
  targetDrainMs: number;
  upCooldownMs: number;
  downCooldownMs: number;
  idleMs: number;
  /** Per stage: the range the controller keeps the concurrency in; `max` is already lowered to `cap`. */
  limits: Record<StageName, { min: number; max: number; cap?: { value: number; reason: string } }>;
}

/**
 * Defaults per stage: min is half the seed's default (at least 1), max four times it, widened to
 * include `CONCURRENCY_<STAGE>` (the starting value). Max never exceeds a provider's cap: for the
 * LLM the rate limiter's `max` (more jobs in flight than it admits per window only wait), for
 * RocketReach the global concurrency and its limiter. An explicit min above the max is an error.
 */
function autoscaleConfig(e: Env, catalog: Catalog, env: Record<string, number | undefined>): AutoscaleConfig {
  const limits = {} as AutoscaleConfig['limits'];
  for (const stage of stageOrder(catalog)) {
    const name = concurrencyEnvKey(stage);
    const seed = catalog[stage].concurrency.default;
    const start = env[name] ?? seed;
    const explicitMin = env[`${name}_MIN`];
    const explicitMax = env[`${name}_MAX`];
    if (explicitMin !== undefined && explicitMax !== undefined && explicitMin > explicitMax) {
      throw new ConfigError(`Invalid configuration:\n  ${name}_MIN (${explicitMin}) is above ${name}_MAX (${explicitMax})`);
    }
    const cap = capOf(catalog[stage].limiter, env);
    if (explicitMin !== undefined && cap && explicitMin > cap.value) {
      throw new ConfigError(`Invalid configuration:\n  ${name}_MIN (${explicitMin}) is above ${cap.reason}`);
    }
    let max = explicitMax ?? Math.max(seed * 4, start, explicitMin ?? 1);
    if (cap) max = Math.min(max, cap.value);
    const min = Math.min(explicitMin ?? Math.min(Math.max(1, Math.floor(seed / 2)), start), max);
    limits[stage] = { min, max, ...(cap ? { cap } : {}) };
  }
  return {
    enabled: ['true', '1', 'yes', 'on'].includes(e.AUTOSCALE_ENABLED),
    intervalMs: e.AUTOSCALE_INTERVAL_MS,
    targetDrainMs: e.AUTOSCALE_TARGET_DRAIN_MS,
    upCooldownMs: e.AUTOSCALE_UP_COOLDOWN_MS,
    downCooldownMs: e.AUTOSCALE_DOWN_COOLDOWN_MS,
    idleMs: e.AUTOSCALE_IDLE_MS,
    limits,
  };
}

/**
 * The most a stage's concurrency is worth raising to: more jobs in flight than its rate limiter
 * admits per window, or than its global concurrency, only wait. The lower of the two.
 */
function capOf(limiter: StageLimiter | undefined, env: Record<string, number | undefined>): { value: number; reason: string } | undefined {
  if (!limiter) return undefined;
  const rate = { value: env[`${limiter.env}_RATE_LIMIT_MAX`]!, reason: `${limiter.env}_RATE_LIMIT_MAX ${env[`${limiter.env}_RATE_LIMIT_MAX`]}` };
  if (!limiter.globalConcurrency) return rate;
  const global = env[`${limiter.env}_MAX_CONCURRENT`]!;
  return rate.value < global ? rate : { value: global, reason: `${limiter.env}_MAX_CONCURRENT ${global}, the global limit` };
}

function limitsOf(catalog: Catalog, raw: Record<string, string | undefined>, env: Record<string, number | undefined>): Partial<Record<StageName, StageLimits>> {
  const limits: Partial<Record<StageName, StageLimits>> = {};
  for (const stage of stageOrder(catalog)) {
    const limiter = catalog[stage].limiter;
    if (!limiter) continue;
    const global = env[`${limiter.env}_MAX_CONCURRENT`];
    limits[stage] = {
      max: env[`${limiter.env}_RATE_LIMIT_MAX`]!,
      duration: env[`${limiter.env}_RATE_LIMIT_DURATION_MS`]!,
      enforced: limiter.onlyWith === undefined || (raw[limiter.onlyWith] ?? '').trim() !== '',
      ...(global !== undefined ? { globalConcurrency: global } : {}),
    };
  }
  return limits;
}

/** The stage whose result is the reply (the one with a `reply` hook). */
function replyStageOf(catalog: Catalog): StageDefinitionData {
  const stage = stageOrder(catalog).find((name) => catalog[name].reply);
  if (!stage) throw new ConfigError('Invalid configuration:\n  the stage catalog has no stage that makes the reply');
  return catalog[stage];
}

/** Alert rules and their evaluator (src/domain/monitoring/alert-rules.ts, alerts.service.ts). */
export interface AlertsConfig {
  /** Time between evaluation passes across all processes; 0 turns the schedule off. */
  intervalMs: number;
  /** The window of the rate, percentile and stalled-job rules. */
  windowMs: number;
  queueBacklog: number;
  oldestWaitingMs: number;
  failureRate: number;
  minSamples: number;
  p95Ms: number;
  stalledJobs: number;
  notConsumingMs: number;
  providerErrorRate: number;
  provider429Rate: number;
  rocketreachCredits: number;
  rocketreachCheckMs: number;
  webhookUrl: string | undefined;
  /** Signs each delivery (HMAC-SHA256) when set. */
  webhookSecret: string | undefined;
  webhookTimeoutMs: number;
}

function alertsConfig(e: Env): AlertsConfig {
  return {
    intervalMs: e.ALERTS_INTERVAL_MS,
    windowMs: e.ALERTS_WINDOW_MS,
    queueBacklog: e.ALERTS_QUEUE_BACKLOG,
    oldestWaitingMs: e.ALERTS_OLDEST_WAITING_MS,
    failureRate: e.ALERTS_FAILURE_RATE,
    minSamples: e.ALERTS_MIN_SAMPLES,
    p95Ms: e.ALERTS_P95_MS,
    stalledJobs: e.ALERTS_STALLED_JOBS,
    notConsumingMs: e.ALERTS_NOT_CONSUMING_MS,
    providerErrorRate: e.ALERTS_PROVIDER_ERROR_RATE,
    provider429Rate: e.ALERTS_PROVIDER_429_RATE,
    rocketreachCredits: e.ALERTS_ROCKETREACH_CREDITS,
    rocketreachCheckMs: e.ALERTS_ROCKETREACH_CHECK_MS,
    webhookUrl: e.ALERTS_WEBHOOK_URL,
    webhookSecret: e.ALERTS_WEBHOOK_SECRET,
    webhookTimeoutMs: e.ALERTS_WEBHOOK_TIMEOUT_MS,
  };
}
