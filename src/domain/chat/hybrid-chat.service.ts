import { randomUUID } from 'node:crypto';
import { AppError, notFound } from '../errors.js';
import { readyStages } from '../../engine/dag.js';
import type { StageName } from '../../engine/catalog.js';
import type { RunOptions } from '../../engine/run.js';
import type { BatchDocument } from './batch-view.js';
import { ChatService, stagesFor, type Actor, type ChatServiceDeps, type Idempotency, type Placement } from './chat.service.js';
import type { QueuePosition } from './backlog.js';
import type { MultitaskStrategy } from './multitask.js';
import type { JobTransport } from '../../engine/ports/job-transport.js';
import type { RunWaits } from './run-waits.js';
import { pendingStates } from '../../engine/engine.js';
import { classifySecurity } from '../stages/security/security.service.js';

export interface AcceptedDocument {
  status: 'accepted';
  message: string;
  degraded?: true;
  data: {
    immediate: { messageId: string; status: 'processing'; timestamp: string };
    jobs: Partial<Record<StageName, { id: string; queue: string }>>;
    tracking: {
      batchId: string;
      threadId: string;
      /** When the reply is expected: the backlog's estimate (src/domain/chat/backlog.ts, estimateWaitMs) from the acceptance. */
      estimatedCompletion: string;
      /** Runs accepted before this message and not finished yet (being processed or waiting). */
      queuePosition: QueuePosition;
      /** Batches of the thread this message's `interrupt` cancelled. */
      interrupted?: string[];
    };
  };
}

export interface HybridChatServiceDeps extends ChatServiceDeps {
  queue: JobTransport;
  /** Time from acceptance to reply assumed for `estimatedCompletion` when no backlog is measured. */
  estimateMs: number;
  /** `wait` on the comprehensive endpoint: woken when the run finishes, capped per organization. */
  waits: RunWaits;
}

export interface ComprehensiveInput extends RunOptions {
  message: string;
  threadId?: string;
  idempotency?: Idempotency;
  /** Seconds to wait for the finished result (bounded by the route). */
  wait?: number;
  multitaskStrategy?: MultitaskStrategy;
}

/**
 * ChatService plus the queued flow: a message is stored and acknowledged at once, then processed
 * by the queue workers — or in this process when the queues cannot be reached (degraded mode).
 * The blocking endpoint works exactly as in ChatService.
 */
export class HybridChatService extends ChatService {
  constructor(protected override readonly deps: HybridChatServiceDeps) {
    super(deps);
  }

  async sendQueued(actor: Actor, threadId: string, content: string, idempotency?: Idempotency, strategy?: MultitaskStrategy): Promise<AcceptedDocument> {
    return this.accept(actor, threadId, content, { source: 'queued', options: {}, ...(idempotency ? { idempotency } : {}), ...(strategy ? { strategy } : {}) });
  }

  /** `signal`: the caller went away; a wait in progress ends (the run goes on). */
  async comprehensive(actor: Actor, input: ComprehensiveInput, signal?: AbortSignal): Promise<AcceptedDocument & { results?: BatchDocument }> {
    // Refused before anything is written: over the cap, nothing is accepted.
    const waitMs = (input.wait ?? 0) * 1000;
    const slot = waitMs > 0 ? this.deps.waits.reserve(actor.orgId, waitMs) : undefined;
    try {
      const accepted = await this.acceptComprehensive(actor, input);
      if (!slot) return accepted;
      const results = await this.waitForRun(actor, accepted.data.tracking.batchId, waitMs, signal);
      return { ...accepted, results };
    } finally {
      slot?.release();
    }
  }

  private async acceptComprehensive(actor: Actor, input: ComprehensiveInput): Promise<AcceptedDocument> {
    if (input.threadId) await this.getThread(actor, input.threadId);
    // A new thread is written with the run, in one statement: a failed or refused request leaves none.
    const threadId = input.threadId ?? randomUUID();
    const options: RunOptions = {
      ...(input.includeRAG !== undefined ? { includeRAG: input.includeRAG } : {}),
      ...(input.includeSecurityAnalysis !== undefined ? { includeSecurityAnalysis: input.includeSecurityAnalysis } : {}),
      ...(input.includeContactEnrichment !== undefined ? { includeContactEnrichment: input.includeContactEnrichment } : {}),
      ...(input.contacts?.length ? { contacts: input.contacts } : {}),
    };
    return this.accept(actor, threadId, input.message, {
      source: 'comprehensive',
      options,
      ...(input.idempotency ? { idempotency: input.idempotency } : {}),
      ...(input.multitaskStrategy ? { strategy: input.multitaskStrategy } : {}),
      ...(input.threadId ? {} : { newThread: { title: titleFrom(input.message) } }),
    });
  }

  protected async accept(
    actor: Actor,
    threadId: string,
    content: string,
    how: { source: string; options: RunOptions; idempotency?: Idempotency; newThread?: { title: string }; strategy?: MultitaskStrategy },
  ): Promise<AcceptedDocument> {
    const queued = this.deps.queue.available();
    const created = await this.createRun(actor, threadId, content, { ...how, driver: queued ? 'queue' : 'inline' });
    if (created.kind === 'thread_not_found') throw notFound('Thread');
    if (created.kind === 'idempotency_key_reused') {
      throw new AppError('idempotency_key_reused', 422, 'This Idempotency-Key was already used with a different request');
    }
    if (created.kind === 'replay') return this.acceptedDocumentFor(actor, created.runId);
    await this.interrupt(created.interrupted);
    const stages = stagesFor(this.deps.catalog, how.options);
    let degraded = !queued;
    if (queued) {
      try {
        // One add on the accept path: the entry job's worker enqueues the run's other root stages.
        const [entry, ...others] = readyStages(this.deps.catalog, Object.fromEntries(stages.map((stage) => [stage, 'pending'])));
        await this.deps.queue.enqueue(created.runId, actor.orgId, [entry!], { fanout: others });
      } catch {
        degraded = true;
        await this.deps.runs.setDriver(created.runId, 'inline');
      }
    }
    // Degraded mode: driven in this process, in the background; cancel and shutdown reach it through the engine.
    if (degraded) void this.deps.engine.inline.drive(created.runId, actor.orgId, pendingStates(stages));
    return this.acceptedDocument(created.runId, created.messageId, created.createdAt, threadId, stages, degraded, created.placement, created.interrupted);
  }

  private acceptedDocument(
    runId: string,
    messageId: string,
    createdAt: Date,
    threadId: string,
    stages: readonly StageName[],
    degraded: boolean,
    placement: Placement | undefined,
    interrupted?: readonly string[],
  ): AcceptedDocument {
    const jobs: AcceptedDocument['data']['jobs'] = {};
    for (const stage of stages) jobs[stage] = { id: `${runId}.${stage}`, queue: this.deps.catalog[stage].queue };
    return {
      status: 'accepted',
      message: 'Processing started',
      ...(degraded ? { degraded: true as const } : {}),
      data: {
        immediate: { messageId, status: 'processing', timestamp: createdAt.toISOString() },
        jobs,
        tracking: {
          batchId: runId,
          threadId,
          estimatedCompletion: new Date(createdAt.getTime() + (placement?.estimatedWaitMs ?? this.deps.estimateMs)).toISOString(),
          queuePosition: placement?.position ?? { organization: 0, overall: 0 },
          ...(interrupted?.length ? { interrupted: [...interrupted] } : {}),
        },
      },
    };
  }

  /** The answer to a replayed idempotency key, rebuilt from what was stored the first time. */
  private async acceptedDocumentFor(actor: Actor, runId: string): Promise<AcceptedDocument> {
    const run = await this.deps.runs.get(actor.orgId, runId);
    const message = await this.deps.runs.userMessage(runId);
    if (!run || !message) throw notFound('Batch');
    const steps = await this.deps.runs.steps(runId);
    // The same message, batch and jobs; its place and estimate as they are now (a client that
    // retries wants to know when, not what it was told before). A finished run has nothing ahead.
    const placement = run.finishedAt
      ? { position: { organization: 0, overall: 0 }, estimatedWaitMs: 0 }
      : await this.deps.backlog?.current(actor.orgId, message.seq);
    const document = this.acceptedDocument(run.id, message.id, run.createdAt, run.threadId, steps.map((s) => s.stage), run.driver === 'inline', placement);
    if (placement) document.data.tracking.estimatedCompletion = (run.finishedAt ?? new Date(Date.now() + placement.estimatedWaitMs)).toISOString();
    return document;
  }

  /** Resolves when every run driven in this process has finished (for graceful shutdown). */
  async drainBackground(): Promise<void> {
    await this.deps.engine.inline.drain();
  }

  private waitForRun(actor: Actor, runId: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<BatchDocument> {
    return this.deps.waits.waitFor(runId, {
      timeoutMs,
      signal,
      read: () => this.getBatchResults(actor, runId),
      isFinished: (document) => document.finishedAt !== null,
    });
  }
}

/**
 * A thread title from the message's start: whitespace folded, at most 80 characters (whole code
 * points). Titles are listed everywhere, so secrets and personal data are redacted first — on
 * the whole message, so that a number cut at the 80th character is still recognised.
 */
export function titleFrom(message: string): string {
  const redacted = classifySecurity(message).redactedContent;
  return Array.from(redacted.replace(/\s+/g, ' ').trim()).slice(0, 80).join('') || 'New conversation';
}
