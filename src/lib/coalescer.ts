/**
 * Coalesces concurrent calls into batches without waiting for a timer: a call waits at most for
 * the batch in flight (or the current turn of the event loop), and the calls made meanwhile go
 * out together in the next batch. When idle, a call goes out at once, alone; under load, many
 * share one round trip. `execute` answers one settled result per item, in order, so that one
 * item's failure is only that item's.
 */
export function createCoalescer<I, O>(
  execute: (items: I[]) => Promise<Array<PromiseSettledResult<O>>>,
  options: { maxInFlight?: number; maxBatch?: number } = {},
): (item: I) => Promise<O> {
  const maxInFlight = options.maxInFlight ?? 1;
  const maxBatch = options.maxBatch ?? 500;
  let pending: Array<{ item: I; resolve: (value: O) => void; reject: (error: unknown) => void }> = [];
  let inFlight = 0;
  let scheduled = false;

  function schedule(): void {
    if (scheduled || inFlight >= maxInFlight || pending.length === 0) return;
    scheduled = true;
    // The rest of this turn's calls join the batch.
    setImmediate(flush);
  }

  function flush(): void {
    scheduled = false;
    if (inFlight >= maxInFlight || pending.length === 0) return;
    const batch = pending.slice(0, maxBatch);
    pending = pending.slice(batch.length);
    inFlight++;
    void execute(batch.map((entry) => entry.item))
      .then(
        (results) => {
          batch.forEach((entry, i) => {
            const result = results[i];
            if (result?.status === 'fulfilled') entry.resolve(result.value);
            else entry.reject(result ? result.reason : new Error('no result for a batched call'));
          });
        },
        (error: unknown) => {
          for (const entry of batch) entry.reject(error);
        },
      )
      .finally(() => {
        inFlight--;
        schedule();
      });
    schedule();
  }

  return (item: I) =>
    new Promise<O>((resolve, reject) => {
      pending.push({ item, resolve, reject });
      schedule();
    });
}
