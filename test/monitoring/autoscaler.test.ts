import { describe, expect, it } from 'vitest';
import { ConcurrencyController, summarizeDurations, type AutoscalerOptions, type QueueSample } from '../../src/domain/monitoring/autoscaler.js';
import { loadConfig, ConfigError } from '../../src/config.js';

const BASE: AutoscalerOptions = {
  min: 1,
  max: 20,
  targetDrainMs: 10_000,
  upCooldownMs: 10_000,
  downCooldownMs: 30_000,
  idleMs: 60_000,
};

/** A queue served by one worker, sampled every 5 s: jobs of `meanMs` each. */
function sample(at: number, concurrency: number, waiting: number, active: number, extra: Partial<QueueSample> = {}): QueueSample {
  return { at, concurrency, waiting, active, ...extra };
}
const timing = (meanMs: number, count = 20) => ({ processing: { meanMs, p95Ms: meanMs * 1.5, count } });

describe('ConcurrencyController', () => {
  it('scales up when the backlog would outlast the target drain time, after two samples, at most doubling', () => {
    const c = new ConcurrencyController(BASE);
    // 100 waiting at 5 slots of 1 s each: 20 s to drain, twice the target.
    const first = c.decide(sample(0, 5, 100, 5, timing(1_000)));
    expect(first).toMatchObject({ from: 5, to: 5 });
    expect(first.reason).toMatch(/would take 20 s to drain \(target 10 s\).*confirming \(1\/2\)/);
    const second = c.decide(sample(5_000, 5, 100, 5, timing(1_000)));
    expect(second).toMatchObject({ from: 5, to: 10 });
    expect(second.reason).toMatch(/^backlog 100 would take 20 s to drain/);
  });

  it('sizes the step from the drain time: just enough for the target, not the max', () => {
    const c = new ConcurrencyController(BASE);
    // 60 waiting, 4 slots, 1 s each: 15 s, 1.5x the target: 6 slots.
    c.decide(sample(0, 4, 60, 4, timing(1_000)));
    expect(c.decide(sample(5_000, 4, 60, 4, timing(1_000)))).toMatchObject({ from: 4, to: 6 });
  });

  it('prefers the measured throughput to the processing time', () => {
    const c = new ConcurrencyController(BASE);
    // 30 waiting; processing says 3 s at 5 slots, but only 1 job/s actually finishes: 30 s.
    c.decide(sample(0, 5, 30, 5, { ...timing(500), throughputPerSec: 1 }));
    const d = c.decide(sample(5_000, 5, 30, 5, { ...timing(500), throughputPerSec: 1 }));
    expect(d.to).toBe(10);
    expect(d.reason).toMatch(/would take 30 s to drain .* at 1\/s, p95 750 ms/);
  });

  it('holds when the backlog drains within the target even though every slot is busy', () => {
    const c = new ConcurrencyController(BASE);
    for (let i = 0; i < 5; i++) {
      const d = c.decide(sample(i * 5_000, 5, 10, 5, timing(1_000)));
      expect(d.to).toBe(5);
      expect(d.reason).toMatch(/drains within 10 s/);
    }
  });

  it('without timings yet, scales up when every slot is busy and jobs wait', () => {
    const c = new ConcurrencyController(BASE);
    expect(c.decide(sample(0, 2, 3, 2)).to).toBe(2);
    const d = c.decide(sample(5_000, 2, 3, 2));
    expect(d).toMatchObject({ from: 2, to: 4, reason: 'all 2 slots busy and 3 waiting' });
    // Free slots with jobs waiting for a moment is not pressure.
    const other = new ConcurrencyController(BASE);
    other.decide(sample(0, 4, 3, 1));
    expect(other.decide(sample(5_000, 4, 3, 1)).to).toBe(4);
  });

  it('waits out the up cool-down between scale-ups', () => {
    const c = new ConcurrencyController(BASE);
    c.decide(sample(0, 2, 200, 2, timing(1_000)));
    expect(c.decide(sample(5_000, 2, 200, 2, timing(1_000))).to).toBe(4);
    // Still a backlog: confirm again, and not before 10 s after the change.
    expect(c.decide(sample(10_000, 4, 200, 4, timing(1_000))).to).toBe(4);
    const cooling = c.decide(sample(14_000, 4, 200, 4, timing(1_000)));
    expect(cooling).toMatchObject({ to: 4 });
    expect(cooling.reason).toMatch(/cooling down/);
    expect(c.decide(sample(15_000, 4, 200, 4, timing(1_000))).to).toBe(8);
  });

  it('never exceeds the max nor a provider cap, and says why it stops', () => {
    const c = new ConcurrencyController({ ...BASE, max: 20, cap: { value: 6, reason: 'OPENAI_RATE_LIMIT_MAX 6' } });
    expect(c.max).toBe(6);
    let concurrency = 1;
    const seen: number[] = [];
    for (let at = 0; at < 300_000; at += 5_000) {
      const d = c.decide(sample(at, concurrency, 10_000, concurrency, timing(2_000)));
      concurrency = d.to;
      seen.push(concurrency);
    }
    expect(Math.max(...seen)).toBe(6);
    const last = c.decide(sample(300_000, concurrency, 10_000, concurrency, timing(2_000)));
    expect(last.reason).toMatch(/at max 6 \(OPENAI_RATE_LIMIT_MAX 6\)/);
  });

  it('clamps a starting value outside the range at once', () => {
    const c = new ConcurrencyController({ ...BASE, min: 1, max: 8, cap: { value: 2, reason: 'ROCKETREACH_MAX_CONCURRENT 2, the global limit' } });
    expect(c.decide(sample(0, 5, 0, 0))).toMatchObject({
      from: 5,
      to: 2,
      reason: 'above max 2 (ROCKETREACH_MAX_CONCURRENT 2, the global limit)',
    });
    const low = new ConcurrencyController({ ...BASE, min: 4 });
    expect(low.decide(sample(0, 1, 0, 0))).toMatchObject({ from: 1, to: 4, reason: 'below min 4' });
  });

  it('holds while the queue is rate limited or paused', () => {
    const c = new ConcurrencyController(BASE);
    for (let i = 0; i < 4; i++) {
      const d = c.decide(sample(i * 5_000, 5, 500, 5, { ...timing(1_000), rateLimited: true }));
      expect(d.to).toBe(5);
      expect(d.reason).toMatch(/^rate limited/);
    }
    const paused = new ConcurrencyController(BASE);
    for (let i = 0; i < 30; i++) expect(paused.decide(sample(i * 5_000, 5, 0, 0, { paused: true })).reason).toBe('queue paused');
  });

  it('scales down one step at a time once idle for a while, never below min', () => {
    const c = new ConcurrencyController({ ...BASE, min: 2 });
    let concurrency = 16;
    const changes: Array<[number, number, number]> = [];
    for (let at = 0; at <= 400_000; at += 5_000) {
      const d = c.decide(sample(at, concurrency, 0, 0));
      if (d.to !== d.from) changes.push([at, d.from, d.to]);
      concurrency = d.to;
    }
    // First step after 60 s idle, then one every 30 s: 16 -> 12 -> 9 -> 7 -> 6 -> 5 -> 4 -> 3 -> 2.
    expect(changes.map(([, , to]) => to)).toEqual([12, 9, 7, 6, 5, 4, 3, 2]);
    expect(changes[0]![0]).toBe(60_000);
    for (let i = 1; i < changes.length; i++) expect(changes[i]![0] - changes[i - 1]![0]).toBe(30_000);
    expect(c.decide(sample(500_000, 2, 0, 0)).reason).toBe('idle at min');
  });

  it('does not flap: a backlog that just cleared, or a half-busy queue, holds', () => {
    const c = new ConcurrencyController(BASE);
    c.decide(sample(0, 4, 200, 4, timing(1_000)));
    expect(c.decide(sample(5_000, 4, 200, 4, timing(1_000))).to).toBe(8);
    // The backlog clears: no scale-down until idle for 60 s.
    const trace: number[] = [];
    let concurrency = 8;
    for (let at = 10_000; at < 60_000; at += 5_000) {
      const d = c.decide(sample(at, concurrency, 0, at < 20_000 ? 6 : 1));
      concurrency = d.to;
      trace.push(concurrency);
    }
    expect(new Set(trace)).toEqual(new Set([8]));

    // Alternating: a few jobs waiting that drain in time, then 3 of 4 slots busy: neither up nor down.
    const steady = new ConcurrencyController({ ...BASE, idleMs: 0, downCooldownMs: 0, upCooldownMs: 0 });
    for (let i = 0; i < 40; i++) {
      const d = steady.decide(sample(i * 5_000, 4, i % 2 ? 8 : 0, i % 2 ? 4 : 3, timing(1_000)));
      expect(d.to).toBe(4);
    }
  });

  it('with several worker processes, scales only its share of the backlog', () => {
    const alone = new ConcurrencyController(BASE);
    const shared = new ConcurrencyController(BASE);
    // 150 waiting, 1 s jobs. Alone with 5 slots: 30 s -> 10 (capped by doubling). In a fleet of
    // 3 x 5 slots: 10 s for the fleet; at 15 s it would need 22.5 slots, this process a third.
    alone.decide(sample(0, 5, 150, 5, timing(1_000)));
    shared.decide(sample(0, 5, 225, 15, { ...timing(1_000), fleetConcurrency: 15 }));
    expect(alone.decide(sample(5_000, 5, 150, 5, timing(1_000))).to).toBe(10);
    const d = shared.decide(sample(5_000, 5, 225, 15, { ...timing(1_000), fleetConcurrency: 15 }));
    expect(d).toMatchObject({ from: 5, to: 8 });
  });

  it('summarizes processing times', () => {
    expect(summarizeDurations([])).toBeUndefined();
    const durations = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(summarizeDurations(durations)).toEqual({ meanMs: 50.5, p95Ms: 95, count: 100 });
  });
});

describe('auto-scaling configuration', () => {
  it('defaults: min half the seed, max four times it, capped by the providers', () => {
    const { autoscale } = loadConfig({}).queue;
    expect(autoscale).toMatchObject({ enabled: true, intervalMs: 5_000, targetDrainMs: 10_000 });
    expect(autoscale.limits.intent).toEqual({ min: 5, max: 40 });
    expect(autoscale.limits.rag).toEqual({ min: 4, max: 32 });
    expect(autoscale.limits.openai).toMatchObject({ min: 2, max: 20 });
    // RocketReach: 4 x 2 = 8, but never above ROCKETREACH_MAX_CONCURRENT (2).
    expect(autoscale.limits.rocketreach).toMatchObject({ min: 1, max: 2, cap: { value: 2 } });
    const small = loadConfig({ OPENAI_RATE_LIMIT_MAX: '3', CONCURRENCY_OPENAI_MAX: '50', ROCKETREACH_MAX_CONCURRENT: '5', ROCKETREACH_RATE_LIMIT_MAX: '4' });
    expect(small.queue.autoscale.limits.openai).toMatchObject({ min: 2, max: 3, cap: { reason: 'OPENAI_RATE_LIMIT_MAX 3' } });
    expect(small.queue.autoscale.limits.rocketreach).toMatchObject({ max: 4, cap: { reason: 'ROCKETREACH_RATE_LIMIT_MAX 4' } });
  });

  it('takes explicit values, widens the default range to the starting value, and rejects contradictions', () => {
    const c = loadConfig({ CONCURRENCY_OPENAI: '1', CONCURRENCY_OPENAI_MAX: '8', CONCURRENCY_RAG: '60', AUTOSCALE_ENABLED: 'false' });
    expect(c.queue.autoscale.limits.openai).toMatchObject({ min: 1, max: 8 });
    expect(c.queue.autoscale.limits.rag).toMatchObject({ min: 4, max: 60 });
    expect(c.queue.autoscale.enabled).toBe(false);
    expect(() => loadConfig({ CONCURRENCY_RAG_MIN: '9', CONCURRENCY_RAG_MAX: '3' })).toThrow(/CONCURRENCY_RAG_MIN \(9\) is above CONCURRENCY_RAG_MAX \(3\)/);
    expect(() => loadConfig({ CONCURRENCY_ROCKETREACH_MIN: '3' })).toThrow(ConfigError);
    expect(() => loadConfig({ AUTOSCALE_ENABLED: 'maybe' })).toThrow(/AUTOSCALE_ENABLED/);
  });
});
