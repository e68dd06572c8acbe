import type { Run, Step, StepError } from '../../engine/run.js';

export interface BatchError {
  stage: string | 'run';
  jobId?: string;
  code: string;
  message: string;
  attempts?: number;
}

export interface BatchDocument {
  batchId: string;
  status: Run['status'];
  results: Record<string, unknown>;
  completedJobs: number;
  totalJobs: number;
  jobs: Record<string, { id: string; queue: string; status: Step<string>['status']; attempts: number; maxAttempts: number }>;
  errors?: BatchError[];
  createdAt: string;
  finishedAt: string | null;
}

/** The batch results document, built from PostgreSQL alone, whichever driver ran the stages. */
export function toBatchDocument(run: Run, steps: Step<string>[]): BatchDocument {
  const results: Record<string, unknown> = {};
  const jobs: BatchDocument['jobs'] = {};
  const errors: BatchError[] = [];
  let completed = 0;
  for (const step of steps) {
    jobs[step.stage] = { id: step.jobId, queue: step.queue, status: step.status, attempts: step.attempts, maxAttempts: step.maxAttempts };
    if (step.status === 'completed') {
      completed++;
      results[step.stage] = step.result;
    } else if (step.status === 'failed' && step.error) {
      errors.push(stepError(step, step.error));
    }
  }
  if (run.error && run.status === 'failed' && errors.length === 0) errors.push({ stage: 'run', ...run.error });
  return {
    batchId: run.id,
    status: run.status,
    results,
    completedJobs: completed,
    totalJobs: steps.length,
    jobs,
    ...(errors.length > 0 ? { errors } : {}),
    createdAt: run.createdAt.toISOString(),
    finishedAt: run.finishedAt ? run.finishedAt.toISOString() : null,
  };
}

function stepError(step: Step<string>, error: StepError): BatchError {
  return { stage: step.stage, jobId: step.jobId, code: error.code, message: error.message, attempts: step.attempts };
}
