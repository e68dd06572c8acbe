import pg from 'pg';
import type { Logger } from 'pino';
import type { RunFinishedFeed } from '../../domain/chat/run-waits.js';

/** The channel the runs repository notifies, with the run's id as payload, when a run finishes. */
export const RUN_FINISHED_CHANNEL = 'honeyjar_run_finished';

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;

/**
 * One LISTEN connection per process for the runs that finish, in this process or any other.
 * It connects on the first subscription and reconnects when the connection drops; every time it
 * (re)connects it wakes all subscribers, since a finish may have happened while nobody listened.
 */
export function createRunFinishedListener(url: string, logger: Logger): RunFinishedFeed & { close(): Promise<void> } {
  const subscribers = new Map<string, Set<() => void>>();
  let client: pg.Client | undefined;
  let connecting: Promise<void> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let failures = 0;
  let closed = false;

  function wake(listeners: Iterable<() => void>): void {
    for (const listener of [...listeners]) listener();
  }

  function wakeAll(): void {
    for (const listeners of [...subscribers.values()]) wake(listeners);
  }

  function connect(): Promise<void> {
    connecting ??= (async () => {
      const next = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000, application_name: 'honeyjar-listen' });
      next.on('notification', (message) => {
        const listeners = message.payload ? subscribers.get(message.payload) : undefined;
        if (listeners) wake(listeners);
      });
      next.on('error', () => dropped(next));
      next.on('end', () => dropped(next));
      try {
        await next.connect();
        await next.query(`listen ${RUN_FINISHED_CHANNEL}`);
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
      if (!client && !connecting && !retryTimer && !closed) void connect();
      const listeners = subscribers.get(runId) ?? new Set();
      listeners.add(listener);
      subscribers.set(runId, listeners);
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0 && subscribers.get(runId) === listeners) subscribers.delete(runId);
      };
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
