/**
 * Scenario 6 of `npm run bench` (BENCH_ONLY=bare): the time from `npm start` — the real command,
 * with no DATABASE_URL or REDIS_URL — to a healthy server on a bare machine: a network namespace
 * with only loopback (test/support/netns.ts), so nothing answers on 5432 or 6379 and the server
 * starts its embedded PostgreSQL. First starts on an empty data directory (initdb, create, migrate,
 * bootstrap), then restarts on the same one. "Healthy" is the first 200 from the health route
 * (status `degraded` without Redis: the pipeline runs in-process). Each start is stopped with
 * SIGTERM, and must leave no PostgreSQL process behind.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createLoopbackNamespace, loopbackNamespaceUnavailable, processesMentioning, type LoopbackNamespace } from '../test/support/netns.js';
import { round, summarize } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FIRST_STARTS = 2;
const RESTARTS = 3;
const HEALTH_URL = 'http://127.0.0.1:3005/api/v1/chat/system/health';
const START_DEADLINE_MS = 60_000;

export const BARE_TARGETS = { firstStartMs: 10_000, restartMs: 5_000 };

interface StartTiming {
  /** Spawn of `npm start` → the first 200 from the health route. */
  healthyMs: number;
  /**
   * CPU time (user + system) of `npm start`'s process group until healthy, children that ended
   * (initdb, pg_ctl) included; the embedded server itself runs in a session of its own and is
   * not counted. Unlike the wall time, it hardly moves with the machine's load.
   */
  cpuSecondsUntilHealthy: number;
  /** Spawn → the `database:` line (the embedded server runs, before create/migrate). */
  databaseLineMs: number | undefined;
  /** Spawn → `Server listening on port`. */
  listeningMs: number | undefined;
  healthStatus: string | undefined;
  /** The `database:` and `queue transport:` lines as printed. */
  startupLines: string[];
  stopMs: number;
  /** The server logged `shutdown complete` (it did not crash or get cut off). */
  shutdownComplete: boolean;
  leftRunning: number;
  /** When the shutdown did not complete: the last log lines and stderr. */
  lastLines?: string[];
  stderr?: string[];
  /** The 1-minute load average when the start began: on a shared machine, the figures move with it. */
  loadavg1: number;
}

export async function scenarioBareStart(log: (message: string) => void): Promise<Record<string, unknown>> {
  const unavailable = loopbackNamespaceUnavailable();
  if (unavailable) return { skipped: unavailable };
  const ns = await createLoopbackNamespace();
  const root = mkdtempSync(join(tmpdir(), 'honeyjar-bench-bare-'));
  // As root the embedded server runs as the OS user postgres, which must reach the data directory.
  chmodSync(root, 0o755);
  try {
    const first: StartTiming[] = [];
    let dataDir = '';
    for (let i = 0; i < FIRST_STARTS; i++) {
      dataDir = join(root, `data-${i}`);
      first.push(await timeStart(ns, dataDir));
      log(`  first start ${i + 1}: healthy after ${first.at(-1)!.healthyMs} ms`);
    }
    const restarts: StartTiming[] = [];
    for (let i = 0; i < RESTARTS; i++) {
      restarts.push(await timeStart(ns, dataDir));
      log(`  restart ${i + 1}: healthy after ${restarts.at(-1)!.healthyMs} ms`);
    }
    const worst = (timings: StartTiming[]) => Math.max(...timings.map((t) => t.healthyMs));
    return {
      command: 'npm start (no DATABASE_URL, no REDIS_URL, HONEYJAR_DATA_DIR set) in a loopback-only network namespace',
      firstStartMs: summarize(first.map((t) => t.healthyMs)),
      restartMs: summarize(restarts.map((t) => t.healthyMs)),
      firstStartWorstMs: worst(first),
      restartWorstMs: worst(restarts),
      firstStartCpuSeconds: summarize(first.map((t) => t.cpuSecondsUntilHealthy)),
      restartCpuSeconds: summarize(restarts.map((t) => t.cpuSecondsUntilHealthy)),
      leftRunning: [...first, ...restarts].reduce((sum, t) => sum + t.leftRunning, 0),
      incompleteShutdowns: [...first, ...restarts].filter((t) => !t.shutdownComplete).length,
      starts: { first, restarts },
    };
  } finally {
    ns.close();
    rmSync(root, { recursive: true, force: true });
  }
}

async function timeStart(ns: LoopbackNamespace, dataDir: string): Promise<StartTiming> {
  const [command, ...args] = [...ns.launcher, 'npm', 'start', '--silent'];
  const loadavg1 = round(loadavg()[0] ?? Number.NaN, 2);
  const spawnedAt = Date.now();
  const t0 = performance.now();
  // Its own process group: the stop below signals npm and the server together, as a Ctrl-C would.
  const child = spawn(command!, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, HONEYJAR_DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // npm exits on the signal at once; the server's shutdown ends when the last holder of its stdout is gone.
  const outputClosed = new Promise<void>((resolve) => child.stdout!.once('close', () => resolve()));
  const lines: { time: number; msg: string }[] = [];
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let cut: number;
    while ((cut = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, cut);
      buffered = buffered.slice(cut + 1);
      if (!line.startsWith('{')) continue;
      try {
        const parsed = JSON.parse(line) as { time?: number; msg?: string };
        if (typeof parsed.msg === 'string') lines.push({ time: parsed.time ?? Date.now(), msg: parsed.msg });
      } catch {
        // not a log line
      }
    }
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4_000)));
  try {
    let healthStatus: string | undefined;
    for (;;) {
      if (performance.now() - t0 > START_DEADLINE_MS) throw new Error(`no healthy server within ${START_DEADLINE_MS} ms: ${lines.slice(-5).map((l) => l.msg).join(' | ')}`);
      if (child.exitCode !== null) throw new Error(`npm start exited ${child.exitCode}: ${lines.slice(-5).map((l) => l.msg).join(' | ')}`);
      const health = await ns.curl(['-m', '1', HEALTH_URL]).catch(() => undefined);
      if (health?.status === 200) {
        healthStatus = health.body?.status;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const healthyMs = round(performance.now() - t0, 0);
    const cpuSeconds = groupCpuSeconds(child.pid!);
    const at = (prefix: string) => {
      const line = lines.find((l) => l.msg.startsWith(prefix));
      return line ? line.time - spawnedAt : undefined;
    };
    const stop0 = performance.now();
    process.kill(-child.pid!, 'SIGTERM');
    await Promise.all([exited, outputClosed]);
    const stopMs = round(performance.now() - stop0, 0);
    return {
      healthyMs,
      cpuSecondsUntilHealthy: cpuSeconds,
      databaseLineMs: at('database:'),
      listeningMs: at('Server listening on port'),
      healthStatus,
      startupLines: lines.filter((l) => /^(database|queue transport|embedded PostgreSQL)/.test(l.msg)).map((l) => l.msg),
      stopMs,
      shutdownComplete: lines.some((l) => l.msg === 'shutdown complete'),
      ...(lines.some((l) => l.msg === 'shutdown complete') ? {} : { lastLines: lines.slice(-4).map((l) => l.msg), stderr: stderr.trim().split('\n').slice(-12) }),
      leftRunning: processesMentioning(dataDir).length,
      loadavg1,
    };
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(-child.pid!, 'SIGKILL');
      await exited;
    }
    for (const pid of processesMentioning(dataDir)) process.kill(pid, 'SIGKILL');
  }
}

/** Clock ticks per second of /proc/<pid>/stat on Linux. */
const CLOCK_TICKS = 100;

function groupCpuSeconds(pgid: number): number {
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid) continue;
      ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
    } catch {
      // gone meanwhile
    }
  }
  return round(ticks / CLOCK_TICKS, 2);
}
