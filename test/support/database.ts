import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openDatabase, quoteIdentifier, type Database } from '../../src/adapters/postgres/client.js';

/** Set by test/global-setup.ts for this run. */
function templateDatabase(): string {
  const name = process.env.HONEYJAR_TEST_TEMPLATE;
  if (!name) throw new Error('HONEYJAR_TEST_TEMPLATE is not set: run the tests through vitest (test/global-setup.ts)');
  return name;
}

const BASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export function testDatabaseUrl(name: string): string {
  const url = new URL(BASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

export interface TestDatabase extends Database {
  url: string;
  name: string;
  /** Closes the pool and drops the database. */
  drop(): Promise<void>;
}

/** A fresh database for one test file, cloned from the migrated template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `honeyjar_test_${randomBytes(6).toString('hex')}`;
  await adminQuery(`create database ${quoteIdentifier(name)} template ${quoteIdentifier(templateDatabase())}`);
  const url = testDatabaseUrl(name);
  const database = openDatabase(url, { poolMax: 10 });
  return {
    ...database,
    url,
    name,
    drop: async () => {
      await database.close();
      await adminQuery(`drop database if exists ${quoteIdentifier(name)} with (force)`);
    },
  };
}

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: testDatabaseUrl('postgres') });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
