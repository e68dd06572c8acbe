/** A pipeline step that failed for good (its attempts used up, or a permanent error). */
export interface FailedJobRecord {
  jobId: string;
  batchId: string;
  threadId: string;
  stage: string;
  queue: string;
  error: { code: string; message: string } | null;
  attempts: number;
  maxAttempts: number;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** What the failed-jobs route needs (implemented over PostgreSQL in src/adapters/postgres/repositories/failed-jobs.repository.ts). */
export interface FailedJobsStore {
  /** The organization's most recently failed steps, newest first. */
  recent(orgId: string, limit: number): Promise<FailedJobRecord[]>;
}
