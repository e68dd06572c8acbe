import type { Logger } from 'pino';
import type { RunFinishedFeed } from '../../domain/chat/run-waits.js';
import type { RunEndedBus } from '../../engine/ports/run-ended-bus.js';
import { createPostgresListener } from './listener.js';

/** The channel the runs repository notifies, with the run's id as payload, when a run finishes. */
export const RUN_FINISHED_CHANNEL = 'honeyjar_run_finished';
/** The channel notified, with the thread's id, when a run ends before an in-process run of its thread (run-store/steps.ts). */
export const RUN_ENDED_IN_THREAD_CHANNEL = 'honeyjar_run_ended_in_thread';

/**
 * One LISTEN connection per process (listener.ts) for the runs that finish, in this process or any other (by
 * run, for `wait`; by thread, for replies waiting for their turn: the engine's RunEndedBus).
 * It connects on the first subscription and reconnects when the connection drops; every time it
 * (re)connects it wakes all subscribers, since a finish may have happened while nobody listened.
 */
export function createRunFinishedListener(url: string, logger: Logger): RunFinishedFeed & RunEndedBus & { close(): Promise<void> } {
  const subscribers = new Map<string, Set<() => void>>();
  const threadSubscribers = new Map<string, Set<() => void>>();

  function wake(listeners: Iterable<() => void>): void {
    for (const listener of [...listeners]) listener();
  }

  function wakeAll(): void {
    for (const listeners of [...subscribers.values(), ...threadSubscribers.values()]) wake(listeners);
  }

  const connection = createPostgresListener({
    url,
    applicationName: 'honeyjar-listen',
    channels: [RUN_FINISHED_CHANNEL, RUN_ENDED_IN_THREAD_CHANNEL],
    onNotification(message) {
      const map = message.channel === RUN_ENDED_IN_THREAD_CHANNEL ? threadSubscribers : subscribers;
      const listeners = message.payload ? map.get(message.payload) : undefined;
      if (listeners) wake(listeners);
    },
    // A finish may have happened while nobody listened.
    onListening: wakeAll,
    name: 'run-finished listener',
    logger,
  });

  function subscribeTo(map: Map<string, Set<() => void>>, key: string, listener: () => void): () => void {
    connection.start();
    const listeners = map.get(key) ?? new Set();
    listeners.add(listener);
    map.set(key, listeners);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0 && map.get(key) === listeners) map.delete(key);
    };
  }

  return {
    subscribe(runId, listener) {
      return subscribeTo(subscribers, runId, listener);
    },
    onRunEnded(threadId, listener) {
      return subscribeTo(threadSubscribers, threadId, listener);
    },
    async close() {
      await connection.close();
      // Whoever still waits reads once more and answers with what it has.
      wakeAll();
    },
  };
}
