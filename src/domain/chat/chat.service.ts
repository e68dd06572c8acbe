import { randomUUID } from 'node:crypto';
import { notFound } from '../errors.js';
import { stageOrder } from '../../engine/dag.js';
import type { Catalog } from '../../engine/catalog.js';
import type { StageName } from '../../engine/catalog.js';
import { toBatchDocument, type BatchDocument } from './batch-view.js';
import { pendingStates, type Engine } from '../../engine/engine.js';
import type { AcceptOutcome, NewRun, RunOptions } from '../../engine/run.js';
import type { RunStore } from '../../engine/ports/run-store.js';
import type { ThreadStore } from './thread-store.js';
import { BacklogFullError, type Backlog, type QueuePosition } from './backlog.js';
import { ThreadBusyError, type ExclusiveAccept, type MultitaskStrategy, type OrganizationSettingsService } from './multitask.js';

/** Who is asking: every call is scoped to the caller's organization. */
export interface Actor {
  orgId: string;
  userId: string;
}

export interface ChatServiceDeps {
  catalog: Catalog;
  threads: ThreadStore;
  runs: RunStore<StageName>;
  engine: Engine<StageName>;
  /** Backpressure: places each accepted message and refuses those beyond the backlog limits. */
  backlog?: Backlog;
  /** Double texting: the organizations' default strategy and the accept that honours the others. */
  multitask?: { settings: OrganizationSettingsService; exclusive: ExclusiveAccept<StageName> };
}

/** Where an accepted message stands: the runs ahead of it and the expected wait. */
export interface Placement {
  position: QueuePosition;
  estimatedWaitMs: number;
  /** The model's estimate before its measured correction, stored with the run (see backlog.ts). */
  modelWaitMs?: number | null;
}

/** A created run, with its placement and the runs its `interrupt` cancelled. */
export type CreatedRun = AcceptOutcome & { placement?: Placement; interrupted?: string[] };

/**
 * A client's Idempotency-Key and a digest of the request that carried it. The key is kept per user
 * and per endpoint (the run's source), so keys of different users or endpoints never meet.
 */
export interface Idempotency {
  key: string;
  fingerprint: string;
}

export interface BlockingReply extends BatchDocument {
  messageId: string;
  assistantMessage: { id: string; content: string } | null;
}

/** The stages a run includes, from the options a client may set (each stage's `includedWhen`). */
export function stagesFor(catalog: Catalog, options: RunOptions): StageName[] {
  return stageOrder(catalog).filter((stage) => catalog[stage].includedWhen?.(options) ?? true);
}

export class ChatService {
  constructor(protected readonly deps: ChatServiceDeps) {}

  createThread(actor: Actor, title: string | undefined) {
    return this.deps.threads.create(actor.orgId, actor.userId, title?.trim() || 'New conversation');
  }

  listThreads(actor: Actor, limit: number, cursor?: string) {
    return this.deps.threads.list(actor.orgId, limit, cursor);
  }

  async getThread(actor: Actor, threadId: string) {
    const thread = await this.deps.threads.get(actor.orgId, threadId);
    if (!thread) throw notFound('Thread');
    return thread;
  }

  async listMessages(actor: Actor, threadId: string, limit: number, cursor?: string) {
    const page = await this.deps.threads.listMessages(actor.orgId, threadId, limit, cursor);
    if (!page) throw notFound('Thread');
    return page;
  }

  /** The original, blocking flow: store the message, run every stage in-process, answer with the result. */
  async sendMessage(actor: Actor, threadId: string, content: string, signal?: AbortSignal, strategy?: MultitaskStrategy): Promise<BlockingReply> {
    const created = await this.createRun(actor, threadId, content, { source: 'blocking', driver: 'inline', ...(strategy ? { strategy } : {}) });
    if (created.kind !== 'created') throw notFound('Thread');
    await this.interrupt(created.interrupted);
    await this.deps.engine.inline.drive(created.runId, actor.orgId, pendingStates(stagesFor(this.deps.catalog, {})), signal);
    const document = await this.getBatchResults(actor, created.runId);
    const reply = await this.deps.runs.assistantMessage(created.runId);
    return { ...document, messageId: created.messageId, assistantMessage: reply ?? null };
  }

  async getBatchResults(actor: Actor, batchId: string): Promise<BatchDocument> {
    const found = await this.deps.runs.getWithSteps(actor.orgId, batchId);
    if (!found) throw notFound('Batch');
    return toBatchDocument(found.run, found.steps);
  }

  /**
   * Writes the run, its user message and steps; answers thread_not_found for a thread not of this
   * org. With `newThread`, `threadId` names a thread written in the same statement. Refused
   * beyond the backlog limits (BacklogFullError) and, with `reject`, while the thread has an open
   * run (ThreadBusyError); with `interrupt` the thread's open runs are returned for `interrupt`.
   */
  protected async createRun(
    actor: Actor,
    threadId: string,
    content: string,
    how: {
      source: string;
      driver: string;
      options?: RunOptions;
      idempotency?: Idempotency;
      newThread?: { title: string };
      strategy?: MultitaskStrategy;
    },
  ): Promise<CreatedRun> {
    const placement = await this.place(actor, how.source, how.idempotency);
    if (placement && 'replay' in placement) return placement.replay;
    const id = randomUUID();
    const options = how.options ?? {};
    const run: NewRun = {
      id,
      orgId: actor.orgId,
      threadId,
      userId: actor.userId,
      source: how.source,
      driver: how.driver,
      content,
      options,
      ...(how.idempotency
        ? { idempotencyKey: idempotencyKeyOf(actor, how.source, how.idempotency), idempotencyFingerprint: how.idempotency.fingerprint }
        : {}),
      ...(how.newThread ? { newThread: how.newThread } : {}),
      stages: stagesFor(this.deps.catalog, options),
      // Learned from only where it held: a queued run waits its turn; one driven inline does not.
      ...(how.driver === 'queue' && typeof placement?.modelWaitMs === 'number' ? { modelWaitMs: placement.modelWaitMs } : {}),
    };
    const { multitask } = this.deps;
    // A new thread has nothing running: every strategy is the plain accept.
    const strategy = multitask && !how.newThread ? await multitask.settings.resolve(actor.orgId, how.strategy) : 'enqueue';
    let created: CreatedRun;
    if (strategy === 'enqueue' || !multitask) created = await this.deps.runs.create(run);
    else {
      const outcome = await multitask.exclusive.create(run, strategy);
      if (outcome.kind === 'thread_busy') throw new ThreadBusyError(outcome.runId);
      created = outcome;
    }
    if (created.kind === 'created') {
      this.deps.backlog?.accepted(actor.orgId);
      if (placement) created = { ...created, placement };
    }
    return created;
  }

  /**
   * The message's place in the backlog, or the refusal. A refused request that repeats an
   * accepted one (its Idempotency-Key) is answered as the replay it is.
   */
  private async place(actor: Actor, source: string, idempotency: Idempotency | undefined): Promise<Placement | { replay: CreatedRun } | undefined> {
    if (!this.deps.backlog) return undefined;
    try {
      return await this.deps.backlog.admit(actor.orgId);
    } catch (error) {
      if (!(error instanceof BacklogFullError) || !idempotency) throw error;
      const existing = await this.deps.runs.findByIdempotencyKey(actor.orgId, idempotencyKeyOf(actor, source, idempotency));
      if (!existing) throw error;
      const fingerprint = (existing as { idempotencyFingerprint?: string | null }).idempotencyFingerprint ?? null;
      return { replay: fingerprint === idempotency.fingerprint ? { kind: 'replay', runId: existing.id } : { kind: 'idempotency_key_reused' } };
    }
  }

  /** Ends the runs an `interrupt` displaced: their calls in progress are aborted, no reply is stored for them. */
  protected async interrupt(runIds: readonly string[] | undefined): Promise<void> {
    for (const runId of runIds ?? []) {
      const steps = await this.deps.runs.steps(runId);
      const open = steps.filter((s) => !['completed', 'failed', 'cancelled'].includes(s.status));
      await this.deps.engine.cancel(runId, 'interrupted by a newer message in the thread', open.map((s) => ({ jobId: s.jobId, stage: s.stage })));
    }
  }
}

/** The key is kept per user and per endpoint (the run's source). */
function idempotencyKeyOf(actor: Actor, source: string, idempotency: Idempotency): string {
  return `${actor.userId}:${source}:${idempotency.key}`;
}
