import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StartupError } from './startup-error.js';

/** The files of a data directory (HONEYJAR_DATA_DIR). */
export interface DataDir {
  root: string;
  /** `honeyjar.json`: which database this directory uses, and the embedded server's credentials. */
  manifest: string;
  /** The embedded PostgreSQL cluster (PGDATA); its `postmaster.pid` says whether, where and as which process it runs. */
  cluster: string;
  /** The embedded server's own log. */
  serverLog: string;
}

export function dataDirOf(root: string): DataDir {
  return { root, manifest: join(root, 'honeyjar.json'), cluster: join(root, 'postgres'), serverLog: join(root, 'postgres.log') };
}

/**
 * What a data directory records, written once when it is created: either the embedded PostgreSQL
 * (its superuser's password, generated then, and the port it prefers), or that the default address
 * answered, so that a later start does not silently move to an empty embedded database.
 */
export type Manifest =
  | { version: 1; kind: 'embedded'; user: string; password: string; database: string; port: number }
  | { version: 1; kind: 'default-address' };

export async function readManifest(dir: DataDir): Promise<Manifest | undefined> {
  let text: string;
  try {
    text = await readFile(dir.manifest, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StartupError(`cannot read ${dir.manifest}: ${(error as Error).message}`);
  }
  const parsed = parseManifest(text);
  if (!parsed) throw new StartupError(`${dir.manifest} is not a honeyjar data directory record; remove ${dir.root} or set DATABASE_URL`);
  return parsed;
}

/**
 * Records `manifest` unless another process recorded one first; answers the one in effect. The
 * file appears whole or not at all (written aside, then hard-linked into place), readable by its
 * owner only: it holds a password.
 */
export async function createManifest(dir: DataDir, manifest: Manifest): Promise<Manifest> {
  await mkdir(dir.root, { recursive: true, mode: 0o755 });
  const aside = `${dir.manifest}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(aside, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
  try {
    await link(aside, dir.manifest);
    return manifest;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const existing = await readManifest(dir);
    if (!existing) throw new StartupError(`${dir.manifest} vanished while it was being created`);
    return existing;
  } finally {
    await unlink(aside).catch(() => undefined);
  }
}

function parseManifest(text: string): Manifest | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!value || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  if (v.version !== 1) return undefined;
  if (v.kind === 'default-address') return { version: 1, kind: 'default-address' };
  if (v.kind === 'embedded' && typeof v.user === 'string' && typeof v.password === 'string' && typeof v.database === 'string' && Number.isInteger(v.port)) {
    return { version: 1, kind: 'embedded', user: v.user, password: v.password, database: v.database, port: v.port as number };
  }
  return undefined;
}
