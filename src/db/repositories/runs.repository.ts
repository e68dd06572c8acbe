import { and, asc, eq, inArray, notInArray, sql } from 'drizzle-orm';
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
  error: StepErrorInfo | null;
  acceptedResponse: unknown;
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

export function createRunsRepository(db: Db) {
  const repository = {
    /** The run, its user message and its steps, written together or not at all. */
    async create(input: NewRun): Promise<{ run: RunRecord; messageId: string; messageCreatedAt: Date }> {
      return db.transaction(async (tx) => {
        const [run] = await tx
          .insert(runs)
          .values({
            id: input.id,
            orgId: input.orgId,
            threadId: input.threadId,
            userId: input.userId,
            source: input.source,
            driver: input.driver,
            options: input.options ?? {},
            idempotencyKey: input.idempotencyKey ?? null,
          })
          .returning();
        const [message] = await tx
          .insert(messages)
          .values({ orgId: input.orgId, threadId: input.threadId, runId: run!.id, role: 'user', content: input.content })
          .returning({ id: messages.id, createdAt: messages.createdAt });
        await tx.insert(runSteps).values(
          input.steps.map((step) => ({
            runId: run!.id,
            orgId: input.orgId,
            stage: step.stage,
            jobId: step.jobId,
            queue: step.queue,
            maxAttempts: step.maxAttempts,
          })),
        );
        return { run: run as RunRecord, messageId: message!.id, messageCreatedAt: message!.createdAt };
      });
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

    async setAcceptedResponse(runId: string, response: unknown): Promise<void> {
      await db.update(runs).set({ acceptedResponse: response }).where(eq(runs.id, runId));
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

    /** The user message that a run processes. */
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
     * Claims an attempt of a step. Answers undefined when the step is already finished or its run
     * is, so a re-delivered job does nothing twice.
     */
    async startAttempt(runId: string, stage: StageName): Promise<StepRecord | undefined> {
      const [row] = await db
        .update(runSteps)
        .set({ status: 'active', attempts: sql`${runSteps.attempts} + 1`, startedAt: sql`coalesce(${runSteps.startedAt}, now())` })
        .where(
          and(
            eq(runSteps.runId, runId),
            eq(runSteps.stage, stage),
            notInArray(runSteps.status, TERMINAL_STEP),
            sql`exists (select 1 from ${runs} where ${runs.id} = ${runId} and ${runs.finishedAt} is null)`,
          ),
        )
        .returning(stepColumns);
      return row as StepRecord | undefined;
    },

    /** Stores a step's result once; the run becomes `partial` with its first finished step. */
    async completeStep(runId: string, stage: StageName, result: unknown): Promise<boolean> {
      return db.transaction(async (tx) => {
        const rows = await tx
          .update(runSteps)
          .set({ status: 'completed', result, error: null, finishedAt: new Date() })
          .where(and(eq(runSteps.runId, runId), eq(runSteps.stage, stage), notInArray(runSteps.status, TERMINAL_STEP)))
          .returning({ runId: runSteps.runId });
        if (rows.length === 0) return false;
        await tx.update(runs).set({ status: 'partial' }).where(and(eq(runs.id, runId), eq(runs.status, 'processing')));
        return true;
      });
    },

    /** Records a failed attempt: `retrying` while attempts remain, else `failed`. */
    async failAttempt(runId: string, stage: StageName, error: StepErrorInfo, final: boolean): Promise<boolean> {
      const rows = await db
        .update(runSteps)
        .set(final ? { status: 'failed', error, finishedAt: new Date() } : { status: 'retrying', error })
        .where(and(eq(runSteps.runId, runId), eq(runSteps.stage, stage), notInArray(runSteps.status, TERMINAL_STEP)))
        .returning({ runId: runSteps.runId });
      return rows.length > 0;
    },

    /**
     * Finishes a run with its reply: the assistant message, the LLM step's result and the run's
     * status are written in one transaction, and only if the run is still open. Whatever retries
     * or re-runs happen, a run stores at most one reply.
     */
    async completeWithReply(
      runId: string,
      stage: StageName,
      reply: { orgId: string; threadId: string; content: string },
      result: Record<string, unknown>,
    ): Promise<{ messageId: string; stored: boolean } | undefined> {
      return db.transaction(async (tx) => {
        const [open] = await tx
          .update(runs)
          .set({ status: 'completed', finishedAt: new Date(), error: null })
          .where(and(eq(runs.id, runId), notInArray(runs.status, FINAL_RUN)))
          .returning({ id: runs.id });
        if (!open) return undefined;
        const [inserted] = await tx
          .insert(messages)
          .values({ orgId: reply.orgId, threadId: reply.threadId, runId, role: 'assistant', content: reply.content })
          .onConflictDoNothing()
          .returning({ id: messages.id });
        const messageId =
          inserted?.id ??
          (await tx
            .select({ id: messages.id })
            .from(messages)
            .where(and(eq(messages.runId, runId), eq(messages.role, 'assistant'))))[0]!.id;
        await tx
          .update(runSteps)
          .set({ status: 'completed', result: { ...result, assistantMessageId: messageId }, error: null, finishedAt: new Date() })
          .where(and(eq(runSteps.runId, runId), eq(runSteps.stage, stage)));
        return { messageId, stored: inserted !== undefined };
      });
    },

    /** Ends an open run as failed or cancelled; open steps are cancelled with it. */
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
  };
  return repository;
}

export type RunsRepository = ReturnType<typeof createRunsRepository>;
