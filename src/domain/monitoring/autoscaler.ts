/**
 * Auto-scaling of one queue's worker concurrency: a small controller fed with periodic samples of
 * the queue (backlog, active jobs, recent processing time and throughput) that decides the next
 * concurrency of this process's worker. Pure: no queue library, no clock of its own (every sample
 * carries its time), so it is tested with synthetic samples.
 *
 * The rules, in order:
 * - the current value outside [min, max] (max already lowered to the provider cap) is clamped at once;
 * - a paused or rate-limited queue holds: more slots would only wait for the limiter;
 * - scale UP when the backlog would take longer than `targetDrainMs` to drain at the current
 *   throughput (or, while there is no timing yet, when every slot is busy and jobs wait), seen in
 *   `upAfterSamples` consecutive samples and not within `upCooldownMs` of the last change. The new
 *   value is what drains the backlog within the target, at most `maxUpFactor` times the current;
 * - scale DOWN one step (a quarter of the current value, at least 1) when the queue has been idle —
 *   nothing waiting and at most `idleUtilization` of the slots busy — for `idleMs`, and again every
 *   `downCooldownMs` while it stays idle;
 * - anything in between holds. Up and down need different conditions (a backlog that outlasts the
 *   target vs. an idle queue for a while), so the value does not flap around one threshold.
 *
 * With several worker processes on one queue, `fleetConcurrency` (the sum over processes) makes
 * each process scale its share only: the backlog is shared, so each process sizes itself as its
 * fraction of what the whole fleet needs.
 */

export interface AutoscalerOptions {
  /** Lowest concurrency the controller sets. */
  min: number;
  /** Highest concurrency the controller sets (before `cap`). */
  max: number;
  /** A provider's hard limit (rate limiter, global concurrency); the effective max is min(max, cap). */
  cap?: { value: number; reason: string };
  /** The backlog should drain within this time at the current throughput. */
  targetDrainMs: number;
  /** No scale-up within this time after the last change. */
  upCooldownMs: number;
  /** No scale-down within this time after the last change. */
  downCooldownMs: number;
  /** The queue must be idle this long before the first step down. */
  idleMs: number;
  /** Consecutive samples showing pressure before scaling up (default 2). */
  upAfterSamples?: number;
  /** A single scale-up at most multiplies the concurrency by this (default 2). */
  maxUpFactor?: number;
  /** Idle means nothing waiting and at most this fraction of the slots busy (default 0.5). */
  idleUtilization?: number;
}

export interface QueueSample {
  /** When the sample was taken (ms since the epoch). */
  at: number;
  /** Jobs ready to run: waiting, prioritized and delayed jobs that are due. */
  waiting: number;
  /** Jobs being processed, by every worker of the queue. */
  active: number;
  /** This worker's current concurrency. */
  concurrency: number;
  /** The sum of the concurrency of every worker process of the queue (this one included). */
  fleetConcurrency?: number;
  /** Recent processing times of this worker's jobs; absent when none finished recently. */
  processing?: { meanMs: number; p95Ms: number; count: number };
  /** Jobs this worker finished per second recently; absent when unknown. */
  throughputPerSec?: number;
  /** The queue is paused. */
  paused?: boolean;
  /** The queue's rate limiter (or a provider's Retry-After) holds it now. */
  rateLimited?: boolean;
}

export interface ScalingDecision {
  at: number;
  from: number;
  to: number;
  reason: string;
}

const DEFAULTS = { upAfterSamples: 2, maxUpFactor: 2, idleUtilization: 0.5 };

export class ConcurrencyController {
  readonly min: number;
  /** The effective max: the configured max lowered to the provider cap. */
  readonly max: number;
  private readonly options: Required<Omit<AutoscalerOptions, 'cap'>> & Pick<AutoscalerOptions, 'cap'>;
  private lastChangeAt = Number.NEGATIVE_INFINITY;
  private pressureSamples = 0;
  private idleSince: number | undefined;

  constructor(options: AutoscalerOptions) {
    this.options = { ...DEFAULTS, ...options };
    const cap = options.cap ? Math.max(1, Math.floor(options.cap.value)) : Number.POSITIVE_INFINITY;
    this.max = Math.max(1, Math.min(Math.floor(options.max), cap));
    this.min = Math.max(1, Math.min(Math.floor(options.min), this.max));
  }

  /** The next concurrency for this sample; `to === from` when it holds. */
  decide(sample: QueueSample): ScalingDecision {
    const { options } = this;
    const now = sample.at;
    const from = sample.concurrency;
    const hold = (reason: string): ScalingDecision => ({ at: now, from, to: from, reason });
    const change = (to: number, reason: string): ScalingDecision => {
      this.lastChangeAt = now;
      this.pressureSamples = 0;
      this.idleSince = undefined;
      return { at: now, from, to, reason };
    };

    if (from > this.max) return change(this.max, `above max ${this.max}${this.capNote()}`);
    if (from < this.min) return change(this.min, `below min ${this.min}`);

    if (sample.paused) {
      this.pressureSamples = 0;
      this.idleSince = undefined;
      return hold('queue paused');
    }

    const fleet = Math.max(from, sample.fleetConcurrency ?? from);
    const share = from / fleet;
    const waiting = Math.max(0, sample.waiting);
    const active = Math.max(0, sample.active);
    const drainMs = estimateDrainMs(waiting, fleet, share, sample);
    const saturated = waiting > 0 && active >= fleet;
    const pressure = drainMs !== undefined ? drainMs > options.targetDrainMs : saturated;
    const idle = waiting === 0 && active <= fleet * options.idleUtilization;

    if (pressure) {
      this.idleSince = undefined;
      if (sample.rateLimited) {
        this.pressureSamples = 0;
        return hold('rate limited: more slots would only wait for the limiter');
      }
      this.pressureSamples += 1;
      const why =
        drainMs !== undefined
          ? `backlog ${waiting} would take ${formatMs(drainMs)} to drain (target ${formatMs(options.targetDrainMs)})${timing(sample)}`
          : `all ${fleet} slots busy and ${waiting} waiting`;
      if (from >= this.max) return hold(`${why}; at max ${this.max}${this.capNote()}`);
      if (this.pressureSamples < options.upAfterSamples) return hold(`${why}; confirming (${this.pressureSamples}/${options.upAfterSamples})`);
      if (now - this.lastChangeAt < options.upCooldownMs) return hold(`${why}; cooling down`);

      // Throughput grows about linearly with the slots: the fleet needs fleet * drain / target
      // slots to drain within the target; this process takes its share of them.
      const wanted =
        drainMs !== undefined ? Math.ceil(fleet * (drainMs / options.targetDrainMs) * share) : from + Math.ceil(waiting * share);
      const to = Math.min(this.max, Math.max(from + 1, Math.min(wanted, Math.floor(from * options.maxUpFactor))));
      return change(to, why + (to === this.max && wanted > this.max ? `; limited by max ${this.max}${this.capNote()}` : ''));
    }

    this.pressureSamples = 0;
    if (!idle) {
      this.idleSince = undefined;
      return hold(waiting > 0 ? `backlog ${waiting} drains within ${formatMs(options.targetDrainMs)}` : 'steady');
    }
    this.idleSince ??= now;
    if (from <= this.min) return hold('idle at min');
    const idleFor = now - this.idleSince;
    if (idleFor < options.idleMs) return hold(`idle for ${formatMs(idleFor)}`);
    if (now - this.lastChangeAt < options.downCooldownMs) return hold('idle; cooling down');
    const to = Math.max(this.min, from - Math.max(1, Math.floor(from / 4)));
    const idleSince = this.idleSince;
    const decision = change(to, `idle for ${formatMs(now - idleSince)} (${active} active of ${fleet}, none waiting)`);
    // Still idle: the next step waits for the cool-down, not for another idle period.
    this.idleSince = idleSince;
    return decision;
  }

  private capNote(): string {
    const cap = this.options.cap;
    return cap && cap.value <= this.options.max ? ` (${cap.reason})` : '';
  }
}

function estimateDrainMs(waiting: number, fleet: number, share: number, sample: QueueSample): number | undefined {
  if (waiting === 0) return 0;
  if (sample.throughputPerSec !== undefined && sample.throughputPerSec > 0) {
    // This process's throughput scaled up to the fleet's.
    return (waiting / (sample.throughputPerSec / share)) * 1000;
  }
  if (sample.processing && sample.processing.count > 0 && sample.processing.meanMs > 0) {
    return (waiting * sample.processing.meanMs) / fleet;
  }
  return undefined;
}

function timing(sample: QueueSample): string {
  const parts: string[] = [];
  if (sample.throughputPerSec !== undefined) parts.push(`${round(sample.throughputPerSec)}/s`);
  if (sample.processing) parts.push(`p95 ${formatMs(sample.processing.p95Ms)}`);
  return parts.length ? ` at ${parts.join(', ')}` : '';
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '∞';
  return ms >= 10_000 ? `${Math.round(ms / 1000)} s` : ms >= 1000 ? `${round(ms / 1000)} s` : `${Math.round(ms)} ms`;
}

/** Processing-time statistics over a list of durations (ms). */
export function summarizeDurations(durations: readonly number[]): { meanMs: number; p95Ms: number; count: number } | undefined {
  if (durations.length === 0) return undefined;
  const sorted = [...durations].sort((a, b) => a - b);
  const mean = sorted.reduce((sum, d) => sum + d, 0) / sorted.length;
  const p95 = sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.95) - 1)]!;
  return { meanMs: mean, p95Ms: p95, count: sorted.length };
}
