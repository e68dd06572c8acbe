/**
 * A small load generator on node:http with keep-alive agents: one request helper, a closed loop
 * (N connections each sending back to back) and an open loop (requests fired at scheduled times
 * whether or not earlier ones have answered). Loopback only.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Arrival } from './arrivals.js';
import { sleep } from './stats.js';

export interface HttpResponse {
  status: number;
  body: string;
}

export interface RequestSpec {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  /** A JSON string; sent with content-type application/json and content-length. */
  body?: string;
  timeoutMs?: number;
}

export function createAgent(maxSockets: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, keepAliveMsecs: 1_000 });
}

export function httpRequest(agent: http.Agent, port: number, spec: RequestSpec): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...spec.headers };
    let payload: Buffer | undefined;
    if (spec.body !== undefined) {
      payload = Buffer.from(spec.body);
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    const req = http.request(
      { host: '127.0.0.1', port, method: spec.method, path: spec.path, headers, agent, timeout: spec.timeoutMs ?? 30_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Tallies outcomes: status codes and network error codes, with a few sample bodies of failures. */
export class Outcomes {
  readonly byStatus: Record<string, number> = {};
  readonly samples: string[] = [];
  errors = 0;
  ok = 0;

  record(expected: number, result: HttpResponse | Error): boolean {
    const key = result instanceof Error ? `error:${(result as { code?: string }).code ?? result.message}` : String(result.status);
    this.byStatus[key] = (this.byStatus[key] ?? 0) + 1;
    const good = !(result instanceof Error) && result.status === expected;
    if (good) this.ok++;
    else {
      this.errors++;
      if (this.samples.length < 5) this.samples.push(result instanceof Error ? `${key}: ${result.message}` : `${key}: ${result.body.slice(0, 300)}`);
    }
    return good;
  }

  toJSON() {
    return { ok: this.ok, errors: this.errors, byStatus: this.byStatus, errorSamples: this.samples };
  }
}

export interface ClosedLoopResult {
  /** Good responses that finished inside the measurement window. */
  completed: number;
  reqPerSec: number;
  /** Latencies (ms) of those responses. */
  latencies: number[];
  measured: Outcomes;
  warmup: Outcomes;
  /** Everything answered after the measurement window ended (in-flight at the end). */
  tail: Outcomes;
  measureMs: number;
}

/**
 * `connections` workers each send back to back for `warmupMs + measureMs`. Only responses that finish
 * inside the measurement window count. `send(worker, seq)` performs one request and returns its outcome.
 */
export async function closedLoop(options: {
  connections: number;
  warmupMs: number;
  measureMs: number;
  expectedStatus: number;
  send: (worker: number, seq: number) => Promise<HttpResponse>;
  onGood?: (response: HttpResponse, startedAt: number, endedAt: number, worker: number) => void;
  /** Checked before each send: stop early (e.g. a cap on the number of messages). */
  stopWhen?: () => boolean;
}): Promise<ClosedLoopResult> {
  const { connections, warmupMs, measureMs, expectedStatus, send } = options;
  const warmup = new Outcomes();
  const measured = new Outcomes();
  const tail = new Outcomes();
  const latencies: number[] = [];
  const start = performance.now();
  const measureFrom = start + warmupMs;
  const end = measureFrom + measureMs;
  let completed = 0;

  const worker = async (index: number): Promise<void> => {
    let seq = 0;
    while (performance.now() < end && !options.stopWhen?.()) {
      const t0 = performance.now();
      let result: HttpResponse | Error;
      try {
        result = await send(index, seq++);
      } catch (error) {
        result = error as Error;
      }
      const t1 = performance.now();
      const bucket = t1 < measureFrom ? warmup : t1 <= end ? measured : tail;
      const good = bucket.record(expectedStatus, result);
      if (good && bucket === measured) {
        completed++;
        latencies.push(t1 - t0);
      }
      if (good) options.onGood?.(result as HttpResponse, t0, t1, index);
      // A refused connection would otherwise spin; back off briefly on network errors.
      if (result instanceof Error) await sleep(10);
    }
  };
  await Promise.all(Array.from({ length: connections }, (_, i) => worker(i)));
  return { completed, reqPerSec: completed / (measureMs / 1000), latencies, measured, warmup, tail, measureMs };
}

export interface OpenLoopResult {
  sent: number;
  /** From the scheduled send time to the response (includes any queueing in the client). */
  latenciesFromSchedule: number[];
  /** From the actual send to the response. */
  latencies: number[];
  /** How late the harness fired requests relative to the schedule (ms). */
  fireLag: number[];
  outcomes: Outcomes;
  durationMs: number;
}

/**
 * Fires each request of `schedule` at its time (ms from the start) whether or not earlier ones have
 * answered; the schedule says who sends (see arrivals.ts: Poisson or evenly spaced).
 */
export async function openLoop(options: {
  schedule: readonly Arrival[];
  durationMs: number;
  expectedStatus: number;
  send: (user: number, seq: number) => Promise<HttpResponse>;
  onGood?: (response: HttpResponse, user: number, seq: number, answeredAt: number) => void;
}): Promise<OpenLoopResult> {
  const { schedule, durationMs, expectedStatus, send } = options;
  const outcomes = new Outcomes();
  const latenciesFromSchedule: number[] = [];
  const latencies: number[] = [];
  const fireLag: number[] = [];
  const pending: Array<Promise<void>> = [];
  const start = performance.now() + 20;

  for (const item of schedule) {
    const due = start + item.at;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const t0 = performance.now();
    fireLag.push(t0 - due);
    pending.push(
      send(item.user, item.seq).then(
        (response) => {
          const t1 = performance.now();
          if (outcomes.record(expectedStatus, response)) {
            latenciesFromSchedule.push(t1 - due);
            latencies.push(t1 - t0);
            options.onGood?.(response, item.user, item.seq, t1);
          }
        },
        (error: Error) => {
          outcomes.record(expectedStatus, error);
        },
      ),
    );
  }
  await Promise.all(pending);
  return { sent: schedule.length, latenciesFromSchedule, latencies, fireLag, outcomes, durationMs };
}

/** Runs `work` over `items` with at most `concurrency` in flight. */
export async function forEachLimited<T>(items: readonly T[], concurrency: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const runner = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      await work(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, runner));
}
