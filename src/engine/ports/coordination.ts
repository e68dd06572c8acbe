/**
 * What the processes of one system share besides the run store and the job transport: short-lived
 * values (dashboard sessions, a claimed notice), windowed counters (request limits), timestamped
 * entries (worker heartbeats, stalled jobs), per-process fields (the autoscaler's fleet) and
 * signals (cancelling an active job wherever it runs). Implemented over Redis
 * (src/adapters/redis/coordination.ts) and over PostgreSQL (src/adapters/postgres/coordination.ts);
 * the same one as the queue transport, so that the processes of a system never split.
 *
 * Keys are plain strings chosen by the callers (each prefixed with the system's `QUEUE_PREFIX`).
 * Every expiry is in milliseconds from now; an expired entry is never read back.
 */
export interface Coordination {
  readonly kind: 'redis' | 'postgres';
  /** Whether a call would be answered now (connected); callers that must not wait check it first. */
  available(): boolean;
  /** Whether it is connected, waiting up to `timeoutMs` while a first connection is still being made; at once when it is down. */
  ready(timeoutMs: number): Promise<boolean>;
  /** Resolves when the store answers, rejects otherwise. */
  ping(): Promise<void>;
  /** The server's version, for the detailed health report. */
  version(): Promise<string | null>;

  getValue(key: string): Promise<string | undefined>;
  /** Sets a value with an expiry; with `onlyIfAbsent`, only when no live value is there (answers whether it was set). */
  setValue(key: string, value: string, ttlMs: number, options?: { onlyIfAbsent?: boolean }): Promise<boolean>;
  /** Deletes a value; with `ifEquals`, only when it still holds that value. */
  deleteValue(key: string, options?: { ifEquals?: string }): Promise<void>;
  /** Moves a live value's expiry. */
  expireValue(key: string, ttlMs: number): Promise<void>;

  /** Adds to counters (created at 0, expiring `ttlMs` after the add); answers each counter's new total, in order. */
  addToCounters(adds: ReadonlyArray<{ key: string; by: number; ttlMs: number }>): Promise<number[]>;

  /** Records `member` at `at` under `key`, forgets the key's entries older than `forgetBefore`, and keeps the key for `ttlMs`. */
  mark(key: string, member: string, at: number, options: { forgetBefore: number; ttlMs: number }): Promise<void>;
  /** Per key, how many entries are at or after `since`. */
  countMarks(keys: readonly string[], since: number): Promise<number[]>;
  /** Per key, the newest entries first (at most `limit`). */
  newestMarks(keys: readonly string[], limit: number): Promise<Array<Array<{ member: string; at: number }>>>;

  /** Sets one field of a key's fields and keeps the key for `ttlMs`. */
  setField(key: string, field: string, value: string, ttlMs: number): Promise<void>;
  getFields(key: string): Promise<Record<string, string>>;
  deleteFields(key: string, fields: readonly string[]): Promise<void>;

  /** Sends a message to every process subscribed to `channel` (this one included). */
  publish(channel: string, message: string): Promise<void>;
  /** Calls `onMessage` for each message on `channel` from now on; resolves when subscribed. Answers an unsubscribe. */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>>;

  close(): Promise<void>;
}
