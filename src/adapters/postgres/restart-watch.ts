import type pg from 'pg';

export interface RestartWatchLogger {
  warn(details: object, message: string): void;
}

/**
 * Notices that the PostgreSQL server restarted — its `pg_postmaster_start_time()` changed — and
 * calls `onRestart` once per restart, as soon as it answers again. A restart after a crash loses
 * the step completions committed without waiting for their WAL flush; the caller re-drives the
 * runs that were open (the reconciler's immediate pass) instead of waiting for its sweep.
 * One read every `intervalMs`; a read that gets no answer is not waited for by `stop`.
 */
export function watchPostgresRestarts(pool: pg.Pool, options: { intervalMs: number; onRestart(): Promise<unknown>; logger: RestartWatchLogger }) {
  let startedAt: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let busy = false;

  async function check(): Promise<boolean> {
    const { rows } = await pool.query<{ started: string }>('select pg_postmaster_start_time()::text as started');
    const started = rows[0]?.started;
    if (!started) return false;
    const restarted = startedAt !== undefined && started !== startedAt;
    if (restarted) {
      options.logger.warn({}, 'PostgreSQL restarted: re-driving the runs that were open');
      // Remembered only once handled: a pass that fails is tried again at the next look.
      await options.onRestart();
    }
    startedAt = started;
    return restarted;
  }

  return {
    /** One look now; true when it found a restart (and `onRestart` has run). */
    check,
    start(): void {
      if (timer || options.intervalMs <= 0) return;
      const tick = () => {
        if (busy) return;
        busy = true;
        check()
          .catch(() => undefined)
          .finally(() => (busy = false));
      };
      tick();
      timer = setInterval(tick, options.intervalMs);
      timer.unref();
    },
    stop(): void {
      clearInterval(timer);
      timer = undefined;
    },
  };
}
