/**
 * The coordination port on the transport this project runs (TEST_QUEUE_BACKEND): the Redis adapter
 * against the local Redis, the PostgreSQL adapter against a database of its own. Both must behave
 * the same, since every caller (limits, heartbeats, sessions, cancel signals, fleet state, stalls)
 * is written against the port only.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Coordination } from '../../src/engine/ports/coordination.js';
import { createPostgresCoordination } from '../../src/adapters/postgres/coordination.js';
import { createRedisCoordination } from '../../src/adapters/redis/coordination.js';
import { closeRedis, createRedisConnection, waitUntilReady } from '../../src/adapters/redis/connections.js';
import { createLogger } from '../../src/logger.js';
import { eventually, testTransport } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { REDIS_URL } from '../support/processes.js';

const logger = createLogger('silent');
const prefix = `test-coordination-${randomBytes(4).toString('hex')}`;
let coordination: Coordination;
let close: () => Promise<void>;
let database: TestDatabase | undefined;

beforeAll(async () => {
  if (testTransport === 'redis') {
    const redis = createRedisConnection(REDIS_URL, 'producer', logger);
    await waitUntilReady(redis, 3_000);
    coordination = createRedisCoordination({ redis, target: { url: REDIS_URL }, logger });
    close = async () => {
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length) await redis.del(...keys);
      await coordination.close();
      await closeRedis(redis);
    };
  } else {
    database = await createTestDatabase();
    coordination = createPostgresCoordination({ pool: database.pool, url: database.url, logger });
    close = async () => {
      await coordination.close();
      await database!.drop();
    };
  }
});

afterAll(async () => {
  await close();
});

const key = (name: string) => `${prefix}:${name}`;

describe(`coordination on ${testTransport}`, () => {
  it('is reachable and names its server version', async () => {
    expect(coordination.kind).toBe(testTransport);
    expect(coordination.available()).toBe(true);
    expect(await coordination.ready(1_000)).toBe(true);
    await coordination.ping();
    expect(await coordination.version()).toMatch(/^\d+/);
  });

  it('keeps values until they expire; sets only if absent, deletes only if unchanged', async () => {
    expect(await coordination.getValue(key('v'))).toBeUndefined();
    expect(await coordination.setValue(key('v'), 'one', 60_000)).toBe(true);
    expect(await coordination.getValue(key('v'))).toBe('one');
    expect(await coordination.setValue(key('v'), 'two', 60_000, { onlyIfAbsent: true })).toBe(false);
    expect(await coordination.getValue(key('v'))).toBe('one');
    await coordination.deleteValue(key('v'), { ifEquals: 'other' });
    expect(await coordination.getValue(key('v'))).toBe('one');
    await coordination.deleteValue(key('v'), { ifEquals: 'one' });
    expect(await coordination.getValue(key('v'))).toBeUndefined();

    await coordination.setValue(key('short'), 'soon gone', 60_000);
    await coordination.expireValue(key('short'), 50);
    await eventually(async () => (await coordination.getValue(key('short'))) === undefined, 5_000, 'the value to expire');
    // An expired value is absent: it can be claimed again.
    expect(await coordination.setValue(key('short'), 'again', 60_000, { onlyIfAbsent: true })).toBe(true);
    await coordination.deleteValue(key('short'));
    expect(await coordination.getValue(key('short'))).toBeUndefined();
  });

  it('adds to counters in one batch, each answering its own total', async () => {
    expect(await coordination.addToCounters([])).toEqual([]);
    expect(await coordination.addToCounters([{ key: key('a'), by: 3, ttlMs: 60_000 }, { key: key('b'), by: 1, ttlMs: 60_000 }])).toEqual([3, 1]);
    expect(await coordination.addToCounters([{ key: key('a'), by: 2, ttlMs: 60_000 }])).toEqual([5]);
    // Counters that expired start again from the add.
    await coordination.addToCounters([{ key: key('c'), by: 7, ttlMs: 30 }]);
    await eventually(async () => (await coordination.addToCounters([{ key: key('c'), by: 0, ttlMs: 30 }]))[0] === 0, 5_000, 'the counter to expire');
    expect(await coordination.addToCounters([{ key: key('c'), by: 1, ttlMs: 60_000 }])).toEqual([1]);
  });

  it('keeps timestamped marks: newest first, counted since a time, the old ones forgotten', async () => {
    const now = Date.now();
    await coordination.mark(key('m'), 'p1', now - 5_000, { forgetBefore: now - 60_000, ttlMs: 60_000 });
    await coordination.mark(key('m'), 'p2', now - 1_000, { forgetBefore: now - 60_000, ttlMs: 60_000 });
    await coordination.mark(key('m'), 'p1', now, { forgetBefore: now - 60_000, ttlMs: 60_000 });
    expect(await coordination.newestMarks([key('m'), key('none')], 10)).toEqual([
      [
        { member: 'p1', at: now },
        { member: 'p2', at: now - 1_000 },
      ],
      [],
    ]);
    expect(await coordination.newestMarks([key('m')], 1)).toEqual([[{ member: 'p1', at: now }]]);
    expect(await coordination.countMarks([key('m'), key('none')], now - 2_000)).toEqual([2, 0]);
    // A write forgets what is older than its horizon.
    await coordination.mark(key('m'), 'p3', now + 10, { forgetBefore: now - 500, ttlMs: 60_000 });
    expect((await coordination.newestMarks([key('m')], 10))[0]!.map((m) => m.member)).toEqual(['p3', 'p1']);
  });

  it('keeps fields per key, replaced and deleted one by one', async () => {
    await coordination.setField(key('f'), 'proc-1', '{"n":1}', 60_000);
    await coordination.setField(key('f'), 'proc-2', '{"n":2}', 60_000);
    await coordination.setField(key('f'), 'proc-1', '{"n":3}', 60_000);
    expect(await coordination.getFields(key('f'))).toEqual({ 'proc-1': '{"n":3}', 'proc-2': '{"n":2}' });
    await coordination.deleteFields(key('f'), ['proc-1']);
    expect(await coordination.getFields(key('f'))).toEqual({ 'proc-2': '{"n":2}' });
    expect(await coordination.getFields(key('nothing'))).toEqual({});
  });

  it('delivers signals to the subscribers of a channel only, until they unsubscribe', async () => {
    const received: string[] = [];
    const other: string[] = [];
    const unsubscribe = await coordination.subscribe(key('chan'), (message) => received.push(message));
    await coordination.subscribe(key('other'), (message) => other.push(message));
    await coordination.publish(key('chan'), 'first');
    await coordination.publish(key('chan'), JSON.stringify({ jobId: 'r.intent', reason: 'user' }));
    await eventually(async () => received.length === 2, 5_000, 'both signals');
    expect(received).toEqual(['first', '{"jobId":"r.intent","reason":"user"}']);
    expect(other).toEqual([]);
    await unsubscribe();
    await coordination.publish(key('chan'), 'after');
    await coordination.publish(key('other'), 'marker');
    await eventually(async () => other.length === 1, 5_000, 'the marker');
    expect(received).toHaveLength(2);
  });
});
