import { z } from 'zod';
import { PIPELINE } from './domain/pipeline.js';
import type { StageName } from './domain/stages/types.js';

/**
 * Every setting the server reads, validated once. `loadConfig(process.env)` is called by the entry
 * points only; everything else receives the frozen result.
 */
const optionalString = z
  .string()
  .trim()
  .transform((value) => (value === '' ? undefined : value))
  .optional();

const schema = z.object({
  DATABASE_URL: z.string().url().default('postgres://postgres@127.0.0.1:5432/honeyjar'),
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(200).default(20),
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3005),
  HOST: z.string().min(1).default('127.0.0.1'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

  OPENAI_API_KEY: optionalString,
  OPENAI_BASE_URL: optionalString.pipe(z.string().url().optional()),
  OPENAI_MODEL: z.string().min(1).default('gpt-4o-mini'),
  OPENAI_TIMEOUT_MS: z.coerce.number().int().min(1000).max(600_000).default(60_000),
  INTENT_CLASSIFIER: z.enum(['local', 'llm']).default('local'),

  ROCKETREACH_API_KEY: optionalString,
  ROCKETREACH_BASE_URL: z.string().url().default('https://api.rocketreach.co/api/v2'),
  ROCKETREACH_DEADLINE_MS: z.coerce.number().int().min(1000).max(300_000).default(30_000),
  ROCKETREACH_POLL_INTERVAL_MS: z.coerce.number().int().min(10).max(60_000).default(1000),

  QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_.-]+$/).default('honeyjar'),
  CONCURRENCY_INTENT: z.coerce.number().int().min(1).max(500).default(PIPELINE.intent.defaultConcurrency),
  CONCURRENCY_SECURITY: z.coerce.number().int().min(1).max(500).default(PIPELINE.security.defaultConcurrency),
  CONCURRENCY_RAG: z.coerce.number().int().min(1).max(500).default(PIPELINE.rag.defaultConcurrency),
  CONCURRENCY_ROCKETREACH: z.coerce.number().int().min(1).max(100).default(PIPELINE.rocketreach.defaultConcurrency),
  CONCURRENCY_OPENAI: z.coerce.number().int().min(1).max(500).default(PIPELINE.openai.defaultConcurrency),
  OPENAI_RATE_LIMIT_MAX: z.coerce.number().int().min(1).default(500),
  OPENAI_RATE_LIMIT_DURATION_MS: z.coerce.number().int().min(100).default(60_000),
  ROCKETREACH_RATE_LIMIT_MAX: z.coerce.number().int().min(1).default(10),
  ROCKETREACH_RATE_LIMIT_DURATION_MS: z.coerce.number().int().min(100).default(1_000),
  ROCKETREACH_MAX_CONCURRENT: z.coerce.number().int().min(1).max(100).default(2),
  RATE_LIMIT_MAX: z.coerce.number().int().min(1).default(600),
  RATE_LIMIT_WINDOW_MS: z.coerce.number().int().min(100).default(60_000),
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).max(600_000).default(25_000),
  QUEUE_STALLED_INTERVAL_MS: z.coerce.number().int().min(100).max(600_000).default(30_000),
  QUEUE_LOCK_DURATION_MS: z.coerce.number().int().min(500).max(600_000).default(30_000),
  RECONCILE_INTERVAL_MS: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
  RECONCILE_AFTER_MS: z.coerce.number().int().min(100).max(86_400_000).default(60_000),

  BOOTSTRAP_ORG_NAME: z.string().min(1).max(200).default('Default organization'),
  BOOTSTRAP_ADMIN_EMAIL: z.string().email().default('admin@example.com'),
});

type Env = z.infer<typeof schema>;

export interface Config {
  database: { url: string; poolMax: number };
  redis: { url: string };
  http: { port: number; host: string };
  logLevel: Env['LOG_LEVEL'];
  openai: { apiKey: string | undefined; baseURL: string | undefined; model: string; timeoutMs: number };
  intentClassifier: 'local' | 'llm';
  rocketreach: { apiKey: string | undefined; baseUrl: string; deadlineMs: number; pollIntervalMs: number };
  bootstrap: { orgName: string; adminEmail: string };
  queue: {
    prefix: string;
    concurrency: Record<StageName, number>;
    openaiLimiter: { max: number; duration: number };
    rocketreachLimiter: { max: number; duration: number };
    rocketreachMaxConcurrent: number;
    stalledIntervalMs: number;
    lockDurationMs: number;
    reconcileIntervalMs: number;
    reconcileAfterMs: number;
  };
  rateLimit: { max: number; windowMs: number };
  shutdownTimeoutMs: number;
  limits: { maxContentBytes: number; maxDocumentBytes: number };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function loadConfig(env: Record<string, string | undefined>): Readonly<Config> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const e = parsed.data;
  if (e.INTENT_CLASSIFIER === 'llm' && !e.OPENAI_API_KEY) {
    throw new ConfigError('Invalid configuration:\n  INTENT_CLASSIFIER=llm needs OPENAI_API_KEY');
  }
  return deepFreeze({
    database: { url: e.DATABASE_URL, poolMax: e.DATABASE_POOL_MAX },
    redis: { url: e.REDIS_URL },
    http: { port: e.PORT, host: e.HOST },
    logLevel: e.LOG_LEVEL,
    openai: { apiKey: e.OPENAI_API_KEY, baseURL: e.OPENAI_BASE_URL, model: e.OPENAI_MODEL, timeoutMs: e.OPENAI_TIMEOUT_MS },
    intentClassifier: e.INTENT_CLASSIFIER,
    rocketreach: {
      apiKey: e.ROCKETREACH_API_KEY,
      baseUrl: e.ROCKETREACH_BASE_URL,
      deadlineMs: e.ROCKETREACH_DEADLINE_MS,
      pollIntervalMs: e.ROCKETREACH_POLL_INTERVAL_MS,
    },
    bootstrap: { orgName: e.BOOTSTRAP_ORG_NAME, adminEmail: e.BOOTSTRAP_ADMIN_EMAIL },
    queue: {
      prefix: e.QUEUE_PREFIX,
      concurrency: {
        intent: e.CONCURRENCY_INTENT,
        security: e.CONCURRENCY_SECURITY,
        rag: e.CONCURRENCY_RAG,
        rocketreach: e.CONCURRENCY_ROCKETREACH,
        openai: e.CONCURRENCY_OPENAI,
      },
      openaiLimiter: { max: e.OPENAI_RATE_LIMIT_MAX, duration: e.OPENAI_RATE_LIMIT_DURATION_MS },
      rocketreachLimiter: { max: e.ROCKETREACH_RATE_LIMIT_MAX, duration: e.ROCKETREACH_RATE_LIMIT_DURATION_MS },
      rocketreachMaxConcurrent: e.ROCKETREACH_MAX_CONCURRENT,
      stalledIntervalMs: e.QUEUE_STALLED_INTERVAL_MS,
      lockDurationMs: e.QUEUE_LOCK_DURATION_MS,
      reconcileIntervalMs: e.RECONCILE_INTERVAL_MS,
      reconcileAfterMs: e.RECONCILE_AFTER_MS,
    },
    rateLimit: { max: e.RATE_LIMIT_MAX, windowMs: e.RATE_LIMIT_WINDOW_MS },
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    limits: { maxContentBytes: 32 * 1024, maxDocumentBytes: 1024 * 1024 },
  });
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
