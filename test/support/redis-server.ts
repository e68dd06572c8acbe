/**
 * A Redis server of a test's own, on a free loopback port, so that the test can kill it, hang it
 * and bring it back without touching the shared Redis. Every server started here is remembered:
 * `stopAllRedisServers()` ends them (afterAll), and a last resort SIGKILLs any still running when
 * the test process itself ends, so a failing test leaves no redis-server behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { atTestProcessEnd } from './cleanup.js';
import { freePort } from './ports.js';
import { waitForOutput } from './server-output.js';

export interface RedisServerOptions {
  /** Keep an append-only file (fsynced on every write), so that data survives `kill()` + `restart()`. */
  appendonly?: boolean;
  /** A fixed port; by default a free one. */
  port?: number;
  /** How long to wait for `Ready to accept connections` (default 10 s). */
  readyTimeoutMs?: number;
}

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** The running redis-server's pid (undefined while it is down). */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** SIGKILL: clients see the connection reset at once. */
  kill(): Promise<void>;
  /** SIGSTOP: the port stays open and nothing answers, like a hung or partitioned server. */
  hang(): void;
  /** SIGCONT after `hang()`. */
  resume(): void;
  /** Starts it again on the same port (after `kill()`; kills it first if it still runs). */
  restart(): Promise<void>;
  /** Ends it for good and removes its directory. */
  stop(): Promise<void>;
}

const servers = new Set<RedisServerHandle>();

interface RedisServerHandle extends RedisServer {
  forceKill(): void;
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'honeyjar-redis-'));
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stopped = false;

  const spawnServer = async (): Promise<void> => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--daemonize', 'no'];
    args.push(...(options.appendonly ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']));
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    await waitForOutput(proc, 'Ready to accept connections', `redis-server on ${port}`, readyTimeoutMs);
  };

  const isRunning = () => child !== undefined && child.exitCode === null && child.signalCode === null;

  const handle: RedisServerHandle = {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return isRunning() ? child!.pid : undefined;
    },
    get running() {
      return isRunning();
    },
    async kill() {
      if (isRunning()) child!.kill('SIGKILL');
      await exited;
    },
    hang() {
      if (isRunning()) child!.kill('SIGSTOP');
    },
    resume() {
      if (isRunning()) child!.kill('SIGCONT');
    },
    async restart() {
      if (stopped) throw new Error(`redis-server on ${port} was stopped for good`);
      await handle.kill();
      await spawnServer();
    },
    async stop() {
      stopped = true;
      await handle.kill();
      servers.delete(handle);
      rmSync(dir, { recursive: true, force: true });
    },
    forceKill() {
      if (isRunning()) child!.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  servers.add(handle);
  try {
    await spawnServer();
  } catch (error) {
    await handle.stop();
    throw error;
  }
  return handle;
}

/** Ends every Redis server this test file started (for afterAll). */
export async function stopAllRedisServers(): Promise<void> {
  await Promise.all([...servers].map((server) => server.stop()));
}

atTestProcessEnd(() => {
  for (const server of servers) server.forceKill();
});
