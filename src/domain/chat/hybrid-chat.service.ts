import { randomUUID } from 'node:crypto';
import { AppError, notFound } from '../errors.js';
import { readyStages } from '../../engine/dag.js';
import type { StageName } from '../../engine/catalog.js';
import type { RunOptions } from '../../engine/run.js';
import type { Step } from '../../engine/run.js';
import type { BatchDocument } from './batch-view.js';
import { ChatService, stagesFor, type Actor, type ChatServiceDeps, type Idempotency } from './chat.service.js';
import type { JobTransport, JobState, QueueCounts } from '../../engine/ports/job-transport.js';
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
    tracking: { batchId: string; threadId: string; estimatedCompletion: string };
  };
}

export interface HybridChatServiceDeps extends ChatServiceDeps {
  queue: JobTransport;
  /** Typical time from acceptance to reply, for `estimatedCompletion`. */
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
}

export interface JobStatus {
  jobId: string;
  queue: string;
  status: string;
  attempts: number;
  maxAttempts: number;
  progress?: unknown;
  result?: unknown;
  error?: { code: string; message: string };
  createdAt: string;
  processedAt?: string;
  finishedAt?: string;
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

  async sendQueued(actor: Actor, threadId: string, content: string, idempotency?: Idempotency): Promise<AcceptedDocument> {
    return this.accept(actor, threadId, content, { source: 'queued', options: {}, ...(idempotency ? { idempotency } : {}) });
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
      ...(input.threadId ? {} : { newThread: { title: titleFrom(input.message) } }),
    });
  }

  protected async accept(
    actor: Actor,
    threadId: string,
    content: string,
    how: { source: string; options: RunOptions; idempotency?: Idempotency; newThread?: { title: string } },
  ): Promise<AcceptedDocument> {
    const queued = this.deps.queue.available();
    const created = await this.createRun(actor, threadId, content, { ...how, driver: queued ? 'queue' : 'inline' });
    if (created.kind === 'thread_not_found') throw notFound('Thread');
    if (created.kind === 'idempotency_key_reused') {
      throw new AppError('idempotency_key_reused', 422, 'This Idempotency-Key was already used with a different request');
    }
    if (created.kind === 'replay') return this.acceptedDocumentFor(actor, created.runId);
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
    return this.acceptedDocument(created.runId, created.messageId, created.createdAt, threadId, stages, degraded);
  }

  private acceptedDocument(
    runId: string,
    messageId: string,
    createdAt: Date,
    threadId: string,
    stages: readonly StageName[],
    degraded: boolean,
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
        tracking: { batchId: runId, threadId, estimatedCompletion: new Date(createdAt.getTime() + this.deps.estimateMs).toISOString() },
      },
    };
  }

  /** The answer to a replayed idempotency key, rebuilt from what was stored the first time. */
  private async acceptedDocumentFor(actor: Actor, runId: string): Promise<AcceptedDocument> {
    const run = await this.deps.runs.get(actor.orgId, runId);
    const message = await this.deps.runs.userMessage(runId);
    if (!run || !message) throw notFound('Batch');
    const steps = await this.deps.runs.steps(runId);
    return this.acceptedDocument(run.id, message.id, run.createdAt, run.threadId, steps.map((s) => s.stage), run.driver === 'inline');
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

  async jobStatus(actor: Actor, jobIds: readonly string[]): Promise<{ jobs: Array<JobStatus | { jobId: string; status: 'not_found' }>; summary: Record<string, number> }> {
    const steps = await this.deps.runs.stepsByJobIds(actor.orgId, [...new Set(jobIds)]);
    const byId = new Map(steps.map((s) => [s.jobId, s]));
    const live = this.deps.queue.available()
      ? await this.deps.queue.inspect(steps.map((s) => ({ jobId: s.jobId, stage: s.stage }))).catch(() => new Map())
      : new Map();
    const jobs = jobIds.map((jobId) => {
      const step = byId.get(jobId);
      if (!step) return { jobId, status: 'not_found' as const };
      return describeJob(step, live.get(jobId));
    });
    return { jobs, summary: summarise(jobs.map((j) => j.status)) };
  }

  async cancelJobs(
    actor: Actor,
    jobIds: readonly string[],
    reason: string,
  ): Promise<{ results: Array<{ jobId: string; cancelled: boolean; previousState: string }>; summary: Record<string, number> }> {
    const steps = await this.deps.runs.stepsByJobIds(actor.orgId, [...new Set(jobIds)]);
    const byId = new Map(steps.map((s) => [s.jobId, s]));
    const previous = new Map<string, string>();
    const cancelledRuns = new Set<string>();
    for (const runId of new Set(steps.map((s) => s.runId))) {
      const runSteps = await this.deps.runs.steps(runId);
      const live = this.deps.queue.available()
        ? await this.deps.queue.inspect(runSteps.map((s) => ({ jobId: s.jobId, stage: s.stage }))).catch(() => new Map())
        : new Map();
      for (const step of runSteps) previous.set(step.jobId, live.get(step.jobId)?.state ?? stepState(step));
      // Cancelling a job cancels its run: the run ends, no reply is stored afterwards, the thread's next run goes.
      const open = runSteps.filter((s) => !['completed', 'failed', 'cancelled'].includes(s.status));
      if (await this.deps.engine.cancel(runId, reason, open.map((s) => ({ jobId: s.jobId, stage: s.stage })))) cancelledRuns.add(runId);
    }
    const results = jobIds.map((jobId) => {
      const step = byId.get(jobId);
      if (!step) return { jobId, cancelled: false, previousState: 'not_found' };
      const previousState = previous.get(jobId) ?? stepState(step);
      const wasOpen = !['completed', 'failed', 'cancelled'].includes(step.status);
      return { jobId, cancelled: cancelledRuns.has(step.runId) && wasOpen, previousState };
    });
    return {
      results,
      summary: {
        requested: jobIds.length,
        cancelled: results.filter((r) => r.cancelled).length,
        notFound: results.filter((r) => r.previousState === 'not_found').length,
      },
    };
  }

  async queueStats(): Promise<{ queues: Record<string, QueueCounts>; totals: QueueCounts; available: boolean }> {
    if (!this.deps.queue.available()) throw new AppError('queue_unavailable', 503, 'The queue system is unreachable; messages are processed in-process');
    const queues = await this.deps.queue.counts();
    const totals: QueueCounts = { waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0, paused: 0, prioritized: 0 };
    for (const counts of Object.values(queues)) {
      for (const key of Object.keys(totals) as Array<keyof QueueCounts>) totals[key] += counts[key];
    }
    return { queues, totals, available: true };
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

function stepState(step: Step): string {
  return step.status === 'pending' ? 'pending' : step.status;
}

function describeJob(step: Step, live: { state: JobState; progress?: unknown; processedOn?: number } | undefined): JobStatus {
  // PostgreSQL is the truth for finished steps; the queue knows more about unfinished ones.
  const finished = ['completed', 'failed', 'cancelled'].includes(step.status);
  const status = finished ? step.status : (live?.state ?? (step.status === 'retrying' ? 'retrying' : step.status === 'active' ? 'active' : 'pending'));
  return {
    jobId: step.jobId,
    queue: step.queue,
    status,
    attempts: step.attempts,
    maxAttempts: step.maxAttempts,
    ...(live?.progress !== undefined && live.progress !== 0 ? { progress: live.progress } : {}),
    ...(step.status === 'completed' ? { result: step.result } : {}),
    ...(step.error ? { error: step.error } : {}),
    createdAt: step.createdAt.toISOString(),
    ...(step.startedAt ? { processedAt: step.startedAt.toISOString() } : {}),
    ...(step.finishedAt ? { finishedAt: step.finishedAt.toISOString() } : {}),
  };
}

function summarise(statuses: string[]): Record<string, number> {
  const summary: Record<string, number> = { total: statuses.length };
  for (const status of statuses) summary[status] = (summary[status] ?? 0) + 1;
  return summary;
}

