import { AppError } from '../errors.js';

/*
 * Backpressure on the accept path: how many runs are ahead of a new message, when it is likely to
 * be answered, and whether it is accepted at all. Everything is judged from a snapshot of the open
 * runs that the whole system shares (PostgreSQL, through `BacklogSource`), taken at most once per
 * `refreshMs` by each process and never awaited by an accept once the first one is in: an accept
 * costs no query of its own.
 */

/** What the source reads in one round trip. */
export interface BacklogReading {
  /** Open runs (accepted, not finished) per organization, across every process. */
  openByOrg: ReadonlyMap<string, number>;
  /**
   * Runs that finished (reply stored, or failed) in (`since` − overlap, `until`]: a commit can
   * become visible a moment after the finish time it carries, so each reading also counts the
   * end of the previous one's interval again, and `recent` says how much of it that reading saw.
   */
  finished: number;
  /** Of those, the ones in (`until` − overlap, `until`]: what the next reading counts again. */
  recent: number;
  /** The shortest accept-to-finish time among them, in ms; null when none finished. */
  fastestMs: number | null;
  /** The upper bound of the counted interval (the database's clock): the next reading's `since`. */
  until: Date;
  /**
   * The runs that finished in (`since`, `until`] and carried the model's estimate of their wait
   * (`Placement.modelWaitMs`, stored with the run), and the mean of ln(actual ÷ estimated wait)
   * over them: what the next estimates are corrected by. Absent: the source keeps no estimates.
   */
  calibration?: { runs: number; meanLogRatio: number | null };
}

export interface BacklogSource {
  /** `since` undefined: the first reading, which counts no finished runs. */
  read(since: Date | undefined): Promise<BacklogReading>;
  /** The open runs accepted before the message at `seq`, now: of its organization and of all. */
  aheadOf?(orgId: string, seq: number): Promise<QueuePosition>;
}

export interface BacklogLimits {
  /** Open runs of one organization beyond which its accepts answer 429 `backlog_full`. */
  maxPerOrg: number;
  /** Open runs of the whole system beyond which every accept answers 503 `overloaded`. */
  maxTotal: number;
}

/**
 * An exponentially weighted rate of finished runs (runs per second), updated only from intervals
 * in which the system stayed busy — the runs open at the start of the interval were not all
 * finished at its end. An idle system finishes what arrives, so its rate says nothing about how
 * fast a backlog drains; only busy intervals measure that. The weight of an interval grows with
 * its length: `halfLifeMs` of observation weigh half of the estimate.
 */
export function createDrainRate(halfLifeMs: number) {
  let rate: number | null = null;
  return {
    observe(finished: number, intervalMs: number): void {
      if (intervalMs <= 0) return;
      const instant = (finished * 1000) / intervalMs;
      const weight = 1 - 2 ** (-intervalMs / halfLifeMs);
      rate = rate === null ? instant : rate + weight * (instant - rate);
    },
    /** Runs per second, null before any busy interval was seen. */
    perSecond(): number | null {
      return rate;
    },
  };
}

/**
 * The same weighting for a duration: the time a run takes when nothing is ahead of it, from the
 * fastest run of each interval in which the system ran dry (no wait behind other runs).
 */
export function createServiceTime(halfLifeMs: number, priorMs: number) {
  let value = priorMs;
  let measured = false;
  return {
    observe(fastestMs: number, intervalMs: number): void {
      const weight = measured ? 1 - 2 ** (-Math.max(intervalMs, 1) / halfLifeMs) : 1;
      value += weight * (fastestMs - value);
      measured = true;
    },
    ms(): number {
      return value;
    },
    measured(): boolean {
      return measured;
    },
  };
}

export interface QueuePosition {
  /** Open runs of the caller's organization accepted before this message. */
  organization: number;
  /** Open runs of every organization accepted before this message. */
  overall: number;
}

/**
 * The estimate's model, as measured. A message waits for the runs served before it, then takes its
 * own service time:
 *
 *   model = service + ahead ÷ rate
 *
 * `ahead` is what the queues take before it. Without fairness every stage's queue is first in,
 * first out over all organizations: `ahead` is `overall`. With fairness (start-time fair queuing
 * by weight, src/engine/fairness.ts) a message's organization is served in turn with the others
 * that have open runs, in proportion to their weights: while its organization's `n` runs ahead
 * drain, an organization `j` with weight `w_j` (of `w` for the caller's) is served up to
 * `n · w_j ÷ w` of its `n_j` open runs, and fewer if it has fewer. So
 *
 *   ahead = n + Σ_j min(n_j, n · w_j ÷ w)
 *
 * which is `n ÷ share` while every organization stays busy (share: the caller's weight over the
 * weights of the organizations with open runs) and `overall` at most. A newcomer organization
 * (`n` = 0) goes next, as the fair order puts it. Runs the others accept after this message are not
 * counted: under fairness they may still go first, which the correction below learns as a bias.
 *
 * The measured `rate` is the drain rate of the system while it is busy, and it is only what it was
 * when measured: a flood of accepts slows the drain down (the same machines accept and process),
 * and the backlog a flood leaves drains faster once it stops. Such systematic errors are measured
 * after the fact: each run keeps the model's estimate, and the runs finishing in each reading give
 * ln(actual ÷ model) (see `BacklogReading.calibration`). The **correction** is the exponentially
 * weighted geometric mean of that ratio, with a half-life counted in runs (each reading weighs as
 * many runs as it saw finish), and the estimate given is
 *
 *   estimate = model × correction
 *
 * (service time alone when nothing is ahead; the model alone while no drain rate is measured — with
 * the provisional rate of the stretch, or one run per service time if that is faster, a guess that
 * is neither stored nor learned from). The correction learns only from runs that finished: a
 * change of regime after an estimate was given (the flood it was accepted in stops, or another
 * organization starts sending) is not foreseen, and shows up in estimates given after those runs
 * finished. Early in a flood unlike the last one, nothing of it has finished yet to learn from.
 */
export function estimateWaitMs(ahead: number, rate: number | null, serviceMs: number): number {
  if (ahead <= 0) return Math.round(serviceMs);
  const drainMs = rate && rate > 0 ? (ahead * 1000) / rate : ahead * serviceMs;
  return Math.round(serviceMs + drainMs);
}

/**
 * The runs served before a message under fairness, from the open runs per organization of a
 * reading: the organizations sorted by `n_j ÷ w_j` with running sums, so that each accept costs a
 * binary search. `aheadOf(org, n)`: n of its own runs ahead (its count in the reading plus what
 * this process accepted since).
 */
export function createFairShares(openByOrg: ReadonlyMap<string, number>, weightOf: (orgId: string) => number) {
  const weight = (orgId: string) => Math.max(weightOf(orgId), Number.MIN_VALUE);
  const orgs = [...openByOrg].filter(([, n]) => n > 0).map(([orgId, n]) => ({ n, w: weight(orgId), level: n / weight(orgId) }));
  orgs.sort((a, b) => a.level - b.level);
  // below[i]: Σ n over orgs[0..i); aboveW[i]: Σ w over orgs[i..].
  const below = [0];
  for (const org of orgs) below.push(below[below.length - 1]! + org.n);
  const aboveW = new Array<number>(orgs.length + 1).fill(0);
  for (let i = orgs.length - 1; i >= 0; i--) aboveW[i] = aboveW[i + 1]! + orgs[i]!.w;
  return {
    aheadOf(orgId: string, own: number): number {
      if (own <= 0) return 0;
      const level = own / weight(orgId);
      // The first organization whose backlog outlasts the caller's: it is served `level · w_j`.
      let lo = 0;
      let hi = orgs.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (orgs[mid]!.level <= level) lo = mid + 1;
        else hi = mid;
      }
      const everyone = below[lo]! + level * aboveW[lo]!;
      // The caller's own entry counted min(n_reading, own) = n_reading; its `own` replaces it.
      const inReading = openByOrg.get(orgId) ?? 0;
      return Math.round(everyone - Math.min(inReading, own) + own);
    },
  };
}

/**
 * The measured correction: the exponentially weighted mean of ln(actual ÷ model) over finished
 * runs, `halfLifeRuns` of them weighing half. Each reading's mean is bounded to a factor of
 * 20 either way, so that one odd interval cannot turn every estimate around.
 */
export function createCalibration(halfLifeRuns: number) {
  const bound = Math.log(20);
  let logFactor = 0;
  let runs = 0;
  return {
    observe(count: number, meanLogRatio: number | null): void {
      if (count <= 0 || meanLogRatio === null || !Number.isFinite(meanLogRatio)) return;
      const weight = 1 - 2 ** (-count / halfLifeRuns);
      logFactor += weight * (Math.min(bound, Math.max(-bound, meanLogRatio)) - logFactor);
      runs += count;
    },
    /** What the model's estimate is multiplied by: 1 until a run finished with an estimate. */
    factor(): number {
      return Math.exp(logFactor);
    },
    /** Finished runs learned from, in this process. */
    runs(): number {
      return runs;
    },
  };
}

/** Where a message stands and what it is told: the corrected estimate, and the model's (stored with the run). */
export interface Estimate {
  position: QueuePosition;
  estimatedWaitMs: number;
  /** The model's estimate, learned from when the run finishes; null when nothing is learned from it (nothing ahead, no rate measured). */
  modelWaitMs: number | null;
}

/** Retry-After bounds, in seconds. */
export const RETRY_AFTER_MIN_S = 1;
export const RETRY_AFTER_MAX_S = 300;
/** Without a measured drain rate. */
export const RETRY_AFTER_UNKNOWN_S = 5;

export type Admission =
  | { kind: 'accepted' }
  | { kind: 'shed'; scope: 'organization' | 'overall'; open: number; limit: number; retryAfterSeconds: number };

/**
 * Whether a new message is accepted: the system's backlog first (503: nobody's message would be
 * answered in time), then the organization's (429: this tenant has enough queued). Retry-After is
 * the time the runs over the limit take to drain at the measured rate, within 1 s and 5 min.
 */
export function judgeAdmission(position: QueuePosition, limits: BacklogLimits, rate: number | null): Admission {
  if (position.overall >= limits.maxTotal) {
    return { kind: 'shed', scope: 'overall', open: position.overall, limit: limits.maxTotal, retryAfterSeconds: retryAfter(position.overall - limits.maxTotal + 1, rate) };
  }
  if (position.organization >= limits.maxPerOrg) {
    return {
      kind: 'shed',
      scope: 'organization',
      open: position.organization,
      limit: limits.maxPerOrg,
      retryAfterSeconds: retryAfter(position.organization - limits.maxPerOrg + 1, rate),
    };
  }
  return { kind: 'accepted' };
}

export function retryAfter(excess: number, rate: number | null): number {
  if (!rate || rate <= 0) return RETRY_AFTER_UNKNOWN_S;
  return Math.min(RETRY_AFTER_MAX_S, Math.max(RETRY_AFTER_MIN_S, Math.ceil(excess / rate)));
}

export class BacklogFullError extends AppError {
  constructor(
    readonly scope: 'organization' | 'overall',
    readonly retryAfterSeconds: number,
    limit: number,
  ) {
    super(
      scope === 'overall' ? 'overloaded' : 'backlog_full',
      scope === 'overall' ? 503 : 429,
      scope === 'overall'
        ? `The server has ${limit} or more messages waiting; try again later`
        : `This organization has ${limit} or more messages waiting; try again later`,
    );
    this.name = 'BacklogFullError';
  }
}

export interface BacklogStatus {
  /** A message was refused within `recentMs`, or a limit is reached at the last count. */
  shedding: boolean;
  /** Refused accepts in this process since it started, by scope. */
  shed: { organization: number; overall: number };
  lastShedAt: string | null;
  open: number;
  organizationsAtLimit: number;
  limits: BacklogLimits;
  drainRatePerSecond: number | null;
  serviceTimeMs: number;
  /** What the model's estimates are multiplied by (1 until measured), and the finished runs it was learned from in this process. */
  estimateCorrection: number;
  calibratedRuns: number;
  /** Age of the count the last accept was judged by; null before the first. */
  countAgeMs: number | null;
}

export interface BacklogOptions {
  source: BacklogSource;
  limits: BacklogLimits;
  /** Least time between two readings of the source by this process. */
  refreshMs: number;
  halfLifeMs: number;
  /** Service time assumed until one is measured. */
  priorServiceMs: number;
  /**
   * Finished runs whose ratio of actual to estimated wait weighs half of the correction (default
   * 1,000). The correction is for what the model gets wrong systematically, which changes slowly
   * (the drain rate follows changes of speed): it should average over more than one flood, or it
   * follows each flood's phases a flood late.
   */
  calibrationHalfLifeRuns?: number;
  /** The queues' order: fair by organization weight (FAIRNESS=on), or first in, first out (absent or disabled). */
  fairness?: { enabled: boolean; weightOf(orgId: string): number };
  /** A refusal this recent still counts as shedding in the health report. */
  recentMs?: number;
  now?: () => number;
  onError?: (error: unknown) => void;
}

/**
 * The backlog as this process sees it: the last reading plus the runs this process accepted since
 * it was taken (so that a burst between two readings is counted). Other processes' accepts since
 * the reading are not seen until the next one, so the limits may be exceeded by what the other API
 * processes accept within `refreshMs`.
 */
export function createBacklog(options: BacklogOptions) {
  const now = options.now ?? Date.now;
  const recentMs = options.recentMs ?? 60_000;
  const rate = createDrainRate(options.halfLifeMs);
  const service = createServiceTime(options.halfLifeMs, options.priorServiceMs);
  const calibration = createCalibration(options.calibrationHalfLifeRuns ?? 1_000);
  const fair = options.fairness?.enabled ? options.fairness : undefined;
  let reading:
    | { openByOrg: ReadonlyMap<string, number>; total: number; until: Date; recent: number; takenAt: number; shares?: ReturnType<typeof createFairShares> }
    | undefined;
  /**
   * When the current busy stretch began (database clock), and whether it started delivering. A
   * backlog that just formed finishes nothing until its first runs are through the pipeline: the
   * intervals before something finished at least a service time after the stretch began understate
   * how fast it drains and are not part of the drain rate. They give a provisional rate, used only
   * while no drain rate was ever measured, and not learned from (estimates made with it are not
   * stored for the correction).
   */
  let busy: { since: number; delivering: boolean; provisional: ReturnType<typeof createDrainRate> } | undefined;
  /** Accepted by this process since the reading in use was started. */
  let localByOrg = new Map<string, number>();
  let localTotal = 0;
  let inFlight: Promise<void> | undefined;
  const shed = { organization: 0, overall: 0 };
  let lastShedAt: number | undefined;

  function refresh(): Promise<void> {
    inFlight ??= (async () => {
      const startedAt = now();
      // Accepts from here on may or may not be in the reading: counted locally until the next one.
      const pendingByOrg = new Map<string, number>();
      const previous = reading;
      const carry = { byOrg: localByOrg, total: localTotal };
      localByOrg = pendingByOrg;
      localTotal = 0;
      try {
        const next = await options.source.read(previous?.until);
        let total = 0;
        for (const count of next.openByOrg.values()) total += count;
        if (previous) {
          const intervalMs = next.until.getTime() - previous.until.getTime();
          // What the previous reading counted of the overlap is not counted twice.
          const finished = Math.max(0, next.finished - previous.recent);
          // Busy: the runs open at the start were not all finished by the end.
          if (previous.total > finished) {
            busy ??= { since: previous.until.getTime(), delivering: false, provisional: createDrainRate(options.halfLifeMs) };
            if (!busy.delivering && finished > 0 && previous.until.getTime() - busy.since >= service.ms()) busy.delivering = true;
            if (busy.delivering) rate.observe(finished, intervalMs);
            else busy.provisional.observe(finished, intervalMs);
          } else {
            busy = undefined;
            if (next.fastestMs !== null) service.observe(next.fastestMs, intervalMs);
          }
        }
        if (next.calibration) calibration.observe(next.calibration.runs, next.calibration.meanLogRatio);
        reading = {
          openByOrg: next.openByOrg,
          total,
          until: next.until,
          recent: next.recent,
          takenAt: startedAt,
          ...(fair ? { shares: createFairShares(next.openByOrg, fair.weightOf) } : {}),
        };
      } catch (error) {
        // The old reading stays in use, with what this process accepted meanwhile.
        for (const [org, n] of carry.byOrg) localByOrg.set(org, (localByOrg.get(org) ?? 0) + n);
        localTotal += carry.total;
        options.onError?.(error);
      }
    })().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  }

  function position(orgId: string): QueuePosition {
    return {
      organization: (reading?.openByOrg.get(orgId) ?? 0) + (localByOrg.get(orgId) ?? 0),
      overall: (reading?.total ?? 0) + localTotal,
    };
  }

  /**
   * The model's estimate and the corrected one for a message at `at` (see estimateWaitMs). Under
   * fairness the others' runs are those of the last reading (what the others accepted through this
   * process since is left out), and never more than `overall`.
   */
  function estimate(orgId: string, at: QueuePosition): Estimate {
    const shares = fair ? reading?.shares : undefined;
    const ahead = fair ? Math.min(at.overall, shares ? shares.aheadOf(orgId, at.organization) : at.organization) : at.overall;
    const measured = rate.perSecond();
    // Provisional: no slower than one run per service time, the guess without any rate.
    const provisional = Math.max(busy?.provisional.perSecond() ?? 0, 1000 / Math.max(service.ms(), 1));
    const model = estimateWaitMs(ahead, measured ?? provisional, service.ms());
    if (ahead <= 0 || !measured || measured <= 0) return { position: at, estimatedWaitMs: model, modelWaitMs: null };
    return { position: at, estimatedWaitMs: Math.round(model * calibration.factor()), modelWaitMs: model };
  }

  return {
    /**
     * The caller's place and its estimate, or a BacklogFullError. Waits for the source only when
     * nothing was read yet; otherwise a stale reading starts the next one in the background.
     */
    async admit(orgId: string): Promise<Estimate> {
      if (!reading) await refresh();
      else if (now() - reading.takenAt >= options.refreshMs) void refresh();
      const at = position(orgId);
      const admission = judgeAdmission(at, options.limits, rate.perSecond() ?? busy?.provisional.perSecond() ?? null);
      if (admission.kind === 'shed') {
        shed[admission.scope]++;
        lastShedAt = now();
        throw new BacklogFullError(admission.scope, admission.retryAfterSeconds, admission.limit);
      }
      return estimate(orgId, at);
    },

    /**
     * Where an accepted, still open message stands now (a replayed accept): the open runs accepted
     * before it, counted exactly, and the wait from now. Without an exact count, this process's.
     */
    async current(orgId: string, seq: number): Promise<Estimate> {
      const at = options.source.aheadOf ? await options.source.aheadOf(orgId, seq) : position(orgId);
      return estimate(orgId, at);
    },

    /** A run was written by this process: counted until the next reading includes it. */
    accepted(orgId: string): void {
      localByOrg.set(orgId, (localByOrg.get(orgId) ?? 0) + 1);
      localTotal++;
    },

    status(): BacklogStatus {
      let atLimit = 0;
      for (const org of new Set([...(reading?.openByOrg.keys() ?? []), ...localByOrg.keys()])) {
        if (position(org).organization >= options.limits.maxPerOrg) atLimit++;
      }
      const open = (reading?.total ?? 0) + localTotal;
      const recent = lastShedAt !== undefined && now() - lastShedAt <= recentMs;
      return {
        shedding: recent || atLimit > 0 || open >= options.limits.maxTotal,
        shed: { ...shed },
        lastShedAt: lastShedAt === undefined ? null : new Date(lastShedAt).toISOString(),
        open,
        organizationsAtLimit: atLimit,
        limits: { ...options.limits },
        drainRatePerSecond: rate.perSecond() === null ? null : Math.round(rate.perSecond()! * 10) / 10,
        serviceTimeMs: Math.round(service.ms()),
        estimateCorrection: Math.round(calibration.factor() * 1000) / 1000,
        calibratedRuns: calibration.runs(),
        countAgeMs: reading ? now() - reading.takenAt : null,
      };
    },

    /** Reads the source now (tests, and the health check when nothing was read yet). */
    refresh,
  };
}

export type Backlog = ReturnType<typeof createBacklog>;
