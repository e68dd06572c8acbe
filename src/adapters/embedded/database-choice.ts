import { randomBytes } from 'node:crypto';
import { createConnection, createServer } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../../config.js';
import { clusterExists, clusterVersion, ensureServerCanReach, initialiseCluster, runningServer, serverUser, startCluster, stopCluster } from './cluster.js';
import { createManifest, type DataDir, dataDirOf, type Manifest, readManifest } from './data-dir.js';
import { claimOwnership, type Ownership } from './ownership.js';
import { addressOf, StartupError } from './startup-error.js';

/** The database a process uses, and what it must do about it when it ends. */
export interface ChosenDatabase {
  /** The configuration with `database.url` naming the chosen database. */
  config: Readonly<Config>;
  /** How errors name it: `PostgreSQL at 127.0.0.1:5432/honeyjar (DATABASE_URL)`. */
  label: string;
  /**
   * After the process closed its own connections: stops the embedded server when this process owns
   * it and nobody else uses it any more. Nothing for any other database. Safe to call twice.
   */
  release(): Promise<void>;
}

const EMBEDDED_DATABASE = 'honeyjar';
const EMBEDDED_USER = 'postgres';
const READY_TIMEOUT_MS = 60_000;
const PROBE_TIMEOUT_MS = 1_000;

/**
 * Which PostgreSQL this process uses, and why; logs it as one line.
 *
 * 1. `DATABASE_URL` when it is set.
 * 2. Else what the data directory (HONEYJAR_DATA_DIR) records: its embedded server, or the default
 *    address if that is what it answered with before. A start never switches silently: the
 *    directory's choice holds until DATABASE_URL is set (or the directory is removed).
 * 3. Else, on a first start: the default address if something answers there, otherwise a new
 *    embedded PostgreSQL in the data directory. The choice is recorded.
 *
 * For the embedded server, one process owns it (started it, or took it over) and stops it when it
 * ends; every other process connects to it.
 */
export async function chooseDatabase(config: Readonly<Config>, logger: Logger): Promise<ChosenDatabase> {
  const dir = dataDirOf(config.dataDir);
  const manifest = await readManifest(dir);
  if (config.explicit.databaseUrl) {
    const label = `PostgreSQL at ${addressOf(config.database.url)} (DATABASE_URL)`;
    const unused = manifest?.kind === 'embedded' ? `; the embedded PostgreSQL in ${dir.root} is not used while it is set` : '';
    logger.info(`database: ${label}${unused}`);
    return { config, label, release: async () => undefined };
  }

  const defaultAddress = new URL(config.database.url);
  const hostPort = `${defaultAddress.hostname}:${defaultAddress.port || '5432'}`;
  if (manifest?.kind === 'default-address') {
    if (!(await answers(defaultAddress))) {
      throw new StartupError(
        `nothing answers at ${hostPort}, the PostgreSQL this directory uses (${dir.manifest} records the default address): ` +
          `start it, set DATABASE_URL, or remove ${dir.root} to use an embedded PostgreSQL`,
      );
    }
    return useDefaultAddress(config, logger, `DATABASE_URL is not set; ${dir.manifest} records the default address`);
  }
  if (manifest?.kind === 'embedded') {
    const why = (await clusterExists(dir))
      ? `DATABASE_URL is not set and ${dir.root} holds its data`
      : `DATABASE_URL is not set and ${dir.manifest} records an embedded PostgreSQL, whose cluster is created now`;
    return useEmbedded(config, dir, manifest, why, logger);
  }

  if (await answers(defaultAddress)) {
    await createManifest(dir, { version: 1, kind: 'default-address' });
    return useDefaultAddress(config, logger, `DATABASE_URL is not set and the default address answers; recorded in ${dir.manifest}`);
  }
  // Refused before anything is recorded: a start that cannot run the server leaves no trace.
  await ensureServerCanReach(dir);
  const created = await createManifest(dir, {
    version: 1,
    kind: 'embedded',
    user: EMBEDDED_USER,
    password: randomBytes(24).toString('base64url'),
    database: EMBEDDED_DATABASE,
    port: await freePort(),
  });
  if (created.kind !== 'embedded') return chooseDatabase(config, logger);
  return useEmbedded(config, dir, created, `DATABASE_URL is not set and nothing answers at ${hostPort}: a new one`, logger);
}

function useDefaultAddress(config: Readonly<Config>, logger: Logger, why: string): ChosenDatabase {
  const label = `PostgreSQL at ${addressOf(config.database.url)}`;
  logger.info(`database: ${label} (${why})`);
  return { config, label, release: async () => undefined };
}

async function useEmbedded(
  config: Readonly<Config>,
  dir: DataDir,
  manifest: Extract<Manifest, { kind: 'embedded' }>,
  why: string,
  logger: Logger,
): Promise<ChosenDatabase> {
  if (!(await clusterExists(dir))) await initialiseCluster(dir, manifest, logger);
  const user = await serverUser();
  const { port, startedHere } = await ensureRunning(dir, manifest, user);
  // Every connection of this process carries its pid: whether others still use the server is then
  // a question about other names, even when this process could not close its own (a failed start).
  const applicationName = `honeyjar:${process.pid}`;
  const server = `postgres://${encodeURIComponent(manifest.user)}:${encodeURIComponent(manifest.password)}@127.0.0.1:${port}`;
  const appUrl = `${server}/${encodeURIComponent(manifest.database)}?application_name=${encodeURIComponent(applicationName)}`;
  // The claim's connection names itself (ownership.ts).
  const maintenanceUrl = `${server}/postgres`;
  const version = (await clusterVersion(dir)) ?? '';
  const label = `the embedded PostgreSQL ${version} in ${dir.root} (127.0.0.1:${port})`;

  const claim = await claimOwnership(maintenanceUrl).catch(async (error: unknown) => {
    if (startedHere) await stopCluster(dir, user).catch(() => undefined);
    throw error;
  });
  let who: string;
  if (claim.owner) who = startedHere ? 'started by this process' : 'already running with no owner: this process owns it now';
  else who = `run by process ${claim.ownerPid ?? '(unknown)'}`;
  logger.info(`database: embedded PostgreSQL ${version} in ${dir.root}, 127.0.0.1:${port}/${manifest.database}, ${who} (${why})`);

  const stopIfLast = async (ownership: Ownership) => {
    const asked = Date.now();
    const others = await ownership.otherSessions(applicationName).catch(() => 0);
    logger.debug({ others, ms: Date.now() - asked }, 'embedded PostgreSQL: other sessions');
    if (others > 0) {
      logger.info(`embedded PostgreSQL keeps running: ${others} other connection(s) use it; the last honeyjar process to stop stops it`);
    } else {
      await stopCluster(dir, user);
      logger.info('embedded PostgreSQL stopped');
    }
    await ownership.release();
  };
  let released: Promise<void> | undefined;
  const release = () =>
    (released ??= (async () => {
      if (claim.owner) return stopIfLast(claim.ownership);
      // The owner may have ended while this process ran, leaving the server to the last one out.
      const later = await claimOwnership(maintenanceUrl).catch(() => undefined);
      if (later?.owner) await stopIfLast(later.ownership);
    })());

  const chosen = { ...config, database: Object.freeze({ ...config.database, url: appUrl }) };
  return { config: Object.freeze(chosen), label, release };
}

/** Starts the cluster unless it runs; waits while another process starts or stops it. */
async function ensureRunning(
  dir: DataDir,
  manifest: Extract<Manifest, { kind: 'embedded' }>,
  user: Awaited<ReturnType<typeof serverUser>>,
): Promise<{ port: number; startedHere: boolean }> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let startedHere = false;
  for (;;) {
    const running = await runningServer(dir);
    if (running?.status === 'ready') return { port: running.port, startedHere };
    if (Date.now() > deadline) {
      throw new StartupError(
        `the embedded PostgreSQL in ${dir.cluster} is ${running?.status ?? 'not running'} (process ${running?.pid ?? '-'}) and was not ready within ${READY_TIMEOUT_MS / 1000} s; see ${dir.serverLog}`,
      );
    }
    if (running) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    try {
      await startCluster(dir, await freePort(manifest.port), user);
      startedHere = true;
    } catch (error) {
      // Another process started it in the same moment: use that one.
      if (!(await runningServer(dir))) throw error;
    }
  }
}

/** Whether something accepts TCP connections at the URL's host and port. */
function answers(url: URL): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: url.hostname, port: Number(url.port || 5432) });
    const done = (result: boolean) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** `preferred` when it is free on loopback, else any free port. */
function freePort(preferred = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (preferred !== 0 && error.code === 'EADDRINUSE') resolve(freePort(0));
      else reject(error);
    });
    server.listen(preferred, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : preferred;
      server.close(() => resolve(port));
    });
  });
}
