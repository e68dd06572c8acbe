import { StageError } from '../domain/errors.js';
import { safeErrorMessage } from '../logger.js';
import { backoffDelay } from './dag.js';
import type { StepError } from './run.js';
import type { StageDefinitionData } from './stage.js';

/** What is stored and shown of an error: a stable code and a message, never a stack. */
export function describeError(error: unknown): StepError {
  // A stage's message may quote what a provider answered: it goes through the same detectors as logs.
  if (error instanceof StageError) return { code: error.code, message: safeErrorMessage(error).slice(0, 500) };
  if (error instanceof Error && (error.name === 'AbortError' || error.name === 'APIUserAbortError')) {
    return { code: 'aborted', message: 'the job was aborted' };
  }
  // Shown in batch results and failed-job lists: a database error's values (the user's text) stay out.
  return { code: 'internal_error', message: safeErrorMessage(error).slice(0, 500) };
}

export function isPermanent(error: unknown): boolean {
  return error instanceof StageError && error.permanent;
}

/** What to do after a failed attempt. */
export type ErrorDecision =
  | { kind: 'final' }
  /** Again after `delayMs` (the backoff, or the provider's Retry-After when longer). */
  | { kind: 'retry'; delayMs: number }
  /** A provider's 429: the organization's jobs of the stage wait `ms` (the others go on), and the attempt is not counted. */
  | { kind: 'pause'; ms: number };

/**
 * The retry policy, once for both drivers. `attemptsMade`: attempts before this one. A driver
 * that can put jobs back (the queues) holds the organization's jobs of the stage for a 429's
 * Retry-After instead of using an attempt (see OrgPauses in fairness.ts); one that cannot
 * (in-process) waits at least the Retry-After before its next attempt.
 */
export function decideAfterError(
  definition: Pick<StageDefinitionData, 'attempts' | 'backoff'>,
  error: unknown,
  attemptsMade: number,
  options: { canPause: boolean },
): ErrorDecision {
  const retryAfterMs = error instanceof StageError ? (error.retryAfterMs ?? 0) : 0;
  const rateLimited = error instanceof StageError && error.code === 'rate_limited' && retryAfterMs > 0;
  if (isPermanent(error)) return { kind: 'final' };
  if (options.canPause && rateLimited) return { kind: 'pause', ms: retryAfterMs };
  if (attemptsMade + 1 >= definition.attempts) return { kind: 'final' };
  return { kind: 'retry', delayMs: Math.max(retryAfterMs, backoffDelay(definition, attemptsMade + 1)) };
}
