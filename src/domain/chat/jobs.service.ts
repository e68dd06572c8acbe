import { AppError } from '../errors.js';
import type { StageName } from '../../engine/catalog.js';
import type { Engine } from '../../engine/engine.js';
import type { JobState, JobTransport, QueueCounts } from '../../engine/ports/job-transport.js';
import type { RunStore } from '../../engine/ports/run-store.js';
import type { Step } from '../../engine/run.js';
import type { Actor } from './chat.service.js';

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

export interface JobsServiceDeps {
  runs: RunStore<StageName>;
  queue: JobTransport;
  engine: Engine<StageName>;
}

/**
 * The jobs of runs, as clients name them (`<batchId>.<stage>`): their status (PostgreSQL for
 * finished steps, the queues for the others), cancelling them (which cancels their runs), and
 * the queues' counts.
 */
export class JobsService {
  constructor(private readonly deps: JobsServiceDeps) {}

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

