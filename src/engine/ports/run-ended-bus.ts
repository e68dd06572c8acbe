/**
 * Tells the engine that a run of a thread has ended somewhere — in this process or another, by
 * whichever driver — so that a reply waiting for its turn in that thread looks again at once
 * instead of at its next poll. Implemented over PostgreSQL LISTEN/NOTIFY
 * (src/adapters/postgres/run-finished.listener.ts). A wake-up may also come when nothing ended
 * (the feed reconnected and may have missed one): the waiter reads again, that is all.
 */
export interface RunEndedBus {
  /** Calls `listener` for each such moment in the thread until the returned function is called. */
  onRunEnded(threadId: string, listener: () => void): () => void;
}
