import pg from 'pg';
import { prepareDatabaseAt, quoteIdentifier } from '../src/adapters/postgres/client.js';
import { testDatabaseUrl } from './support/database.js';

/**
 * Builds a migrated template database once per test run; each test file clones it (see
 * support/database.ts). The name is this run's own, so that two runs on one machine do not
 * drop each other's template.
 */
export default async function setup(): Promise<() => Promise<void>> {
  // One template for the run, whichever project (transport) asks first: the projects share it.
  if (process.env.HONEYJAR_TEST_TEMPLATE) return async () => undefined;
  const template = `honeyjar_test_template_${process.pid}`;
  process.env.HONEYJAR_TEST_TEMPLATE = template;
  await dropDatabase(template);
  await prepareDatabaseAt(testDatabaseUrl(template));
  return () => dropDatabase(template);
}

async function dropDatabase(name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: testDatabaseUrl('postgres') });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${quoteIdentifier(name)} with (force)`);
  } finally {
    await admin.end();
  }
}
