import type pg from 'pg';
import type { Logger } from 'pino';
import type { Coordination } from '../../engine/ports/coordination.js';
import { createPostgresListener } from './listener.js';

/** The one NOTIFY channel of the coordination signals; the payload names the logical channel. */
export const SIGNALS_CHANNEL = 'honeyjar_signals';
/** Expired rows are deleted this often by each process (reads never see them anyway). */
const PURGE_EVERY_MS = 60_000;

const expiry = 'now() + make_interval(secs => $ttl::double precision / 1000)';
const withTtl = (text: string, ttlParam: number) => text.replaceAll('$ttl', `$${ttlParam}`);

/**
 * The coordination port over PostgreSQL, for a system whose queues run on PostgreSQL: unlogged
 * tables (migration 0007) with an expiry per row, queried through the process's pool, and signals
 * over LISTEN/NOTIFY on one connection of its own (opened by the first subscribe, reconnecting
 * when it drops). The database's clock decides expiries, as Redis's does.
 */
export function createPostgresCoordination(options: { pool: pg.Pool; url: string; logger: Logger }): Coordination {
  const { pool, logger } = options;
  let reachable = true;
  const handlers = new Map<string, Set<(message: string) => void>>();
  let closed = false;

  const query = async <R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> => {
    try {
      const result = await pool.query<R>(text, values);
      reachable = true;
      return result;
    } catch (error) {
      if ((error as { code?: string }).code === undefined) reachable = false;
      throw error;
    }
  };

  const purge = setInterval(() => {
    if (closed) return;
    void query(
      `with v as (delete from coordination_values where expires_at <= now()),
            c as (delete from coordination_counters where expires_at <= now()),
            m as (delete from coordination_marks where expires_at <= now())
       delete from coordination_fields where expires_at <= now()`,
    ).catch(() => undefined);
  }, PURGE_EVERY_MS);
  purge.unref();

  const signals = createPostgresListener({
    url: options.url,
    applicationName: 'honeyjar-signals',
    channels: [SIGNALS_CHANNEL],
    onNotification(message) {
      if (message.channel !== SIGNALS_CHANNEL || !message.payload) return;
      let parsed: { c?: unknown; m?: unknown };
      try {
        parsed = JSON.parse(message.payload) as { c?: unknown; m?: unknown };
      } catch {
        return;
      }
      if (typeof parsed.c !== 'string' || typeof parsed.m !== 'string') return;
      for (const handler of handlers.get(parsed.c) ?? []) handler(parsed.m);
    },
    name: 'coordination signals',
    logger,
    keepAlive: true,
  });

  return {
    kind: 'postgres',
    available: () => reachable,
    async ready() {
      return reachable;
    },
    async ping() {
      await query('select 1');
    },
    async version() {
      const result = await query<{ version: string }>("select current_setting('server_version') as version");
      return result.rows[0]?.version ?? null;
    },

    async getValue(key) {
      const result = await query<{ value: string }>('select value from coordination_values where key = $1 and expires_at > now()', [key]);
      return result.rows[0]?.value;
    },
    async setValue(key, value, ttlMs, opts = {}) {
      const result = await query(
        withTtl(
          `insert into coordination_values (key, value, expires_at) values ($1, $2, ${expiry})
           on conflict (key) do update set value = excluded.value, expires_at = excluded.expires_at
           ${opts.onlyIfAbsent ? 'where coordination_values.expires_at <= now()' : ''}`,
          3,
        ),
        [key, value, ttlMs],
      );
      return (result.rowCount ?? 0) > 0;
    },
    async deleteValue(key, opts = {}) {
      if (opts.ifEquals === undefined) await query('delete from coordination_values where key = $1', [key]);
      else await query('delete from coordination_values where key = $1 and value = $2', [key, opts.ifEquals]);
    },
    async expireValue(key, ttlMs) {
      await query(withTtl(`update coordination_values set expires_at = ${expiry} where key = $1 and expires_at > now()`, 2), [key, ttlMs]);
    },

    async addToCounters(adds) {
      if (adds.length === 0) return [];
      // One statement for the batch; an expired counter starts again from the add.
      const result = await query<{ ord: string; value: string }>(
        `with input as (
           select * from unnest($1::text[], $2::bigint[], $3::double precision[]) with ordinality as t(key, by, ttl, ord)
         ), upserted as (
           insert into coordination_counters (key, value, expires_at)
           select key, sum(by), now() + make_interval(secs => max(ttl) / 1000) from input group by key
           on conflict (key) do update set
             value = case when coordination_counters.expires_at <= now() then excluded.value else coordination_counters.value + excluded.value end,
             expires_at = excluded.expires_at
           returning key, value
         )
         select input.ord, upserted.value from input join upserted using (key)`,
        [adds.map((a) => a.key), adds.map((a) => a.by), adds.map((a) => a.ttlMs)],
      );
      const byOrdinal = new Map(result.rows.map((row) => [Number(row.ord), Number(row.value)]));
      return adds.map((_, i) => byOrdinal.get(i + 1) ?? 0);
    },

    async mark(key, member, at, opts) {
      // Two statements: one that deleted and upserted the same row would fail.
      await query('delete from coordination_marks where key = $1 and (at < $2 or expires_at <= now())', [key, opts.forgetBefore]);
      await query(
        withTtl(
          `insert into coordination_marks (key, member, at, expires_at) values ($1, $2, $3, ${expiry})
           on conflict (key, member) do update set at = excluded.at, expires_at = excluded.expires_at`,
          4,
        ),
        [key, member, at, opts.ttlMs],
      );
    },
    async countMarks(keys, since) {
      if (keys.length === 0) return [];
      const result = await query<{ key: string; count: string }>(
        'select key, count(*)::text as count from coordination_marks where key = any($1::text[]) and at >= $2 and expires_at > now() group by key',
        [keys, since],
      );
      const counts = new Map(result.rows.map((row) => [row.key, Number(row.count)]));
      return keys.map((key) => counts.get(key) ?? 0);
    },
    async newestMarks(keys, limit) {
      if (keys.length === 0) return [];
      const result = await query<{ key: string; member: string; at: string }>(
        `select key, member, at from (
           select key, member, at, row_number() over (partition by key order by at desc) as n
           from coordination_marks where key = any($1::text[]) and expires_at > now()
         ) ranked where n <= $2 order by key, at desc`,
        [keys, limit],
      );
      const byKey = new Map<string, Array<{ member: string; at: number }>>();
      for (const row of result.rows) {
        const entries = byKey.get(row.key) ?? [];
        entries.push({ member: row.member, at: Number(row.at) });
        byKey.set(row.key, entries);
      }
      return keys.map((key) => byKey.get(key) ?? []);
    },

    async setField(key, field, value, ttlMs) {
      await query(
        withTtl(
          `insert into coordination_fields (key, field, value, expires_at) values ($1, $2, $3, ${expiry})
           on conflict (key, field) do update set value = excluded.value, expires_at = excluded.expires_at`,
          4,
        ),
        [key, field, value, ttlMs],
      );
    },
    async getFields(key) {
      const result = await query<{ field: string; value: string }>('select field, value from coordination_fields where key = $1 and expires_at > now()', [key]);
      return Object.fromEntries(result.rows.map((row) => [row.field, row.value]));
    },
    async deleteFields(key, fields) {
      if (fields.length) await query('delete from coordination_fields where key = $1 and field = any($2::text[])', [key, [...fields]]);
    },

    async publish(channel, message) {
      await query('select pg_notify($1, $2)', [SIGNALS_CHANNEL, JSON.stringify({ c: channel, m: message })]);
    },
    async subscribe(channel, onMessage) {
      const set = handlers.get(channel) ?? new Set();
      set.add(onMessage);
      handlers.set(channel, set);
      await signals.listening();
      return async () => {
        set.delete(onMessage);
      };
    },

    async close() {
      closed = true;
      clearInterval(purge);
      handlers.clear();
      await signals.close();
    },
  };
}
