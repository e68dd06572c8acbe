/**
 * Helpers for tests that run real server processes (`node bin/honeyjar.js start|api|worker`): spawn
 * with a clean environment, parse the JSON log lines on stdout, wait on log lines, exits and
 * conditions (never fixed sleeps), plain HTTP without connection reuse, the CLI's `bootstrap`, and
 * cleanup of a test's Redis keys.
 *
 * Every process spawned here is remembered; `killAll()` ends them (afterAll/afterEach), and a last
 * resort SIGKILLs any still running when the test worker itself ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { atTestProcessEnd } from './cleanup.js';
import { testTransport } from './transport.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = fileURLToPath(new URL('../../bin/honeyjar.js', import.meta.url));
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export type Role = 'start' | 'api' | 'worker';

/** One parsed pino line. */
export interface LogLine {
  level?: number;
  time?: number;
  pid?: number;
  msg?: string;
  req?: { method?: string; url?: string; remotePort?: number };
  res?: { statusCode?: number };
  [key: string]: unknown;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() when the exit was seen. */
  at: number;
}

export interface ServerProcess {
  readonly name: string;
  readonly role: Role | 'cli';
  readonly child: ChildProcess;
  readonly pid: number;
  /** JSON log lines from stdout, in order. */
  readonly logs: LogLine[];
  /** Every stdout line, raw. */
  readonly lines: string[];
  /** Set once the `Server listening on port N` line was seen. */
  port: number | undefined;
  /** Set once the process exited. */
  exit: ExitInfo | undefined;
  readonly exited: Promise<ExitInfo>;
  /** Resolves once stdout ended and every line of it was read. */
  readonly outputClosed: Promise<void>;
  readonly spawnedAt: number;
  baseUrl(): string;
  stderr(): string;
  /** Resolves with the first log line (past or future) that matches; rejects on timeout or exit. */
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs: number, what?: string): Promise<LogLine>;
  /** Resolves with the exit; rejects after `timeoutMs`. */
  waitForExit(timeoutMs: number): Promise<ExitInfo>;
  signal(signal: NodeJS.Signals): void;
  /** SIGKILL if still running, and wait for the exit. */
  kill(): Promise<void>;
  /** The last lines of stdout and stderr, for failure messages. */
  tail(lines?: number): string;
}

const running = new Set<ServerProcess>();

/** Variables every server process gets; the server reads nothing else from the test's environment. */
export function serverEnv(options: { databaseUrl: string; prefix: string }, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: options.databaseUrl,
    QUEUE_PREFIX: options.prefix,
    QUEUE_BACKEND: testTransport,
    REDIS_URL,
    // With the queues on PostgreSQL each process holds a queue pool too; test files run side by side.
    QUEUE_POSTGRES_POOL_MAX: '4',
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    PORT: '0',
    DATABASE_POOL_MAX: '8',
    // Fixed worker concurrency (CONCURRENCY_<STAGE>), so that tests can reason about it.
    AUTOSCALE_ENABLED: 'false',
    ...extra,
  };
}

function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  // Only what node needs to run, plus the given settings: nothing from the developer's shell (an
  // OPENAI_API_KEY, a DATABASE_URL…) leaks into the server under test.
  const keep = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'SYSTEMROOT'];
  const base: NodeJS.ProcessEnv = {};
  for (const key of keep) if (process.env[key] !== undefined) base[key] = process.env[key];
  return { ...base, ...env };
}

/**
 * `launcher` runs node through another command that ends by exec'ing it (e.g. `nsenter --net=… --`,
 * to run it in another network namespace), so that the child's pid and signals are still node's.
 */
function spawnTracked(name: string, role: Role | 'cli', args: string[], env: Record<string, string>, launcher: string[] = []): ServerProcess {
  const [command, ...prefix] = [...launcher, process.execPath];
  const child = spawn(command!, [...prefix, BIN, ...args], { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`${name}: could not spawn ${args.join(' ')}`);
  const logs: LogLine[] = [];
  const lines: string[] = [];
  let stderr = '';
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const listener of [...listeners]) listener();
  };

  let exitInfo: ExitInfo | undefined;
  let stdoutClosed = false;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal, at: Date.now() };
      proc.exit = exitInfo;
      running.delete(proc);
      resolve(exitInfo);
      notify();
    });
  });

  const reader = createInterface({ input: child.stdout! });
  reader.on('line', (line) => {
    lines.push(line);
    if (line.startsWith('{')) {
      try {
        const parsed = JSON.parse(line) as LogLine;
        logs.push(parsed);
        const port = typeof parsed.msg === 'string' ? /^Server listening on port (\d+)$/.exec(parsed.msg)?.[1] : undefined;
        if (port) proc.port = Number(port);
      } catch {
        // a partial or foreign line: kept raw only
      }
    }
    notify();
  });
  const outputClosed = new Promise<void>((resolve) =>
    reader.once('close', () => {
      stdoutClosed = true;
      resolve();
      notify();
    }),
  );
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-64 * 1024);
  });

  const proc: ServerProcess = {
    name,
    role,
    child,
    pid: child.pid,
    logs,
    lines,
    port: undefined,
    exit: undefined,
    exited,
    outputClosed,
    spawnedAt: Date.now(),
    baseUrl() {
      if (proc.port === undefined) throw new Error(`${name} has no HTTP port (yet)`);
      return `http://127.0.0.1:${proc.port}`;
    },
    stderr: () => stderr,
    waitForLog(predicate, timeoutMs, what = 'a log line') {
      return new Promise<LogLine>((resolve, reject) => {
        let seen = 0;
        const check = () => {
          for (; seen < logs.length; seen++) {
            const line = logs[seen]!;
            if (predicate(line)) return done(() => resolve(line));
          }
          // Exited and every line read: it will never come.
          if (exitInfo && stdoutClosed) {
            done(() => reject(new Error(`${name} exited (${exitInfo!.code ?? exitInfo!.signal}) before ${what}\n${proc.tail()}`)));
          }
        };
        const timer = setTimeout(() => done(() => reject(new Error(`${name}: no ${what} within ${timeoutMs} ms\n${proc.tail()}`))), timeoutMs);
        const done = (settle: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          settle();
        };
        listeners.add(check);
        check();
      });
    },
    waitForExit(timeoutMs) {
      if (exitInfo) return Promise.resolve(exitInfo);
      return new Promise<ExitInfo>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name} did not exit within ${timeoutMs} ms\n${proc.tail()}`)), timeoutMs);
        void exited.then((info) => {
          clearTimeout(timer);
          resolve(info);
        });
      });
    },
    signal(signal) {
      if (!exitInfo) child.kill(signal);
    },
    async kill() {
      if (!exitInfo) child.kill('SIGKILL');
      await exited;
    },
    tail(count = 15) {
      return [
        `--- ${name} (pid ${child.pid}) stdout, last ${count} lines:`,
        ...lines.slice(-count),
        `--- stderr:`,
        ...stderr.split('\n').slice(-count),
      ].join('\n');
    },
  };
  running.add(proc);
  return proc;
}

/**
 * Spawns `node bin/honeyjar.js <role> [...args]` and waits until it is ready: the
 * `Server listening on port N` line for `start`/`api`, `Queue system ready` for `worker`.
 */
export async function startServerProcess(
  role: Role,
  env: Record<string, string>,
  options: { name?: string; args?: string[]; readyTimeoutMs?: number; launcher?: string[] } = {},
): Promise<ServerProcess> {
  const proc = spawnTracked(options.name ?? role, role, [role, ...(options.args ?? [])], env, options.launcher);
  const ready =
    role === 'worker'
      ? (line: LogLine) => typeof line.msg === 'string' && line.msg.startsWith('Queue system ready')
      : (line: LogLine) => typeof line.msg === 'string' && /^Server listening on port \d+$/.test(line.msg);
  // A fatal line (`could not start`) ends the wait at once: such a process may never exit by itself.
  const fatal = (line: LogLine) => (line.level ?? 0) >= 60;
  try {
    const line = await proc.waitForLog((l) => ready(l) || fatal(l), options.readyTimeoutMs ?? 45_000, role === 'worker' ? 'ready line' : 'listening line');
    if (fatal(line)) throw new Error(`${proc.name} could not start: ${JSON.stringify(line.err ?? line.msg)}`);
  } catch (error) {
    await proc.kill();
    throw error;
  }
  return proc;
}

/** Runs a CLI command to completion. */
export async function runCli(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 30_000,
  launcher: string[] = [],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawnTracked(`cli ${args[0] ?? ''}`, 'cli', args, env, launcher);
  try {
    const exit = await proc.waitForExit(timeoutMs);
    // 'exit' can precede the last stdout data; the pipe closing is the end of it.
    await proc.outputClosed;
    return { code: exit.code, stdout: proc.lines.join('\n'), stderr: proc.stderr() };
  } finally {
    await proc.kill();
  }
}

export interface ProcessTenant {
  orgId: string;
  userId: string;
  token: string;
  headers: Record<string, string>;
}

/** `honeyjar bootstrap --org NAME --email EMAIL` against the given database. */
export async function bootstrapTenant(env: Record<string, string>, org: string, email: string): Promise<ProcessTenant> {
  const result = await runCli(['bootstrap', '--org', org, '--email', email], env);
  if (result.code !== 0) throw new Error(`bootstrap exited ${result.code}: ${result.stderr}`);
  const last = result.stdout.trim().split('\n').pop() ?? '';
  const parsed = JSON.parse(last) as { orgId: string; userId: string; token: string };
  return { ...parsed, headers: { authorization: `Bearer ${parsed.token}`, 'x-organization-id': parsed.orgId } };
}

/** Ends every process spawned by this test file that is still running. */
export async function killAll(): Promise<void> {
  await Promise.all([...running].map((proc) => proc.kill()));
}

atTestProcessEnd(() => {
  for (const proc of running) proc.child.kill('SIGKILL');
});

export interface HttpResponse<T = any> {
  status: number;
  headers: IncomingHttpHeaders;
  body: T;
  text: string;
}

export interface HttpRequestOptions {
  headers?: Record<string, string>;
  body?: unknown;
  timeoutMs?: number;
  /** Called once the request is fully written to the socket. */
  onSent?: () => void;
}

/**
 * One HTTP request on its own connection (no keep-alive agent, so no request can land on a pooled
 * socket the server is closing). Rejects with the socket error (e.g. ECONNRESET) if there is no
 * complete answer.
 */
export function http<T = any>(baseUrl: string, method: string, path: string, options: HttpRequestOptions = {}): Promise<HttpResponse<T>> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      new URL(path, baseUrl),
      {
        method,
        agent: false,
        headers: {
          accept: 'application/json',
          ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }),
          ...options.headers,
        },
        timeout: options.timeoutMs ?? 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          if (!res.complete) return reject(new Error(`${method} ${path}: response cut off`));
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = text ? JSON.parse(text) : undefined;
          } catch {
            // not JSON: the text is the body
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: body as T, text });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${options.timeoutMs ?? 30_000} ms`)));
    req.on('error', reject);
    if (options.onSent) req.on('finish', options.onSent);
    req.end(payload);
  });
}

/** Polls `probe` until it answers something other than undefined/false; rejects after `timeoutMs`. */
export async function waitUntil<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs: number; intervalMs?: number; what: string; details?: () => string | Promise<string> },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() >= deadline) {
      const details = options.details ? `\n${await options.details()}` : '';
      throw new Error(`${options.what}: not within ${options.timeoutMs} ms${details}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100));
  }
}

/** Deletes every Redis key of a test's prefix (queues and rate-limit counters). */
export async function deleteRedisKeys(prefix: string): Promise<number> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: true });
  let deleted = 0;
  try {
    await redis.connect();
    for (const pattern of [`${prefix}:*`, `${prefix}:ratelimit:*`]) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) deleted += await redis.del(...keys);
      } while (cursor !== '0');
    }
  } finally {
    redis.disconnect();
  }
  return deleted;
}
