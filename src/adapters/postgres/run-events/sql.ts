/*
 * The event log's SQL. A run's sequence lives in run_event_heads (one row per run, written with
 * the run): appending takes that row's lock, so a run's events commit in seq order and a reader
 * after seq n never finds n + 2 before n + 1. Events are appended here (the engine's buffered
 * tokens and failures) and by the run store's statements themselves: the accept (`accepted`),
 * the claim of a step (`started`), the completion of steps (`started`, `completed`) and the
 * statements that end a run (the closing events). Every statement takes the heads last, after
 * any run and step rows it locks, and several heads in run id order; nothing locks a head and
 * then a run, so appends cannot deadlock with each other or with the run store's statements.
 */
import { ACCEPTED_EVENT } from '../../../engine/events/grammar.js';

/** The channel of the event log's notifications (payload: see NOTICE_SQL). */
export const RUN_EVENTS_CHANNEL = 'honeyjar_run_events';

/** PostgreSQL refuses payloads of 8000 bytes or more; larger notices carry no events. */
const MAX_PAYLOAD = 7_900;

/**
 * A notification for head `h` (run_id, thread_id, run_seq, last_seq) whose new events are the
 * jsonb array `events` (each with its seq and at): `{r, t, m, s, e?}`.
 */
function noticeSql(h: string, events?: string): string {
  const short = `jsonb_build_object('r', ${h}.run_id, 't', ${h}.thread_id, 'm', ${h}.run_seq, 's', ${h}.last_seq)`;
  if (!events) return `pg_notify('${RUN_EVENTS_CHANNEL}', ${short}::text)`;
  const full = `(${short} || jsonb_build_object('e', ${events}))`;
  return `pg_notify('${RUN_EVENTS_CHANNEL}', (case when octet_length(${full}::text) < ${MAX_PAYLOAD} then ${full} else ${short} end)::text)`;
}

/**
 * Appends each run's events ($1 run ids, $2 the jsonb arrays of their bodies; one entry per run)
 * and notifies. Relaxed commit: these are live progress, and a lost tail of tokens is re-sent by
 * the reply's retry; the statements that end a run write their closing events durably.
 */
export const APPEND_EVENTS = `
with c as (select set_config('synchronous_commit', 'off', true) as relaxed),
q as (
  select q.run_id, q.events, jsonb_array_length(q.events) as n, q.idx
    from unnest($1::uuid[], $2::jsonb[]) with ordinality as q(run_id, events, idx)
),
h as (
  insert into run_event_heads as h (run_id, org_id, thread_id, run_seq, last_seq)
  select r.id, r.org_id, r.thread_id, r.seq, q.n
    from q join runs r on r.id = q.run_id, c
   where c.relaxed is not null
   order by r.id
  on conflict (run_id) do update set last_seq = h.last_seq + excluded.last_seq
  returning h.run_id, h.org_id, h.thread_id, h.run_seq, h.last_seq
),
x as (
  select h.run_id, h.org_id, h.thread_id, h.run_seq, h.last_seq, h.last_seq - q.n + e.i as seq, e.body, now() as at, q.idx
    from h join q on q.run_id = h.run_id, jsonb_array_elements(q.events) with ordinality as e(body, i)
),
w as (
  insert into run_events (run_id, seq, org_id, thread_id, run_seq, type, data, created_at)
  select run_id, seq, org_id, thread_id, run_seq, body ->> 'type', body, at from x
),
n as (
  select ${noticeSql('h', `(select jsonb_agg(x.body || jsonb_build_object('seq', x.seq, 'at', x.at) order by x.seq) from x where x.run_id = h.run_id)`)} from h
)
select q.idx, h.last_seq, (select count(*) from n)::int as notified
  from q left join h on h.run_id = q.run_id`;

/** Tells subscribers of these runs ($1) to read: their new events were written by another statement. */
export const ANNOUNCE = `
with c as (select set_config('synchronous_commit', 'off', true) as relaxed)
select ${noticeSql('h')} from run_event_heads h, c
 where h.run_id = any($1::uuid[]) and c.relaxed is not null`;

export const READ_EVENTS = `
select seq, data, created_at from run_events
 where run_id = $1 and org_id = $2 and seq > $3
 order by seq
 limit $4`;

/** A thread's events after a cursor ($3 floor, $4 {run seq: delivered}), runs in message order. */
export const READ_THREAD_EVENTS = `
select run_id, run_seq, seq, data, created_at from run_events
 where thread_id = $1 and org_id = $2 and run_seq > $3
   and seq > coalesce(($4::jsonb ->> run_seq::text)::int, 0)
 order by run_seq, seq
 limit $5`;

/** Where a new subscriber of a thread starts: below its oldest open run, or after its last run. */
export const THREAD_START = `
select coalesce((select min(seq) - 1 from runs where thread_id = $1 and org_id = $2 and finished_at is null),
                (select max(seq) from runs where thread_id = $1 and org_id = $2), 0) as floor`;

/** Events (and heads) of runs accepted before the retention ($1 ms), a slice at a time. */
export const PRUNE_EVENTS = `
with old as (
  select run_id from run_event_heads where created_at < now() - make_interval(secs => $1::double precision / 1000)
   order by created_at limit $2
),
e as (delete from run_events where run_id in (select run_id from old) returning 1),
h as (delete from run_event_heads where run_id in (select run_id from old) returning 1)
select (select count(*) from h)::int as runs, (select count(*) from e)::int as events`;

const ACCEPTED_JSON = JSON.stringify(ACCEPTED_EVENT).replace(/'/g, "''");

/**
 * The CTEs an accept adds for its new runs (CTE `r` with id, seq and created_at; `org` and
 * `thread` the SQL for their organization and thread): the head and the `accepted` event, seq 1.
 */
export function acceptedEventSql(org: string, thread: string): string {
  return `eh as (
  insert into run_event_heads (run_id, org_id, thread_id, run_seq, last_seq, created_at)
  select r.id, ${org}, ${thread}, r.seq, 1, r.created_at from r
),
ee as (
  insert into run_events (run_id, seq, org_id, thread_id, run_seq, type, data, created_at)
  select r.id, 1, ${org}, ${thread}, r.seq, 'run', '${ACCEPTED_JSON}'::jsonb, r.created_at from r
)`;
}

/**
 * The CTEs a claim adds for its step's `started` event when `enabled`: `claim` is the CTE of the
 * claimed step (one row at most, with `attempts`), `runId` and `stage` its run and stage. The
 * run's head is the one row it locks after the step's; CTE `en` notifies with the event.
 */
export function startedEventSql(claim: string, runId: string, stage: string, enabled: string): string {
  return `eh as (
  update run_event_heads h set last_seq = h.last_seq + 1
    from ${claim} where h.run_id = ${runId} and ${enabled}
  returning h.run_id, h.org_id, h.thread_id, h.run_seq, h.last_seq, now() as at,
            jsonb_build_object('type', 'step', 'stage', ${stage}, 'status', 'started', 'attempt', ${claim}.attempts) as body
),
ee as (
  insert into run_events (run_id, seq, org_id, thread_id, run_seq, type, data, created_at)
  select run_id, last_seq, org_id, thread_id, run_seq, 'step', body, at from eh
),
en as (
  select ${noticeSql('eh', `jsonb_build_array(eh.body || jsonb_build_object('seq', eh.last_seq, 'at', eh.at))`)} from eh
)`;
}

/**
 * The CTEs a statement that stores steps adds for their events. `events` is a query of the new
 * events, (run_id, body, i, n): each run's numbered i = 1..n in order; `runs` the CTE of the
 * runs the statement locked (id, org_id, thread_id, seq). The heads are taken in run id order
 * once every row of `events` is known (the sort reads them all first), so after the statement's
 * run locks; CTE `sn` notifies with the events.
 */
export function stepEventsSql(events: string, runs: string): string {
  return `se as (${events}),
sh as (
  insert into run_event_heads as h (run_id, org_id, thread_id, run_seq, last_seq)
  select l.id, l.org_id, l.thread_id, l.seq, k.n
    from (select distinct se.run_id, se.n from se) k join ${runs} l on l.id = k.run_id
   order by l.id
  on conflict (run_id) do update set last_seq = h.last_seq + excluded.last_seq
  returning h.run_id, h.org_id, h.thread_id, h.run_seq, h.last_seq
),
sx as (
  select sh.run_id, sh.org_id, sh.thread_id, sh.run_seq, sh.last_seq - se.n + se.i as seq, se.body, now() as at
    from sh join se on se.run_id = sh.run_id
),
sw as (
  insert into run_events (run_id, seq, org_id, thread_id, run_seq, type, data, created_at)
  select run_id, seq, org_id, thread_id, run_seq, body ->> 'type', body, at from sx
),
sn as (
  select ${noticeSql('sh', `(select jsonb_agg(sx.body || jsonb_build_object('seq', sx.seq, 'at', sx.at) order by sx.seq) from sx where sx.run_id = sh.run_id)`)} from sh
)`;
}

/**
 * The CTEs a statement that ends a run adds (CTE `r`: the run it ended, with `id`): the closing
 * events ($events, a jsonb array of bodies), each with the run's next seq; `messageId` is added
 * to the final `run` event when given. `steps` is the CTE that writes the run's step rows: it is
 * run to its end before the head is taken, so that the head is locked after them, as the claim
 * and the completion of a step lock it.
 */
export function closingEventsSql(events: string, steps: string, messageId?: string): string {
  const body = messageId
    ? `(case when e.body ->> 'type' = 'run' and ${messageId} is not null then e.body || jsonb_build_object('messageId', ${messageId}) else e.body end)`
    : 'e.body';
  return `eh as (
  update run_event_heads h set last_seq = h.last_seq + jsonb_array_length(${events})
    from r where h.run_id = r.id and (select count(*) from ${steps}) >= 0
  returning h.run_id, h.org_id, h.thread_id, h.run_seq, h.last_seq
),
ee as (
  insert into run_events (run_id, seq, org_id, thread_id, run_seq, type, data)
  select eh.run_id, eh.last_seq - jsonb_array_length(${events}) + e.i, eh.org_id, eh.thread_id, eh.run_seq, e.body ->> 'type', ${body}
    from eh, jsonb_array_elements(${events}) with ordinality as e(body, i)
)`;
}
