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
}

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
  async sendMessage(actor: Actor, threadId: string, content: string, signal?: AbortSignal): Promise<BlockingReply> {
    const created = await this.createRun(actor, threadId, content, { source: 'blocking', driver: 'inline' });
    if (created.kind !== 'created') throw notFound('Thread');
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
   * org. With `newThread`, `threadId` names a thread written in the same statement.
   */
  protected createRun(
    actor: Actor,
    threadId: string,
    content: string,
    how: { source: string; driver: string; options?: RunOptions; idempotency?: Idempotency; newThread?: { title: string } },
  ): Promise<AcceptOutcome> {
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
        ? { idempotencyKey: `${actor.userId}:${how.source}:${how.idempotency.key}`, idempotencyFingerprint: how.idempotency.fingerprint }
        : {}),
      ...(how.newThread ? { newThread: how.newThread } : {}),
      stages: stagesFor(this.deps.catalog, options),
    };
    return this.deps.runs.create(run);
  }
}
