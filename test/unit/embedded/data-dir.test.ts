/**
 * The data directory's record and the one-line start failures, without a server: concurrent first
 * starts agree on one record, a foreign file is refused with what to do, and connection failures
 * become one line that names the database but never its password.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createManifest, dataDirOf, type Manifest, readManifest } from '../../../src/adapters/embedded/data-dir.js';
import { addressOf, describeStartFailure, StartupError } from '../../../src/adapters/embedded/startup-error.js';

const root = mkdtempSync(join(tmpdir(), 'honeyjar-data-dir-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const embedded = (password: string): Manifest => ({ version: 1, kind: 'embedded', user: 'postgres', password, database: 'honeyjar', port: 5999 });

describe('the data directory record', () => {
  it('is absent until created, then read back, readable by its owner only', async () => {
    const dir = dataDirOf(join(root, 'one'));
    expect(await readManifest(dir)).toBeUndefined();
    expect(await createManifest(dir, embedded('first'))).toEqual(embedded('first'));
    expect(await readManifest(dir)).toEqual(embedded('first'));
    expect(statSync(dir.manifest).mode & 0o777).toBe(0o600);
  });

  it('is created once when starts race: every caller gets the same record', async () => {
    const dir = dataDirOf(join(root, 'race'));
    const results = await Promise.all(['a', 'b', 'c', 'd'].map((password) => createManifest(dir, embedded(password))));
    const stored = JSON.parse(readFileSync(dir.manifest, 'utf8'));
    for (const result of results) expect(result).toEqual(stored);
  });

  it('refuses a file it did not write, saying what to do', async () => {
    const dir = dataDirOf(join(root, 'foreign'));
    await createManifest(dir, { version: 1, kind: 'default-address' });
    writeFileSync(dir.manifest, '{"kind":"something else"}');
    await expect(readManifest(dir)).rejects.toThrow(new StartupError(`${dir.manifest} is not a honeyjar data directory record; remove ${dir.root} or set DATABASE_URL`));
  });
});

describe('expected start failures', () => {
  const label = 'PostgreSQL at db:5432/honeyjar (DATABASE_URL)';

  it('are one line naming the database', () => {
    expect(describeStartFailure(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }), label)).toBe(
      `${label} refused the connection (ECONNREFUSED)`,
    );
    expect(describeStartFailure(Object.assign(new Error('password authentication failed'), { code: '28P01' }), label)).toBe(`${label} refused the password (28P01)`);
    const refusedTwice = new AggregateError([Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })], '');
    expect(describeStartFailure(refusedTwice, label)).toBe(`${label} refused the connection (ECONNREFUSED)`);
    expect(describeStartFailure(new StartupError('the data directory is out of reach'), label)).toBe('the data directory is out of reach');
    expect(describeStartFailure(Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:3005'), { code: 'EADDRINUSE' }), label)).toBe(
      'the HTTP port is in use (EADDRINUSE: address already in use 127.0.0.1:3005); set PORT to another one',
    );
  });

  it('leave anything else to the stack trace', () => {
    expect(describeStartFailure(new TypeError('x is not a function'), label)).toBeUndefined();
  });

  it('name a database by address, never by its credentials', () => {
    expect(addressOf('postgres://postgres:s3cret@127.0.0.1:41000/honeyjar?application_name=honeyjar%3A1')).toBe('127.0.0.1:41000/honeyjar');
    expect(addressOf('postgres://db.internal/app')).toBe('db.internal:5432/app');
    // The driver's own override: a socket directory (or another host) in the query.
    expect(addressOf('postgres://postgres@127.0.0.1:5432/app?host=%2Fvar%2Frun%2Fpostgresql')).toBe('unix:/var/run/postgresql:5432/app');
    expect(addressOf('postgres://postgres@localhost/app?host=db.internal&port=6432')).toBe('db.internal:6432/app');
  });
});
