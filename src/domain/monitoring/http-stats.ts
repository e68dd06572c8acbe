import { MinuteRing } from './minute-ring.js';

/**
 * Request statistics of this process, per route, for the JSON metrics endpoint: a ring of 1,440
 * per-minute buckets (24 h). Each route-minute keeps a count, the errors and a log-scale latency
 * histogram, so any window of whole minutes can be merged and its percentiles estimated (within
 * one bucket's width, about 10 %). Routes are Fastify route patterns, so the number of series is
 * bounded by the routes the app registers.
 */

/** Bucket i holds latencies in (BOUNDS[i-1], BOUNDS[i]] ms; geometric from 0.1 ms to ~2 min, ×1.2 each. */
const GROWTH = 1.2;
const FIRST_BOUND_MS = 0.1;
const BUCKETS = Math.ceil(Math.log(120_000 / FIRST_BOUND_MS) / Math.log(GROWTH)) + 1;
export const LATENCY_BOUNDS_MS: readonly number[] = Array.from({ length: BUCKETS }, (_, i) => FIRST_BOUND_MS * GROWTH ** i);

export class LatencyHistogram {
  /** One count per bound, plus the overflow bucket at the end. */
  readonly counts = new Uint32Array(BUCKETS + 1);
  total = 0;
  sumMs = 0;
  maxMs = 0;

  record(ms: number): void {
    const value = Number.isFinite(ms) && ms > 0 ? ms : 0;
    const index = value <= FIRST_BOUND_MS ? 0 : Math.min(BUCKETS, Math.ceil(Math.log(value / FIRST_BOUND_MS) / Math.log(GROWTH)));
    this.counts[index]! += 1;
    this.total += 1;
    this.sumMs += value;
    if (value > this.maxMs) this.maxMs = value;
  }

  merge(other: LatencyHistogram): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i]! += other.counts[i]!;
    this.total += other.total;
    this.sumMs += other.sumMs;
    if (other.maxMs > this.maxMs) this.maxMs = other.maxMs;
  }

  /** The q-quantile (0 < q ≤ 1), interpolated inside its bucket and never above the largest value seen. */
  percentile(q: number): number | null {
    if (this.total === 0) return null;
    const rank = q * this.total;
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      const count = this.counts[i]!;
      if (count === 0) continue;
      if (seen + count >= rank) {
        const lower = i === 0 ? 0 : LATENCY_BOUNDS_MS[i - 1]!;
        const upper = i < BUCKETS ? LATENCY_BOUNDS_MS[i]! : this.maxMs;
        const estimate = lower + ((rank - seen) / count) * (upper - lower);
        return Math.min(estimate, this.maxMs);
      }
      seen += count;
    }
    return this.maxMs;
  }
}

interface RouteMinute {
  requests: number;
  /** 5xx answers. */
  serverErrors: number;
  /** 4xx answers. */
  clientErrors: number;
  latency: LatencyHistogram;
}

export interface RouteSummary {
  /** `METHOD /route/:pattern`. */
  route: string;
  method: string;
  path: string;
  requests: number;
  requestsPerMinute: number;
  latencyMs: { p50: number | null; p95: number | null; p99: number | null; mean: number | null; max: number | null };
  serverErrors: number;
  clientErrors: number;
  /** 5xx answers / requests. */
  errorRate: number;
}

export interface HttpSummary {
  /** The minutes actually covered: the range asked for, or less when this process is younger. */
  windowSeconds: number;
  totals: Omit<RouteSummary, 'route' | 'method' | 'path'>;
  routes: RouteSummary[];
}

export const HTTP_STATS_MINUTES = 24 * 60;

export function createHttpStats(options: { now?: () => number; minutes?: number } = {}) {
  const now = options.now ?? Date.now;
  const startedAt = now();
  const ring = new MinuteRing<Map<string, RouteMinute>>(options.minutes ?? HTTP_STATS_MINUTES, () => new Map(), now);

  return {
    record(method: string, route: string, statusCode: number, durationMs: number): void {
      const key = `${method} ${route}`;
      const minute = ring.current();
      let entry = minute.get(key);
      if (!entry) {
        entry = { requests: 0, serverErrors: 0, clientErrors: 0, latency: new LatencyHistogram() };
        minute.set(key, entry);
      }
      entry.requests += 1;
      if (statusCode >= 500) entry.serverErrors += 1;
      else if (statusCode >= 400) entry.clientErrors += 1;
      entry.latency.record(durationMs);
    },

    summary(rangeMinutes: number): HttpSummary {
      const merged = new Map<string, RouteMinute>();
      const all: RouteMinute = { requests: 0, serverErrors: 0, clientErrors: 0, latency: new LatencyHistogram() };
      for (const { bucket } of ring.last(rangeMinutes)) {
        for (const [key, entry] of bucket) {
          let target = merged.get(key);
          if (!target) {
            target = { requests: 0, serverErrors: 0, clientErrors: 0, latency: new LatencyHistogram() };
            merged.set(key, target);
          }
          for (const into of [target, all]) {
            into.requests += entry.requests;
            into.serverErrors += entry.serverErrors;
            into.clientErrors += entry.clientErrors;
            into.latency.merge(entry.latency);
          }
        }
      }
      const windowMs = Math.max(1_000, Math.min(rangeMinutes * 60_000, now() - startedAt));
      const minutes = windowMs / 60_000;
      const routes = [...merged]
        .map(([key, entry]) => {
          const space = key.indexOf(' ');
          return { route: key, method: key.slice(0, space), path: key.slice(space + 1), ...figures(entry, minutes) };
        })
        .sort((a, b) => b.requests - a.requests || a.route.localeCompare(b.route));
      return { windowSeconds: Math.round(windowMs / 1000), totals: figures(all, minutes), routes };
    },
  };
}

export type HttpStats = ReturnType<typeof createHttpStats>;

function figures(entry: RouteMinute, minutes: number): Omit<RouteSummary, 'route' | 'method' | 'path'> {
  const { latency } = entry;
  return {
    requests: entry.requests,
    requestsPerMinute: round(entry.requests / minutes, 3),
    latencyMs: {
      p50: roundOrNull(latency.percentile(0.5)),
      p95: roundOrNull(latency.percentile(0.95)),
      p99: roundOrNull(latency.percentile(0.99)),
      mean: latency.total ? round(latency.sumMs / latency.total, 2) : null,
      max: latency.total ? round(latency.maxMs, 2) : null,
    },
    serverErrors: entry.serverErrors,
    clientErrors: entry.clientErrors,
    errorRate: entry.requests ? round(entry.serverErrors / entry.requests, 4) : 0,
  };
}

export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function roundOrNull(value: number | null): number | null {
  return value === null ? null : round(value, 2);
}
