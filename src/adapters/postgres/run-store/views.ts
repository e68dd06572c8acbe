import { and, eq } from 'drizzle-orm';
import type pg from 'pg';
import type { Db } from '../client.js';
import { messages } from '../schema.js';
import { stageOrder } from '../../../engine/dag.js';
import { jobIdFor, parseJobId } from '../../../engine/job-id.js';
import type { Run, Step, StepStates } from '../../../engine/run.js';
import type { AnyCatalog, StageOf } from '../../../engine/stage.js';

/** Runs with their step rows (those written so far), for the views that list every step. */
const RUN_STEPS = `
select r.id as run_id, r.created_at as run_created_at, r.step_states,
       r.org_id, r.thread_id, r.user_id, r.status as run_status, r.source, r.driver, r.options,
       r.idempotency_key, r.error as run_error, r.finished_at as run_finished_at,
       st.stage, st.job_id, st.queue, st.status, st.attempts, st.max_attempts, st.result, st.error,
       st.created_at, st.started_at, st.finished_at
  from runs r
  left join run_steps st on st.run_id = r.id
 where r.id = any($1::uuid[]) and ($2::uuid is null or r.org_id = $2)`;

/** The views of runs: a run with every step, steps by job id, a run's messages. */
export function createViews<C extends AnyCatalog>(db: Db, pool: pg.Pool, catalog: C) {
  type S = StageOf<C>;
  const order = stageOrder(catalog);
  async function stepsOf(runIds: string[], orgId: string | null): Promise<Map<string, Step<S>[]>> {
    return new Map([...(await runsWithSteps(runIds, orgId))].map(([id, { steps }]) => [id, steps]));
  }

  async function runsWithSteps(runIds: string[], orgId: string | null): Promise<Map<string, { run: Run; steps: Step<S>[] }>> {
    const { rows } = await pool.query({ name: 'honeyjar-run-steps', text: RUN_STEPS, values: [runIds, orgId] });
    const byRun = new Map<string, { record: Run; createdAt: Date; states: StepStates<S>; rows: Map<string, Step<S>> }>();
    for (const row of rows) {
      let run = byRun.get(row.run_id);
      if (!run) {
        const record: Run = {
          id: row.run_id,
          orgId: row.org_id,
          threadId: row.thread_id,
          userId: row.user_id,
          status: row.run_status,
          source: row.source,
          driver: row.driver,
          options: row.options,
          idempotencyKey: row.idempotency_key,
          error: row.run_error,
          createdAt: row.run_created_at,
          finishedAt: row.run_finished_at,
        };
        run = { record, createdAt: row.run_created_at, states: row.step_states, rows: new Map() };
        byRun.set(row.run_id, run);
      }
      if (row.stage) {
        run.rows.set(row.stage, {
          runId: row.run_id,
          stage: row.stage,
          jobId: row.job_id,
          queue: row.queue,
          status: row.status,
          attempts: row.attempts,
          maxAttempts: row.max_attempts,
          result: row.result,
          error: row.error,
          createdAt: row.created_at,
          startedAt: row.started_at,
          finishedAt: row.finished_at,
        });
      }
    }
    const result = new Map<string, { run: Run; steps: Step<S>[] }>();
    for (const [runId, run] of byRun) {
      const steps = order
        .filter((stage) => run.states[stage] !== undefined)
        .map(
          (stage): Step<S> =>
            run.rows.get(stage) ?? {
              runId,
              stage,
              jobId: jobIdFor(runId, stage),
              queue: catalog[stage]!.queue,
              status: run.states[stage]!,
              attempts: 0,
              maxAttempts: catalog[stage]!.attempts,
              result: null,
              error: null,
              createdAt: run.createdAt,
              startedAt: null,
              finishedAt: null,
            },
        );
      result.set(runId, { run: run.record, steps });
    }
    return result;
  }

  return {
    /** The organization's run with every step, in one statement (what a batch document shows). */
    async getWithSteps(orgId: string, runId: string): Promise<{ run: Run; steps: Step<S>[] } | undefined> {
      return (await runsWithSteps([runId], orgId)).get(runId);
    },

    /** Every step of the run, claimed or not, in pipeline order. */
    async steps(runId: string): Promise<Step<S>[]> {
      return (await stepsOf([runId], null)).get(runId) ?? [];
    },

    /** Steps by job id (`<runId>.<stage>`), only of the organization's runs; unknown ids are left out. */
    async stepsByJobIds(orgId: string, jobIds: string[]): Promise<Step<S>[]> {
      const wanted = new Map<string, Set<string>>();
      for (const jobId of jobIds) {
        const parsed = parseJobId(catalog, jobId);
        if (!parsed) continue;
        const stages = wanted.get(parsed.runId) ?? new Set<string>();
        stages.add(parsed.stage);
        wanted.set(parsed.runId, stages);
      }
      if (wanted.size === 0) return [];
      const byRun = await stepsOf([...wanted.keys()], orgId);
      return [...byRun.values()].flat().filter((step) => wanted.get(step.runId)?.has(step.stage));
    },

    async userMessage(runId: string): Promise<{ id: string; seq: number; content: string; threadId: string } | undefined> {
      const { rows } = await pool.query({
        name: 'honeyjar-user-message',
        text: `select m.id, r.seq, m.content, r.thread_id from runs r join messages m on m.id = r.message_id where r.id = $1`,
        values: [runId],
      });
      const row = rows[0];
      return row ? { id: row.id, seq: Number(row.seq), content: row.content, threadId: row.thread_id } : undefined;
    },

    async assistantMessage(runId: string): Promise<{ id: string; content: string } | undefined> {
      const [row] = await db
        .select({ id: messages.id, content: messages.content })
        .from(messages)
        .where(and(eq(messages.runId, runId), eq(messages.role, 'assistant')));
      return row;
    },
  };
}
