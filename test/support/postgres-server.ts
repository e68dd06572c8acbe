/**
 * A PostgreSQL server of a test's own, on a temporary data directory and a free loopback port,
 * for tests that crash, hang or restart the database; the shared server is never touched.
 *
 * - `initdb` runs once per server (as the `postgres` OS user when the tests run as root: PostgreSQL
 *   refuses to run as root), with `fsync=off` because the data is thrown away anyway.
 * - `crash()` SIGKILLs the postmaster and every child of it (the children are in sessions of their
 *   own, so a process-group kill would miss them): what was not flushed is lost, and `restart()`
 *   runs crash recovery on the same directory and port.
 * - `hang()` SIGSTOPs them all: connections stay open and nothing answers.
 *
 * Every server started here is remembered: `stopAllPostgresServers()` ends them (afterAll), and a
 * last resort SIGKILLs any still running when the test process ends.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { prepareDatabaseAt } from '../../src/adapters/postgres/client.js';
import { atTestProcessEnd } from './cleanup.js';
import { freePort } from './ports.js';
import { waitForOutput } from './server-output.js';

const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface PostgresServerOptions {
  /** Extra `-c name=value` settings. */
  settings?: Record<string, string>;
  /** How long to wait for `ready to accept connections` (default 30 s). */
  readyTimeoutMs?: number;
}

export interface PostgresServer {
  readonly port: number;
  /** The running postmaster's pid (undefined while it is down). */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** `postgres://postgres@127.0.0.1:<port>/<database>` */
  url(database?: string): string;
  /** Creates a database (a fresh name by default) and applies the migrations; answers its URL. */
  createDatabase(name?: string): Promise<string>;
  /** SIGKILL of the postmaster and all its children: an unclean stop, like a power cut of the server. */
  crash(): Promise<void>;
  /** SIGSTOP of the postmaster and all its children. */
  hang(): void;
  /** SIGCONT after `hang()`. */
  resume(): void;
  /** Starts it again on the same directory and port (crash recovery after `crash()`); crashes it first if it still runs. */
  restart(): Promise<void>;
  /** Ends it for good and removes its directory. */
  stop(): Promise<void>;
}

interface PostgresServerHandle extends PostgresServer {
  forceKill(): void;
}

const servers = new Set<PostgresServerHandle>();

/** The uid/gid to run PostgreSQL as: the `postgres` user when we are root, ourselves otherwise. */
function serverIdentity(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

/** The pids whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // `pid (comm) state ppid …`; comm may contain spaces and parentheses.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

function signalAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Running or stopped; a zombie (killed, not yet reaped by whoever inherited it) counts as gone. */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function waitForCondition(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function startPostgresServer(options: PostgresServerOptions = {}): Promise<PostgresServer> {
  const identity = serverIdentity();
  const root = mkdtempSync(join(tmpdir(), 'honeyjar-pg-'));
  if (identity) chownSync(root, identity.uid, identity.gid);
  const dataDir = join(root, 'data');
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  let port = 0;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stopped = false;

  const initdb = ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C.UTF-8'];
  const [command, args] = identity ? ['runuser', ['-u', 'postgres', '--', join(PG_BIN, 'initdb'), ...initdb]] : [join(PG_BIN, 'initdb'), initdb];
  execFileSync(command, args as string[], { stdio: 'pipe' });

  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    fsync: 'off',
    shared_buffers: '32MB',
    max_connections: '100',
    logging_collector: 'off',
    ...options.settings,
  };

  const spawnServer = async (): Promise<void> => {
    const args = ['-D', dataDir, '-p', String(port), '-k', root];
    for (const [name, value] of Object.entries(settings)) args.push('-c', `${name}=${value}`);
    const proc = spawn(join(PG_BIN, 'postgres'), args, { stdio: ['ignore', 'pipe', 'pipe'], ...(identity ?? {}) });
    child = proc;
    exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    await waitForOutput(proc, 'database system is ready to accept connections', `postgres on ${port}`, readyTimeoutMs);
  };

  const isRunning = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  const family = (): number[] => (isRunning() ? [child!.pid!, ...childrenOf(child!.pid!)] : []);

  const handle: PostgresServerHandle = {
    get port() {
      return port;
    },
    get pid() {
      return isRunning() ? child!.pid : undefined;
    },
    get running() {
      return isRunning();
    },
    url(database = 'postgres') {
      return `postgres://postgres@127.0.0.1:${port}/${database}`;
    },
    async createDatabase(name = `honeyjar_${randomBytes(6).toString('hex')}`) {
      const url = handle.url(name);
      await prepareDatabaseAt(url);
      return url;
    },
    async crash() {
      const pids = family();
      signalAll(pids, 'SIGKILL');
      await exited;
      // Children are reaped by init once the postmaster is gone; wait until none is left.
      await waitForCondition(() => pids.every((pid) => !isAlive(pid)), 10_000, `postgres on ${port}: every process gone`);
    },
    hang() {
      signalAll(family(), 'SIGSTOP');
    },
    resume() {
      signalAll(family(), 'SIGCONT');
    },
    async restart() {
      if (stopped) throw new Error(`postgres on ${port} was stopped for good`);
      await handle.crash();
      await spawnServer();
    },
    async stop() {
      stopped = true;
      await handle.crash();
      servers.delete(handle);
      rmSync(root, { recursive: true, force: true });
    },
    forceKill() {
      signalAll(family(), 'SIGKILL');
      rmSync(root, { recursive: true, force: true });
    },
  };
  servers.add(handle);
  try {
    port = await freePort();
    await spawnServer();
  } catch (error) {
    await handle.stop();
    throw error;
  }
  return handle;
}

/** Ends every PostgreSQL server this test file started (for afterAll). */
export async function stopAllPostgresServers(): Promise<void> {
  await Promise.all([...servers].map((server) => server.stop()));
}

atTestProcessEnd(() => {
  for (const server of servers) server.forceKill();
});
