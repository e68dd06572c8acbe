import { and, asc, eq, inArray, notInArray } from 'drizzle-orm';
import type pg from 'pg';
import type { Db } from '../client.js';
import { messages, runSteps, runs, type RunOptions, type StepErrorInfo } from '../schema.js';
import type { StageName } from '../../domain/stages/types.js';

export type RunStatus = 'processing' | 'partial' | 'completed' | 'failed' | 'cancelled';
export type StepStatus = 'pending' | 'active' | 'retrying' | 'completed' | 'failed' | 'cancelled';

export interface RunRecord {
  id: string;
  orgId: string;
  threadId: string;
  userId: string | null;
  status: RunStatus;
  source: string;
  driver: string;
  options: RunOptions;
  idempotencyKey: string | null;
  error: StepErrorInfo | null;
  createdAt: Date;
  finishedAt: Date | null;
}

export interface StepRecord {
  runId: string;
  stage: StageName;
  jobId: string;
  queue: string;
  status: StepStatus;
  attempts: number;
  maxAttempts: number;
  result: unknown;
  error: StepErrorInfo | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** The status of each step of a run, as the pipeline's progression needs it. */
export type StepStates = Partial<Record<StageName, StepStatus>>;

export interface NewRun {
  /** Chosen by the caller so that job ids can be derived before anything is written. */
  id: string;
  orgId: string;
  threadId: string;
  userId: string;
  source: string;
  driver: string;
  content: string;
  options?: RunOptions;
  idempotencyKey?: string;
  steps: Array<{ stage: StageName; jobId: string; queue: string; maxAttempts: number }>;
}

export type CreateRunOutcome =
  | { kind: 'created'; runId: string; createdAt: Date; messageId: string }
  | { kind: 'thread_not_found' }
  /** The idempotency key was used before in this organization: nothing new was written. */
  | { kind: 'replay'; runId: string };

/** What a worker needs to run one stage, loaded in the same statement that claims the step. */
export interface ClaimedStep {
  runId: string;
  stage: StageName;
  attempts: number;
  maxAttempts: number;
  orgId: string;
  threadId: string;
  options: RunOptions;
  messageId: string;
  messageSeq: number;
  content: string;
  /** Results of the run's completed steps, by stage. */
  results: Partial<Record<StageName, unknown>>;
}

const TERMINAL_STEP: StepStatus[] = ['completed', 'failed', 'cancelled'];
const FINAL_RUN: RunStatus[] = ['completed', 'failed', 'cancelled'];

const stepColumns = {
  runId: runSteps.runId,
  stage: runSteps.stage,
  jobId: runSteps.jobId,
  queue: runSteps.queue,
  status: runSteps.status,
  attempts: runSteps.attempts,
  maxAttempts: runSteps.maxAttempts,
  result: runSteps.result,
  error: runSteps.error,
  createdAt: runSteps.createdAt,
  startedAt: runSteps.startedAt,
  finishedAt: runSteps.finishedAt,
};

/*
 * The statements on the hot path (accepting a message, claiming and completing a step, storing
 * the reply) are single SQL statements with data-modifying CTEs: one round trip each, atomic, and
 * safe to repeat. They are named, so each connection parses and plans them once. The rest goes
 * through Drizzle's query builder.
 */
const CREATE_RUN = `
with t as (select id from threads where id = $2 and org_id = $3),
r as (
  insert into runs (id, org_id, thread_id, user_id, source, driver, options, idempotency_key, step_states)
  select $1, $3, t.id, $4, $5, $6, $7::jsonb, $8,
         (select coalesce(jsonb_object_agg(stage, 'pending'), '{}'::jsonb) from unnest($10::text[]) as stage)
    from t
  on conflict (org_id, idempotency_key) do nothing
  returning id, created_at
),
m as (
  insert into messages (org_id, thread_id, run_id, role, content)
  select $3, $2, r.id, 'user', $9 from r
  returning id
),
s as (
  insert into run_steps (run_id, org_id, stage, job_id, queue, max_attempts)
  select r.id, $3, x.stage, x.job_id, x.queue, x.max_attempts
  from r, unnest($10::text[], $11::text[], $12::text[], $13::int[]) as x(stage, job_id, queue, max_attempts)
  returning 1
)
select (select count(*) from t)::int as thread_found,
       (select id from r) as run_id,
       (select created_at from r) as created_at,
       (select id from m) as message_id,
       (select count(*) from s)::int as steps,
       (case when $8::text is null then null
             else (select id from runs where org_id = $3 and idempotency_key = $8) end) as existing_run_id`;

const CLAIM_STEP = `
with s as (
  update run_steps
     set status = 'active', attempts = attempts + 1, started_at = coalesce(started_at, now())
   where run_id = $1 and stage = $2 and status not in ('completed', 'failed', 'cancelled')
     and ($3::boolean is not true or status = 'pending')
     and exists (select 1 from runs where id = $1 and finished_at is null)
  returning attempts, max_attempts
)
select s.attempts, s.max_attempts, r.org_id, r.thread_id, r.options,
       m.id as message_id, m.seq as message_seq, m.content,
       (select coalesce(jsonb_object_agg(st.stage, st.result) filter (where st.status = 'completed'), '{}'::jsonb)
          from run_steps st where st.run_id = $1) as results
  from s, runs r
  join messages m on m.run_id = r.id and m.role = 'user'
 where r.id = $1`;

/*
 * Updating the run row serialises concurrent completions of the same run: the second waits for
 * the first and then sees its step_states, so exactly the last completion finds the next stage
 * ready, never neither.
 */
const COMPLETE_STEP = `
with s as (
  update run_steps set status = 'completed', result = $3::jsonb, error = null, finished_at = now()
   where run_id = $1 and stage = $2 and status not in ('completed', 'failed', 'cancelled')
  returning stage
),
r as (
  update runs
     set status = case when status = 'processing' then 'partial'::run_status else status end,
         step_states = step_states || jsonb_build_object($2::text, 'completed')
   where id = $1 and exists (select 1 from s)
  returning step_states
)
select (select count(*) from s)::int as written, (select step_states from r) as states`;

const FAIL_STEP = `
with s as (
  update run_steps
     set status = (case when $4 then 'failed' else 'retrying' end)::step_status, error = $3::jsonb,
         finished_at = case when $4 then now() else finished_at end
   where run_id = $1 and stage = $2 and status not in ('completed', 'failed', 'cancelled')
  returning stage
),
r as (
  update runs set step_states = step_states || jsonb_build_object($2::text, 'failed')
   where id = $1 and $4 and exists (select 1 from s)
  returning step_states
)
select (select count(*) from s)::int as written, (select step_states from r) as states`;

const COMPLETE_WITH_REPLY = `
with r as (
  update runs set status = 'completed', finished_at = now(), error = null
   where id = $1 and status not in ('completed', 'failed', 'cancelled')
  returning id, org_id, thread_id
),
m as (
  insert into messages (org_id, thread_id, run_id, role, content)
  select org_id, thread_id, id, 'assistant', $3 from r
  on conflict do nothing
  returning id
),
s as (
  update run_steps
     set status = 'completed', error = null, finished_at = now(),
         result = $4::jsonb || jsonb_build_object('assistantMessageId', (select id from m))
   where run_id = $1 and stage = $2 and exists (select 1 from m)
  returning 1
)
select (select id from m) as message_id`;

/** Whether a run earlier in the same thread (by message order) is still open. */
const EARLIER_OPEN_RUN = `
select exists (
  select 1 from runs r join messages m on m.run_id = r.id and m.role = 'user'
   where r.thread_id = $1 and r.finished_at is null and m.seq < $2
) as waiting`;

/** The oldest open run of a thread, which is the one whose reply may be produced next. */
const NEXT_OPEN_RUN = `
select r.id, r.org_id, r.driver from runs r join messages m on m.run_id = r.id and m.role = 'user'
 where r.thread_id = $1 and r.finished_at is null
 order by m.seq limit 1`;

export function createRunsRepository(db: Db, pool: pg.Pool) {
  return {
    /**
     * The run, its user message and its steps in one statement — only if the thread belongs to
     * the organization, and only once per idempotency key.
     */
    async create(input: NewRun): Promise<CreateRunOutcome> {
      const { rows } = await pool.query({ name: 'honeyjar-create-run', text: CREATE_RUN, values: [
        input.id,
        input.threadId,
        input.orgId,
        input.userId,
        input.source,
        input.driver,
        JSON.stringify(input.options ?? {}),
        input.idempotencyKey ?? null,
        input.content,
        input.steps.map((s) => s.stage),
        input.steps.map((s) => s.jobId),
        input.steps.map((s) => s.queue),
        input.steps.map((s) => s.maxAttempts),
      ] });
      const row = rows[0];
      if (!row || row.thread_found === 0) return { kind: 'thread_not_found' };
      if (row.run_id) return { kind: 'created', runId: row.run_id, createdAt: row.created_at, messageId: row.message_id };
      if (row.existing_run_id) return { kind: 'replay', runId: row.existing_run_id };
      // The key's run was written by a concurrent request that has not committed yet; its
      // statement has, by now, so asking again finds it.
      const again = await this.findByIdempotencyKey(input.orgId, input.idempotencyKey!);
      if (!again) throw new Error('idempotency conflict without a run');
      return { kind: 'replay', runId: again.id };
    },

    async get(orgId: string, runId: string): Promise<RunRecord | undefined> {
      const [row] = await db.select().from(runs).where(and(eq(runs.orgId, orgId), eq(runs.id, runId)));
      return row as RunRecord | undefined;
    },

    async getById(runId: string): Promise<RunRecord | undefined> {
      const [row] = await db.select().from(runs).where(eq(runs.id, runId));
      return row as RunRecord | undefined;
    },

    async findByIdempotencyKey(orgId: string, key: string): Promise<RunRecord | undefined> {
      const [row] = await db.select().from(runs).where(and(eq(runs.orgId, orgId), eq(runs.idempotencyKey, key)));
      return row as RunRecord | undefined;
    },

    async steps(runId: string): Promise<StepRecord[]> {
      const rows = await db.select(stepColumns).from(runSteps).where(eq(runSteps.runId, runId)).orderBy(asc(runSteps.createdAt));
      return rows as StepRecord[];
    },

    async stepsByJobIds(orgId: string, jobIds: string[]): Promise<StepRecord[]> {
      if (jobIds.length === 0) return [];
      const rows = await db
        .select(stepColumns)
        .from(runSteps)
        .where(and(eq(runSteps.orgId, orgId), inArray(runSteps.jobId, jobIds)));
      return rows as StepRecord[];
    },

    async userMessage(runId: string): Promise<{ id: string; seq: number; content: string; threadId: string } | undefined> {
      const [row] = await db
        .select({ id: messages.id, seq: messages.seq, content: messages.content, threadId: messages.threadId })
        .from(messages)
        .where(and(eq(messages.runId, runId), eq(messages.role, 'user')));
      return row;
    },

    async assistantMessage(runId: string): Promise<{ id: string; content: string } | undefined> {
      const [row] = await db
        .select({ id: messages.id, content: messages.content })
        .from(messages)
        .where(and(eq(messages.runId, runId), eq(messages.role, 'assistant')));
      return row;
    },

    /**
     * Claims an attempt of a step and loads what the stage needs. Undefined when the step or its
     * run is already finished, so a re-delivered job does nothing twice.
     */
    async claimStep(runId: string, stage: StageName, options: { onlyIfPending?: boolean } = {}): Promise<ClaimedStep | undefined> {
      // A worker may re-claim an `active` step (its job stalled and came back); a local settle may not.
      const { rows } = await pool.query({ name: 'honeyjar-claim-step', text: CLAIM_STEP, values: [runId, stage, options.onlyIfPending === true] });
      const row = rows[0];
      if (!row) return undefined;
      return {
        runId,
        stage,
        attempts: row.attempts,
        maxAttempts: row.max_attempts,
        orgId: row.org_id,
        threadId: row.thread_id,
        options: row.options,
        messageId: row.message_id,
        messageSeq: Number(row.message_seq),
        content: row.content,
        results: row.results,
      };
    },

    /** Undoes a claim that turned out not to be this caller's to run (see executeIfLocal). */
    async releaseClaim(runId: string, stage: StageName): Promise<void> {
      await pool.query(
        `update run_steps set status = 'pending', attempts = greatest(attempts - 1, 0)
          where run_id = $1 and stage = $2 and status = 'active'`,
        [runId, stage],
      );
    },

    /**
     * Stores a step's result once (the run becomes `partial` with its first one) and answers the
     * states of all the run's steps, which tell the driver what is ready next.
     */
    async completeStep(runId: string, stage: StageName, result: unknown): Promise<{ written: boolean; states: StepStates }> {
      const { rows } = await pool.query({ name: 'honeyjar-complete-step', text: COMPLETE_STEP, values: [runId, stage, JSON.stringify(result)] });
      return { written: rows[0]?.written === 1, states: rows[0]?.states ?? {} };
    },

    /** Records a failed attempt: `retrying` while attempts remain, else `failed` (with the run's step states). */
    async failAttempt(runId: string, stage: StageName, error: StepErrorInfo, final: boolean): Promise<{ written: boolean; states: StepStates | null }> {
      const { rows } = await pool.query({ name: 'honeyjar-fail-step', text: FAIL_STEP, values: [runId, stage, JSON.stringify(error), final] });
      return { written: rows[0]?.written === 1, states: rows[0]?.states ?? null };
    },

    /**
     * Finishes a run with its reply: the run's status, the assistant message and the LLM step's
     * result in one statement, and only while the run is open. Whatever retries or re-runs happen,
     * a run stores at most one reply. Undefined when the run was already finished (cancelled).
     */
    async completeWithReply(runId: string, stage: StageName, content: string, result: Record<string, unknown>): Promise<{ messageId: string } | undefined> {
      const { rows } = await pool.query({ name: 'honeyjar-complete-with-reply', text: COMPLETE_WITH_REPLY, values: [runId, stage, content, JSON.stringify(result)] });
      const messageId: string | null = rows[0]?.message_id ?? null;
      return messageId ? { messageId } : undefined;
    },

    /** Ends an open run as failed or cancelled; its open steps are cancelled with it. */
    async finish(runId: string, status: 'failed' | 'cancelled', error?: StepErrorInfo): Promise<boolean> {
      return db.transaction(async (tx) => {
        const rows = await tx
          .update(runs)
          .set({ status, finishedAt: new Date(), error: error ?? null })
          .where(and(eq(runs.id, runId), notInArray(runs.status, FINAL_RUN)))
          .returning({ id: runs.id });
        if (rows.length === 0) return false;
        await tx
          .update(runSteps)
          .set({ status: 'cancelled', finishedAt: new Date() })
          .where(and(eq(runSteps.runId, runId), notInArray(runSteps.status, TERMINAL_STEP)));
        return true;
      });
    },

    async hasEarlierOpenRun(threadId: string, messageSeq: number): Promise<boolean> {
      const { rows } = await pool.query({ name: 'honeyjar-earlier-open-run', text: EARLIER_OPEN_RUN, values: [threadId, messageSeq] });
      return rows[0]?.waiting === true;
    },

    async nextOpenRun(threadId: string): Promise<{ id: string; orgId: string; driver: string } | undefined> {
      const { rows } = await pool.query({ name: 'honeyjar-next-open-run', text: NEXT_OPEN_RUN, values: [threadId] });
      return rows[0] ? { id: rows[0].id, orgId: rows[0].org_id, driver: rows[0].driver } : undefined;
    },

    /** Open runs older than the given age: candidates for the reconciler. */
    async openRunsOlderThan(ageMs: number, limit: number): Promise<Array<{ id: string; orgId: string; driver: string }>> {
      const { rows } = await pool.query(
        `select id, org_id, driver from runs
          where finished_at is null and created_at < now() - make_interval(secs => $1::float8 / 1000)
          order by created_at limit $2`,
        [ageMs, limit],
      );
      return rows.map((row) => ({ id: row.id, orgId: row.org_id, driver: row.driver }));
    },

    async setDriver(runId: string, driver: string): Promise<void> {
      await db.update(runs).set({ driver }).where(eq(runs.id, runId));
    },
  };
}

export type RunsRepository = ReturnType<typeof createRunsRepository>;
