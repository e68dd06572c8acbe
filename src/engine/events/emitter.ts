import type { RunEventBody, RunEvents } from '../ports/run-events.js';

export interface EventEmitterOptions {
  /** The least time between two appends of this process; the first event after a pause goes at once. */
  flushMs?: number;
  onError?: (error: unknown) => void;
}

/** A step attempt's reply text as it is produced. */
export interface TokenSink {
  token(text: string): void;
  /** Whether any text was given. */
  readonly streamed: boolean;
}

/**
 * Where the engine's events go: buffered, and appended at most every `flushMs` (each run's events
 * of that period in one append; consecutive tokens of a step merged into one event), with the
 * appends of every run of the process sharing one statement (the store's coalescer). `flush`
 * resolves once everything emitted before it is stored — the engine waits for it before it
 * moves a run on, so that a run's events are in causal order across processes. The events of a
 * step's start and completion are not emitted here: the run store writes them in the step
 * statements themselves; `take` hands a run's buffered events to the reply statement.
 */
export function createEventEmitter(port: RunEvents | undefined, options: EventEmitterOptions = {}) {
  const flushMs = options.flushMs ?? 50;
  let buffers = new Map<string, RunEventBody[]>();
  let chain: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  let lastSentAt = 0;

  /** `defer`: no append of its own; it goes with the next one (a local step's start, with its completion a moment later). */
  function emit(runId: string, event: RunEventBody, options: { defer?: boolean } = {}): void {
    if (!port) return;
    const list = buffers.get(runId);
    if (!list) buffers.set(runId, [event]);
    else {
      const last = list[list.length - 1];
      if (event.type === 'token' && last?.type === 'token' && last.stage === event.stage && last.attempt === event.attempt) {
        list[list.length - 1] = { ...last, text: last.text + event.text };
      } else list.push(event);
    }
    if (!timer && !options.defer) timer = setTimeout(send, Math.max(0, lastSentAt + flushMs - Date.now()));
  }

  function send(): Promise<void> {
    clearTimeout(timer);
    timer = undefined;
    if (!port || buffers.size === 0) return chain;
    const batch = buffers;
    buffers = new Map();
    lastSentAt = Date.now();
    chain = chain.then(async () => {
      await Promise.all(
        [...batch].map(([runId, events]) =>
          port.append(runId, events).catch((error: unknown) => {
            // Live progress only: the run goes on, and what it stores is unaffected.
            options.onError?.(error);
          }),
        ),
      );
    });
    return chain;
  }

  /**
   * Takes a run's buffered events out of the emitter, for the caller to write in a statement of
   * its own: answers them once every append sent before is stored, so that they follow it.
   */
  function take(runId: string): Promise<RunEventBody[]> {
    const taken = buffers.get(runId) ?? [];
    buffers.delete(runId);
    return chain.then(() => taken);
  }

  return {
    /** Whether events are recorded at all (an event log was given). */
    enabled: port !== undefined,
    emit,
    flush: send,
    take,
    /** A sink for a step attempt's text: a retry's first text is preceded by `reset`. */
    tokens(runId: string, stage: string, attempt: number): TokenSink {
      let streamed = false;
      return {
        token(text: string) {
          if (text.length === 0) return;
          if (!streamed && attempt > 1) emit(runId, { type: 'reset', stage, attempt });
          streamed = true;
          emit(runId, { type: 'token', stage, attempt, text });
        },
        get streamed() {
          return streamed;
        },
      };
    },
    announce(runId: string): void {
      port?.announce(runId).catch((error: unknown) => options.onError?.(error));
    },
  };
}

export type EventEmitter = ReturnType<typeof createEventEmitter>;
