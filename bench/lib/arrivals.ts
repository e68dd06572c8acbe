/**
 * Arrival schedules for open-loop load: independent users whose messages arrive as Poisson
 * processes (exponential gaps), drawn from a seeded generator so that two runs offer the same load.
 */

/** mulberry32: a small, fast 32-bit generator; good enough for load schedules, not for secrets. */
export function createRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export interface Arrival {
  /** ms from the start of the load. */
  at: number;
  user: number;
  /** The user's n-th message. */
  seq: number;
}

/**
 * `users` independent users, each sending on average `ratePerUser` messages per second for
 * `durationMs`; every user draws exponential inter-arrival times from its own stream of one seeded
 * generator. The merged schedule is a Poisson process of rate users × ratePerUser, so it has the
 * clumps and gaps real traffic has (unlike evenly spaced or lock-step sends).
 */
export function poissonSchedule(options: { users: number; ratePerUser: number; durationMs: number; seed: number }): Arrival[] {
  const { users, ratePerUser, durationMs, seed } = options;
  const meanGapMs = 1000 / ratePerUser;
  const random = createRandom(seed);
  const schedule: Arrival[] = [];
  for (let user = 0; user < users; user++) {
    let at = -Math.log(1 - random()) * meanGapMs;
    for (let seq = 0; at < durationMs; seq++) {
      schedule.push({ at, user, seq });
      at += -Math.log(1 - random()) * meanGapMs;
    }
  }
  return schedule.sort((a, b) => a.at - b.at);
}

/** Largest number of arrivals inside any window of `windowMs` (how bursty a schedule is). */
export function peakInWindow(schedule: readonly Arrival[], windowMs: number): number {
  let peak = 0;
  let from = 0;
  for (let to = 0; to < schedule.length; to++) {
    while (schedule[to]!.at - schedule[from]!.at >= windowMs) from++;
    peak = Math.max(peak, to - from + 1);
  }
  return peak;
}
