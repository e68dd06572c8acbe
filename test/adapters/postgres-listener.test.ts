/**
 * The one reconnecting LISTEN connection the event log, the run-finished feed and the coordination
 * signals share (src/adapters/postgres/listener.ts), against a database of its own: it delivers
 * notifications, comes back after its backend is terminated and delivers again (telling its
 * caller each time it listens, so that it can read what it missed), opens one connection however
 * often it is asked, logs without the connection string, and leaves no connection behind.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresListener, type PostgresListener } from '../../src/adapters/postgres/listener.js';
import { createLogger } from '../../src/logger.js';
import { eventually } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let database: TestDatabase;
const logLines: Array<{ level: number; msg: string }> = [];
const logger = createLogger('info', { write: (line: string) => logLines.push(JSON.parse(line)) });

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.drop();
});

/** Backends of the listener's connection, by its application_name. */
async function backends(applicationName: string): Promise<number[]> {
  const { rows } = await database.pool.query<{ pid: number }>('select pid from pg_stat_activity where datname = current_database() and application_name = $1', [
    applicationName,
  ]);
  return rows.map((row) => row.pid);
}

function open(channels: string[]) {
  const applicationName = `honeyjar-listener-test-${randomBytes(4).toString('hex')}`;
  const received: Array<{ channel: string; payload: string | undefined }> = [];
  let listened = 0;
  const listener: PostgresListener = createPostgresListener({
    url: database.url,
    applicationName,
    channels,
    onNotification: (message) => received.push({ channel: message.channel, payload: message.payload }),
    onListening: () => listened++,
    name: 'test listener',
    logger,
  });
  return { listener, applicationName, received, listenedTimes: () => listened };
}

const notify = (channel: string, payload: string) => database.pool.query('select pg_notify($1, $2)', [channel, payload]);

describe('the shared LISTEN connection', () => {
  it('delivers notifications on each of its channels, over one connection however often it is asked', async () => {
    const { listener, applicationName, received, listenedTimes } = open(['test_listener_a', 'test_listener_b']);
    try {
      listener.start();
      listener.start();
      await Promise.all([listener.listening(), listener.listening()]);
      expect(await backends(applicationName)).toHaveLength(1);
      expect(listenedTimes()).toBe(1);
      await notify('test_listener_a', 'one');
      await notify('test_listener_b', 'two');
      await notify('test_listener_elsewhere', 'not for it');
      await eventually(async () => received.length === 2, 5_000, 'two notifications');
      expect(received).toEqual([
        { channel: 'test_listener_a', payload: 'one' },
        { channel: 'test_listener_b', payload: 'two' },
      ]);
    } finally {
      await listener.close();
    }
  });

  it('listens again after its backend is terminated, says so, and delivers again', async () => {
    const { listener, applicationName, received, listenedTimes } = open(['test_listener_restart']);
    try {
      await listener.listening();
      const [first] = await backends(applicationName);
      const { rowCount } = await database.pool.query('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1', [applicationName]);
      expect(rowCount).toBe(1);
      await eventually(async () => listenedTimes() === 2, 10_000, 'the listener to listen again');
      const now = await backends(applicationName);
      expect(now).toHaveLength(1);
      expect(now[0]).not.toBe(first);
      await notify('test_listener_restart', 'after');
      await eventually(async () => received.some((message) => message.payload === 'after'), 5_000, 'a notification after the reconnect');
      const lost = logLines.filter((line) => line.msg === 'test listener: connection lost; reconnecting');
      expect(lost).toHaveLength(1);
    } finally {
      await listener.close();
    }
  });

  it('leaves no connection open once closed, and does not come back', async () => {
    const { listener, applicationName } = open(['test_listener_close']);
    await listener.listening();
    expect(await backends(applicationName)).toHaveLength(1);
    await listener.close();
    await eventually(async () => (await backends(applicationName)).length === 0, 5_000, 'its backend to end');
    // Asked after close, it opens nothing.
    listener.start();
    await listener.listening();
    await listener.close();
    expect(await backends(applicationName)).toEqual([]);
  });

  it('rejects a first attempt that fails, logs it once by message only, and closes while retrying', async () => {
    const url = new URL(database.url);
    url.password = 'not-the-password-in-any-log';
    url.pathname = '/honeyjar_no_such_database';
    const failing = createPostgresListener({
      url: url.toString(),
      applicationName: 'honeyjar-listener-test-failing',
      channels: ['test_listener_failing'],
      onNotification: () => undefined,
      name: 'failing listener',
      logger,
    });
    try {
      await expect(failing.listening()).rejects.toThrow(/honeyjar_no_such_database/);
      const warned = logLines.filter((line) => line.msg === 'failing listener: could not listen; retrying');
      expect(warned).toHaveLength(1);
      expect(JSON.stringify(logLines)).not.toContain('not-the-password-in-any-log');
    } finally {
      await failing.close();
    }
  });
});
