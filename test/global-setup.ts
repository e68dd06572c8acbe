import pg from 'pg';
import { ensureDatabaseExists, openDatabase, quoteIdentifier, runMigrations } from '../src/db/client.js';
import { TEMPLATE_DATABASE, testDatabaseUrl } from './support/database.js';

/** Builds a migrated template database once; each test file clones it (see support/database.ts). */
export default async function setup(): Promise<void> {
  const adminUrl = testDatabaseUrl('postgres');
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${quoteIdentifier(TEMPLATE_DATABASE)} with (force)`);
  } finally {
    await admin.end();
  }
  const url = testDatabaseUrl(TEMPLATE_DATABASE);
  await ensureDatabaseExists(url);
  const database = openDatabase(url, { poolMax: 1 });
  try {
    await runMigrations(database);
  } finally {
    await database.close();
  }
}
