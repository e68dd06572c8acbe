import pg from 'pg';
import type { Logger } from 'pino';

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;
const CONNECT_TIMEOUT_MS = 5_000;

export interface PostgresListenerOptions {
  /** Connection string of its one connection. */
  url: string;
  /** How the connection shows in pg_stat_activity (a connection string's own `application_name` wins). */
  applicationName: string;
  channels: readonly string[];
  onNotification(message: pg.Notification): void;
  /**
   * Called each time the connection is listening again, the first time included: whatever was
   * notified while nobody listened is lost, so this is where a caller reads what it may have missed.
   */
  onListening?(): void;
  /** Names the listener in its log lines, which carry no connection string and no payload. */
  name: string;
  logger: Logger;
  /** TCP keep-alive on the connection, so that a peer that vanished is noticed. */
  keepAlive?: boolean;
}

export interface PostgresListener {
  /** Opens the connection unless it is open, opening, or waiting to retry. */
  start(): void;
  /**
   * Resolves once the connection listens, opening it at once when it is not (even while waiting
   * to retry); rejects when that attempt fails, a retry being scheduled then.
   */
  listening(): Promise<void>;
  /** Ends the connection and any retry; nothing is delivered afterwards. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * One LISTEN connection of its own (not from a pool: a pooled connection's LISTEN would go with
 * it). When it fails or drops it is opened again after a pause that doubles from 100 ms up to 5 s,
 * and back at 100 ms once it listens. The first failure in a row and every drop are logged, by
 * message only.
 */
export function createPostgresListener(options: PostgresListenerOptions): PostgresListener {
  const { logger, name } = options;
  let client: pg.Client | undefined;
  let connecting: Promise<void> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let failures = 0;
  let closed = false;

  function connect(): Promise<void> {
    if (closed) return Promise.resolve();
    if (client) return Promise.resolve();
    connecting ??= (async () => {
      const next = new pg.Client({
        connectionString: options.url,
        connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
        application_name: options.applicationName,
        ...(options.keepAlive ? { keepAlive: true } : {}),
      });
      next.on('notification', (message) => {
        if (!closed) options.onNotification(message);
      });
      next.on('error', () => dropped(next));
      next.on('end', () => dropped(next));
      try {
        await next.connect();
        for (const channel of options.channels) await next.query(`listen ${pg.escapeIdentifier(channel)}`);
      } catch (err) {
        next.removeAllListeners('end');
        await next.end().catch(() => undefined);
        throw err;
      }
      if (closed) {
        next.removeAllListeners('end');
        await next.end().catch(() => undefined);
        return;
      }
      client = next;
      failures = 0;
      options.onListening?.();
    })()
      .catch((err: unknown) => {
        failures++;
        if (failures === 1) logger.warn({ err: { message: (err as Error)?.message } }, `${name}: could not listen; retrying`);
        scheduleReconnect();
        throw err;
      })
      .finally(() => {
        connecting = undefined;
      });
    return connecting;
  }

  function dropped(which: pg.Client): void {
    if (client !== which) return;
    client = undefined;
    which.removeAllListeners('end');
    which.end().catch(() => undefined);
    if (!closed) {
      logger.warn(`${name}: connection lost; reconnecting`);
      scheduleReconnect();
    }
  }

  function scheduleReconnect(): void {
    if (closed || retryTimer) return;
    const pause = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(failures, 6));
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      connect().catch(() => undefined);
    }, pause);
    retryTimer.unref();
  }

  return {
    start() {
      if (!client && !connecting && !retryTimer) connect().catch(() => undefined);
    },
    listening() {
      if (retryTimer) {
        clearTimeout(retryTimer);
        retryTimer = undefined;
      }
      return connect();
    },
    async close() {
      closed = true;
      clearTimeout(retryTimer);
      retryTimer = undefined;
      await connecting?.catch(() => undefined);
      const current = client;
      client = undefined;
      if (current) {
        current.removeAllListeners('end');
        await current.end().catch(() => undefined);
      }
    },
  };
}
