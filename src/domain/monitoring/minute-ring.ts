/**
 * A bounded ring of per-minute buckets: slot `minute % size` holds the bucket of that minute, and
 * a slot is recycled when a later minute lands on it. Memory is bounded by `size` buckets whatever
 * the traffic; nothing older than `size` minutes is kept.
 */
export class MinuteRing<T> {
  private readonly slots: Array<{ minute: number; bucket: T } | undefined>;

  constructor(
    readonly size: number,
    private readonly create: () => T,
    private readonly now: () => number = Date.now,
  ) {
    if (!Number.isInteger(size) || size < 1) throw new Error('MinuteRing size must be a positive integer');
    this.slots = new Array(size);
  }

  /** The bucket of the current minute, made (or recycled) on first use. */
  current(): T {
    const minute = Math.floor(this.now() / 60_000);
    const index = minute % this.size;
    const slot = this.slots[index];
    if (slot && slot.minute === minute) return slot.bucket;
    const fresh = { minute, bucket: this.create() };
    this.slots[index] = fresh;
    return fresh.bucket;
  }

  /** The buckets of the last `minutes` minutes (the current one included), oldest first. */
  last(minutes: number): Array<{ minute: number; bucket: T }> {
    const nowMinute = Math.floor(this.now() / 60_000);
    const span = Math.min(Math.max(1, Math.floor(minutes)), this.size);
    const out: Array<{ minute: number; bucket: T }> = [];
    for (let minute = nowMinute - span + 1; minute <= nowMinute; minute++) {
      const slot = this.slots[minute % this.size];
      if (slot && slot.minute === minute) out.push(slot);
    }
    return out;
  }
}
