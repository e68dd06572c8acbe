/**
 * Fairness across organizations, once for every transport: which of the waiting jobs of a stage
 * goes next, and how a provider's 429 for one organization holds back only that organization.
 *
 * The order is start-time fair queuing with the wall clock as virtual time (a "virtual clock"):
 * each (stage, organization) lane keeps the finish tag of its last job; a new job starts at
 * `max(now, last finish)` and finishes `jobCostMs / weight` later. A queue that takes the lowest
 * start tag first serves an organization sending no faster than one job per `jobCostMs / weight`
 * in arrival order, and interleaves organizations with a backlog in proportion to their weights:
 * a flood from one only pushes its own later jobs back, and another organization's new job is
 * tagged "now", ahead of the flood's remainder. Nothing is held back when the others are idle
 * (the queue is still work-conserving), so the flood's own throughput is unchanged.
 *
 * Virtual time is the wall clock while the queue keeps up. When it lags (a stage served more slowly
 * than one job per `jobCostMs`, e.g. behind a provider's rate limit), the floodings' tags fall
 * behind the clock and a newcomer tagged "now" would queue behind all of them; so the adapter
 * passes the start tag of the queue's next job (its head) when that is behind now, and a newcomer
 * starts there — next, whatever the lag.
 *
 * The state is this process's: every producer keeps its own lanes, and needs no shared counter
 * (any transport, any number of processes). A lane fed by several processes advances more slowly
 * in each of them, so with P producers a flooding organization is pushed back by 1/P as much;
 * organizations flooding through the same producers still interleave by weight.
 */

export interface FairClockSettings {
  /** How far each job pushes its organization's next job of the same stage back, at weight 1. */
  jobCostMs: number;
  /** The furthest ahead of now a start tag goes: beyond it, a flood's jobs share one tag (first in, first out). */
  maxLeadMs: number;
  /** An organization's share (1 = the default share); a weight of 2 is served twice as often under contention. */
  weightOf(orgId: string): number;
  now?: () => number;
}

export interface FairClock {
  /**
   * The start tag (ms, on the wall clock) of the next job of `orgId` in `lane` (a stage).
   * `head`: the start tag of the lane's queue's next job, if known; used when it is behind now.
   */
  tag(lane: string, orgId: string, head?: number): number;
  /** Lanes this process remembers (those whose last finish is still ahead of now, and a few more). */
  size(): number;
}

const PRUNE_ABOVE = 10_000;

export function createFairClock(settings: FairClockSettings): FairClock {
  const now = settings.now ?? Date.now;
  const finishes = new Map<string, number>();

  function prune(at: number): void {
    // A lane whose last job finished before now tags like a lane never seen: forget it.
    for (const [key, finish] of finishes) if (finish <= at) finishes.delete(key);
  }

  return {
    tag(lane, orgId, head) {
      const at = now();
      const virtual = head !== undefined && head < at ? head : at;
      const key = `${lane}\u0000${orgId}`;
      const weight = Math.max(settings.weightOf(orgId), Number.MIN_VALUE);
      const start = Math.min(Math.max(virtual, finishes.get(key) ?? virtual), at + settings.maxLeadMs);
      finishes.set(key, start + settings.jobCostMs / weight);
      if (finishes.size > PRUNE_ABOVE) prune(at);
      return start;
    },
    size: () => finishes.size,
  };
}

/**
 * Start tags as the bounded integer priorities a queue takes lowest first (BullMQ: 1 to
 * 2,097,151). Tags are counted in `resolutionMs` units from a base that moves on by a quarter of
 * the range (an epoch) as time passes; a job's priority is its tag minus the base of the epoch it
 * was given in. Jobs still waiting when the epoch changes are rebased (`rebase`) by whoever adds
 * jobs next, so old and new priorities compare as their tags do. A priority is between one and
 * three quarters of the range for a tag at most `maxLeadUnits` ahead of now, so nothing is clamped.
 */
export interface FairPriorities {
  /** The priority of a start tag given now, and the epoch it is relative to. */
  priorityOf(tagMs: number): { priority: number; epoch: number };
  /** The epoch now. */
  epoch(): number;
  /** The start tag (ms, to the resolution) a priority of epoch `epoch` stands for. */
  tagOf(priority: number, epoch: number): number;
  /** A priority given in epoch `from`, expressed in epoch `to` (never below 1: older jobs only move forward). */
  rebase(priority: number, from: number, to: number): number;
  /** The largest lead (ms) whose priorities stay in range. */
  maxLeadMs: number;
}

export function createFairPriorities(options: { resolutionMs: number; maxPriority: number; now?: () => number }): FairPriorities {
  const now = options.now ?? Date.now;
  const { resolutionMs, maxPriority } = options;
  // A quarter of the range per epoch: tags at now fall in [span, 2·span), leads add up to 2·span − 1.
  const span = Math.floor((maxPriority + 1) / 4);
  const epochOf = (ms: number) => Math.floor(Math.floor(ms / resolutionMs) / span);
  return {
    priorityOf(tagMs) {
      const epoch = epochOf(now());
      const base = (epoch - 1) * span;
      const priority = Math.floor(tagMs / resolutionMs) - base;
      return { priority: Math.min(Math.max(priority, 1), maxPriority), epoch };
    },
    epoch: () => epochOf(now()),
    tagOf: (priority, epoch) => (priority + (epoch - 1) * span) * resolutionMs,
    rebase(priority, from, to) {
      return Math.max(1, priority - span * (to - from));
    },
    maxLeadMs: (2 * span - 1) * resolutionMs,
  };
}

/**
 * A provider's 429 for one organization: that organization's jobs of the stage wait out the
 * Retry-After in this process, and every other organization's go on. (Each process learns it
 * from its own 429; a job taken meanwhile elsewhere meets the 429 itself and waits the same.)
 */
export interface OrgPauses {
  pause(lane: string, orgId: string, ms: number): void;
  /** How long the organization's jobs of the lane still wait here (0: not paused). */
  remainingMs(lane: string, orgId: string): number;
}

export function createOrgPauses(now: () => number = Date.now): OrgPauses {
  const until = new Map<string, number>();
  return {
    pause(lane, orgId, ms) {
      const key = `${lane}\u0000${orgId}`;
      const at = now();
      until.set(key, Math.max(until.get(key) ?? 0, at + ms));
      if (until.size > PRUNE_ABOVE) for (const [k, end] of until) if (end <= at) until.delete(k);
    },
    remainingMs(lane, orgId) {
      const key = `${lane}\u0000${orgId}`;
      const end = until.get(key);
      if (end === undefined) return 0;
      const left = end - now();
      if (left <= 0) until.delete(key);
      return Math.max(0, left);
    },
  };
}
