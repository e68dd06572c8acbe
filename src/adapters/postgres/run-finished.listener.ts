import pg from 'pg';
import type { Logger } from 'pino';
import type { RunFinishedFeed } from '../../domain/chat/run-waits.js';
import type { RunEndedBus } from '../../engine/ports/run-ended-bus.js';

/** The channel the runs repository notifies, with the run's id as payload, when a run finishes. */
export const RUN_FINISHED_CHANNEL = 'honeyjar_run_finished';
/** The channel notified, with the thread's id, when a run ends before an in-process run of its thread (run-store/steps.ts). */
export const RUN_ENDED_IN_THREAD_CHANNEL = 'honeyjar_run_ended_in_thread';

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;

/**
 * One LISTEN connection per process for the runs that finish, in this process or any other (by
 * run, for `wait`; by thread, for replies waiting for their turn: the engine's RunEndedBus).
 * It connects on the first subscription and reconnects when the connection drops; every time it
 * (re)connects it wakes all subscribers, since a finish may have happened while nobody listened.
 */
export function createRunFinishedListener(url: string, logger: Logger): RunFinishedFeed & RunEndedBus & { close(): Promise<void> } {
  const subscribers = new Map<string, Set<() => void>>();
  const threadSubscribers = new Map<string, Set<() => void>>();
  let client: pg.Client | undefined;
  let connecting: Promise<void> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let failures = 0;
  let closed = false;

  function wake(listeners: Iterable<() => void>): void {
    for (const listener of [...listeners]) listener();
  }

  function wakeAll(): void {
    for (const listeners of [...subscribers.values(), ...threadSubscribers.values()]) wake(listeners);
  }

  function subscribeTo(map: Map<string, Set<() => void>>, key: string, listener: () => void): () => void {
    if (!client && !connecting && !retryTimer && !closed) void connect();
    const listeners = map.get(key) ?? new Set();
    listeners.add(listener);
    map.set(key, listeners);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0 && map.get(key) === listeners) map.delete(key);
    };
  }

  function connect(): Promise<void> {
    connecting ??= (async () => {
      const next = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000, application_name: 'honeyjar-listen' });
      next.on('notification', (message) => {
        const map = message.channel === RUN_ENDED_IN_THREAD_CHANNEL ? threadSubscribers : subscribers;
        const listeners = message.payload ? map.get(message.payload) : undefined;
        if (listeners) wake(listeners);
      });
      next.on('error', () => dropped(next));
      next.on('end', () => dropped(next));
      try {
        await next.connect();
        await next.query(`listen ${RUN_FINISHED_CHANNEL}`);
        await next.query(`listen ${RUN_ENDED_IN_THREAD_CHANNEL}`);
      } catch (err) {
        next.removeAllListeners('end');
        await next.end().catch(() => undefined);
        throw err;
      }
      if (closed) {
        await next.end().catch(() => undefined);
        return;
      }
      client = next;
      failures = 0;
      wakeAll();
    })()
      .catch((err: unknown) => {
        failures++;
        if (failures === 1) logger.warn({ err: { message: (err as Error)?.message } }, 'run-finished listener: could not listen; retrying');
        scheduleReconnect();
      })
      .finally(() => (connecting = undefined));
    return connecting;
  }

  function dropped(which: pg.Client): void {
    if (client !== which) return;
    client = undefined;
    which.removeAllListeners('end');
    which.end().catch(() => undefined);
    if (!closed) {
      logger.warn('run-finished listener: connection lost; reconnecting');
      scheduleReconnect();
    }
  }

  function scheduleReconnect(): void {
    if (closed || retryTimer) return;
    const pause = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(failures, 6));
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void connect();
    }, pause);
    retryTimer.unref();
  }

  return {
    subscribe(runId, listener) {
      return subscribeTo(subscribers, runId, listener);
    },
    onRunEnded(threadId, listener) {
      return subscribeTo(threadSubscribers, threadId, listener);
    },
    async close() {
      closed = true;
      clearTimeout(retryTimer);
      await connecting;
      const current = client;
      client = undefined;
      if (current) {
        current.removeAllListeners('end');
        await current.end().catch(() => undefined);
      }
      // Whoever still waits reads once more and answers with what it has.
      wakeAll();
    },
  };
}
