import type { StepError } from '../run.js';
import type { FinalRunStatus, RunEventBody } from '../ports/run-events.js';

/** seq 1 of every run, written with the run itself. */
export const ACCEPTED_EVENT: RunEventBody = { type: 'run', status: 'accepted' };

/** A step's attempt began (the claim statement writes the same body, with the attempt it claimed). */
export function startedEvent(stage: string, attempt: number): RunEventBody {
  return { type: 'step', stage, status: 'started', attempt };
}

/** A step's result was stored. */
export function completedEvent(stage: string, result: unknown): RunEventBody {
  return { type: 'step', stage, status: 'completed', result };
}

/**
 * The last events of a run, written by the run store in the statement that ends it (so that a
 * run ends with them exactly once): the reply step's completion when there is one, the run's
 * final status, and `end`.
 */
export function closingEvents(status: FinalRunStatus, options: { error?: StepError | null; reply?: { stage: string; result: unknown } } = {}): RunEventBody[] {
  const events: RunEventBody[] = [];
  if (options.reply) events.push(completedEvent(options.reply.stage, options.reply.result));
  events.push(options.error ? { type: 'run', status, error: options.error } : { type: 'run', status });
  events.push({ type: 'end', status });
  return events;
}

/** Whether an event closes its run's stream. */
export function isClosing(event: { type: string }): boolean {
  return event.type === 'end';
}
