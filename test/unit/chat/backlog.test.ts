import { describe, expect, it } from 'vitest';
import {
  BacklogFullError,
  createBacklog,
  createCalibration,
  createDrainRate,
  createFairShares,
  createServiceTime,
  estimateWaitMs,
  judgeAdmission,
  retryAfter,
  RETRY_AFTER_MAX_S,
  RETRY_AFTER_UNKNOWN_S,
  type BacklogReading,
  type BacklogSource,
} from '../../../src/domain/chat/backlog.js';
import { createOrganizationSettings, type MultitaskStrategy } from '../../../src/domain/chat/multitask.js';

describe('the drain rate', () => {
  it('starts with the first interval and moves halfway towards a new rate after one half-life', () => {
    const rate = createDrainRate(1_000);
    expect(rate.perSecond()).toBeNull();
    rate.observe(100, 1_000);
    expect(rate.perSecond()).toBe(100);
    rate.observe(300, 1_000);
    expect(rate.perSecond()).toBeCloseTo(200, 6);
  });

  it('weighs an interval by its length: ten short intervals move it as far as one long one', () => {
    const short = createDrainRate(1_000);
    const long = createDrainRate(1_000);
    short.observe(0, 1);
    long.observe(0, 1);
    for (let i = 0; i < 10; i++) short.observe(30, 100);
    long.observe(300, 1_000);
    expect(short.perSecond()).toBeCloseTo(long.perSecond()!, 6);
  });

  it('ignores empty intervals', () => {
    const rate = createDrainRate(1_000);
    rate.observe(5, 0);
    expect(rate.perSecond()).toBeNull();
  });
});

describe('the service time', () => {
  it('keeps the prior until measured, then takes the first measurement as it is', () => {
    const service = createServiceTime(1_000, 500);
    expect(service.ms()).toBe(500);
    expect(service.measured()).toBe(false);
    service.observe(80, 250);
    expect(service.ms()).toBe(80);
    service.observe(180, 1_000);
    expect(service.ms()).toBeCloseTo(130, 6);
  });
});

describe('the estimate', () => {
  it('is the service time alone when nothing is ahead', () => {
    expect(estimateWaitMs(0, 300, 80)).toBe(80);
  });

  it('adds the runs ahead at the drain rate', () => {
    // 3,000 ahead at 300 runs/s: 10 s, plus 80 ms of its own.
    expect(estimateWaitMs(3_000, 300, 80)).toBe(10_080);
  });

  it('without a measured rate, counts a service time per run ahead (pessimistic)', () => {
    expect(estimateWaitMs(2, null, 100)).toBe(300);
  });
});

describe('the runs served before a message under fairness', () => {
  const weights: Record<string, number> = { gold: 2 };
  const weightOf = (org: string) => weights[org] ?? 1;

  it('counts, while its organization drains, each other organization by weight, up to its open runs', () => {
    // a floods (1,000 open), b has 5, gold (weight 2) has 300.
    const shares = createFairShares(new Map([['a', 1_000], ['b', 5], ['gold', 300]]), weightOf);
    // b's 6th message: its 5, then 5 of a's and 10 of gold's go in the same turns.
    expect(shares.aheadOf('b', 5)).toBe(5 + 5 + 10);
    // a's next: its 1,000, all of b's 5 and gold's 300 (it outlasts both).
    expect(shares.aheadOf('a', 1_000)).toBe(1_305);
    // gold's next: its 300, 150 of a's (half its weight), b's 5.
    expect(shares.aheadOf('gold', 300)).toBe(455);
  });

  it('puts a newcomer organization next, and its own accepts since the reading behind its own', () => {
    const shares = createFairShares(new Map([['a', 1_000]]), weightOf);
    expect(shares.aheadOf('c', 0)).toBe(0);
    // c accepted 3 through this process since the reading: 3 of its own and 3 of a's.
    expect(shares.aheadOf('c', 3)).toBe(6);
    // a's count grew by 10 locally: 1,010 of its own, nobody else's.
    expect(shares.aheadOf('a', 1_010)).toBe(1_010);
  });

  it('is the share of the drain when every organization stays busy: n ÷ (w ÷ Σ w)', () => {
    const shares = createFairShares(new Map([['a', 10_000], ['b', 10_000], ['gold', 10_000]]), weightOf);
    // A message of b with 100 of b's runs ahead (b's later ones do not count): weight 1 of 4, so
    // they take the time of 400 at the system's rate.
    expect(shares.aheadOf('b', 100)).toBe(400);
    expect(shares.aheadOf('gold', 100)).toBe(200);
  });
});

describe('the correction', () => {
  it('is 1 until measured, then the weighted geometric mean of actual ÷ estimate, half of it from halfLifeRuns runs', () => {
    const calibration = createCalibration(100);
    expect(calibration.factor()).toBe(1);
    calibration.observe(0, Math.log(0.5));
    calibration.observe(10, null);
    expect(calibration.factor()).toBe(1);
    calibration.observe(100, Math.log(0.25));
    // Half of the way to 0.25 in logarithms: 0.5.
    expect(calibration.factor()).toBeCloseTo(0.5, 6);
    expect(calibration.runs()).toBe(100);
  });

  it('bounds what one interval says to a factor of 20', () => {
    const calibration = createCalibration(1);
    calibration.observe(1_000_000, Math.log(1_000));
    expect(calibration.factor()).toBeCloseTo(20, 3);
  });
});

describe('admission', () => {
  const limits = { maxPerOrg: 10, maxTotal: 100 };

  it('accepts below both limits', () => {
    expect(judgeAdmission({ organization: 9, overall: 99 }, limits, 10)).toEqual({ kind: 'accepted' });
  });

  it('refuses the organization at its limit, with the time its excess takes to drain', () => {
    expect(judgeAdmission({ organization: 30, overall: 50 }, limits, 4)).toEqual({ kind: 'shed', scope: 'organization', open: 30, limit: 10, retryAfterSeconds: 6 });
  });

  it('refuses everyone when the system is at its limit, before looking at the organization', () => {
    expect(judgeAdmission({ organization: 50, overall: 100 }, limits, 0.5)).toEqual({ kind: 'shed', scope: 'overall', open: 100, limit: 100, retryAfterSeconds: 2 });
  });

  it('bounds Retry-After, and names a fixed pause when no drain rate is known', () => {
    expect(retryAfter(1, 1_000)).toBe(1);
    expect(retryAfter(1_000_000, 1)).toBe(RETRY_AFTER_MAX_S);
    expect(retryAfter(10, null)).toBe(RETRY_AFTER_UNKNOWN_S);
  });
});

/** A source whose readings the test writes, with a clock of its own. */
function scriptedSource() {
  const readings: BacklogReading[] = [];
  const calls: Array<Date | undefined> = [];
  const source: BacklogSource = {
    async read(since) {
      calls.push(since);
      const next = readings.shift();
      if (!next) throw new Error('no reading scripted');
      return next;
    },
  };
  const at = (ms: number) => new Date(1_800_000_000_000 + ms);
  return { source, readings, calls, at };
}

describe('the backlog of a process', () => {
  it('places messages from the reading plus what this process accepted since, and refuses beyond the limits', async () => {
    const { source, readings, at } = scriptedSource();
    readings.push({ openByOrg: new Map([['a', 2], ['b', 1]]), finished: 0, fastestMs: null, recent: 0, until: at(0) });
    // The clock stands still: every admit is answered from the one reading.
    const backlog = createBacklog({ source, limits: { maxPerOrg: 4, maxTotal: 6 }, refreshMs: 250, halfLifeMs: 1_000, priorServiceMs: 500, now: () => 0 });

    const first = await backlog.admit('a');
    expect(first.position).toEqual({ organization: 2, overall: 3 });
    backlog.accepted('a');
    expect((await backlog.admit('a')).position).toEqual({ organization: 3, overall: 4 });
    backlog.accepted('a');
    // a has 4 open now: refused, and counted.
    await expect(backlog.admit('a')).rejects.toMatchObject({ code: 'backlog_full', statusCode: 429, scope: 'organization' });
    expect((await backlog.admit('b')).position).toEqual({ organization: 1, overall: 5 });
    backlog.accepted('b');
    backlog.accepted('c');
    // Seven open across the system, above six: everyone is refused with 503.
    const refused = await backlog.admit('d').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(BacklogFullError);
    expect(refused).toMatchObject({ code: 'overloaded', statusCode: 503, retryAfterSeconds: RETRY_AFTER_UNKNOWN_S });
    const status = backlog.status();
    expect(status).toMatchObject({ shedding: true, shed: { organization: 1, overall: 1 }, open: 7, organizationsAtLimit: 1 });
  });

  it('reads again only when the reading is older than refreshMs, without making the accept wait', async () => {
    const { source, readings, calls, at } = scriptedSource();
    let clock = 0;
    readings.push({ openByOrg: new Map([['a', 1]]), finished: 0, fastestMs: null, recent: 0, until: at(0) });
    const backlog = createBacklog({ source, limits: { maxPerOrg: 100, maxTotal: 100 }, refreshMs: 250, halfLifeMs: 1_000, priorServiceMs: 500, now: () => clock });
    await backlog.admit('a');
    clock = 100;
    await backlog.admit('a');
    expect(calls).toHaveLength(1);
    clock = 300;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow: BacklogSource = {
      async read(since) {
        calls.push(since);
        await gate;
        return { openByOrg: new Map([['a', 7]]), finished: 0, fastestMs: null, recent: 0, until: at(300) };
      },
    };
    Object.assign(source, slow);
    // Answered from the old reading while the new one is under way.
    expect((await backlog.admit('a')).position.organization).toBe(1);
    expect(calls).toEqual([undefined, at(0)]);
    release();
    await backlog.refresh();
    expect((await backlog.admit('a')).position.organization).toBe(7);
  });

  it('measures the drain rate from busy intervals and the service time from the others, and estimates with both', async () => {
    const { source, readings, at } = scriptedSource();
    let clock = 0;
    const backlog = createBacklog({ source, limits: { maxPerOrg: 1_000_000, maxTotal: 1_000_000 }, refreshMs: 1, halfLifeMs: 10_000, priorServiceMs: 500, now: () => clock });
    // Idle: one run open, it finished in 90 ms; nothing else measured.
    readings.push({ openByOrg: new Map([['a', 1]]), finished: 0, fastestMs: null, recent: 0, until: at(0) });
    readings.push({ openByOrg: new Map(), finished: 1, fastestMs: 90, recent: 0, until: at(1_000) });
    // Busy: 1,000 open; the backlog is younger than a service time at first, so that second is not
    // measured; then 250 finished in a second, 750 still open plus 750 new ones.
    readings.push({ openByOrg: new Map([['a', 1_000]]), finished: 0, fastestMs: null, recent: 0, until: at(2_000) });
    readings.push({ openByOrg: new Map([['a', 1_200]]), finished: 100, fastestMs: 3_000, recent: 0, until: at(3_000) });
    readings.push({ openByOrg: new Map([['a', 1_500]]), finished: 250, fastestMs: 3_000, recent: 0, until: at(4_000) });
    for (let i = 0; i < 5; i++) {
      await backlog.refresh();
      clock += 1_000;
    }
    const status = backlog.status();
    expect(status.serviceTimeMs).toBe(90);
    expect(status.drainRatePerSecond).toBe(250);
    expect(status.estimateCorrection).toBe(1);
    const placed = (await backlog.current('a', 0));
    expect(placed.position).toEqual({ organization: 1_500, overall: 1_500 });
    // 1,500 ahead at 250/s is 6 s, plus 90 ms.
    expect(placed.estimatedWaitMs).toBe(6_090);
  });

  it('counts a finish the previous reading saw in its overlap only once', async () => {
    const { source, readings, at } = scriptedSource();
    let clock = 0;
    const backlog = createBacklog({ source, limits: { maxPerOrg: 1_000_000, maxTotal: 1_000_000 }, refreshMs: 1, halfLifeMs: 10_000, priorServiceMs: 500, now: () => clock });
    // A backlog older than a service time, nothing finished in its first second.
    readings.push({ openByOrg: new Map([['a', 1_000]]), finished: 0, fastestMs: null, recent: 0, until: at(-1_000) });
    readings.push({ openByOrg: new Map([['a', 1_000]]), finished: 0, fastestMs: null, recent: 0, until: at(0) });
    // 300 finishes in the next second, 120 of them in its last two seconds of overlap.
    readings.push({ openByOrg: new Map([['a', 900]]), finished: 300, fastestMs: null, recent: 120, until: at(1_000) });
    // 320 counted in (−1 s, 2 s]: 120 of them were counted already; 200 are new.
    readings.push({ openByOrg: new Map([['a', 800]]), finished: 320, fastestMs: null, recent: 200, until: at(2_000) });
    await backlog.refresh();
    await backlog.refresh();
    clock = 1_000;
    await backlog.refresh();
    expect(backlog.status().drainRatePerSecond).toBe(300);
    clock = 2_000;
    await backlog.refresh();
    // A tenth of a half-life towards 200: 300 − 100 × (1 − 2^−0.1).
    expect(backlog.status().drainRatePerSecond).toBeCloseTo(300 - 100 * (1 - 2 ** -0.1), 1);
  });

  it('does not measure a backlog that just formed: nothing finishes until its runs are through the pipeline', async () => {
    const { source, readings, at } = scriptedSource();
    let clock = 0;
    const backlog = createBacklog({ source, limits: { maxPerOrg: 1_000_000, maxTotal: 1_000_000 }, refreshMs: 1, halfLifeMs: 10_000, priorServiceMs: 500, now: () => clock });
    readings.push({ openByOrg: new Map([['a', 2]]), finished: 0, fastestMs: null, recent: 0, until: at(0) });
    // A flood from 0 on: 300 open after 250 ms, none finished; then the two runs accepted before it,
    // less than a service time into it.
    readings.push({ openByOrg: new Map([['a', 300]]), finished: 0, fastestMs: null, recent: 0, until: at(250) });
    readings.push({ openByOrg: new Map([['a', 600]]), finished: 2, fastestMs: null, recent: 0, until: at(500) });
    readings.push({ openByOrg: new Map([['a', 850]]), finished: 0, fastestMs: null, recent: 0, until: at(750) });
    // Then they come out at 200/s.
    readings.push({ openByOrg: new Map([['a', 1_100]]), finished: 50, fastestMs: null, recent: 0, until: at(1_000) });
    for (let i = 0; i < 4; i++) {
      await backlog.refresh();
      clock += 250;
    }
    expect(backlog.status().drainRatePerSecond).toBeNull();
    // Meanwhile the stretch's intervals give a provisional rate (here slower than one run per
    // service time, so that guess: 850 × 0.5 s), not learned from.
    const guessed = await backlog.admit('a');
    expect(guessed).toEqual({ position: { organization: 850, overall: 850 }, estimatedWaitMs: 500 + 850 * 500, modelWaitMs: null });
    await backlog.refresh();
    expect(backlog.status().drainRatePerSecond).toBe(200);
  });

  it('orders by organization under fairness, and over everyone without it', async () => {
    const reading = () => ({ openByOrg: new Map([['a', 1_000], ['b', 10]]), finished: 0, fastestMs: null, recent: 0, until: new Date(0) });
    const make = (enabled: boolean) =>
      createBacklog({
        source: { read: async () => reading() },
        limits: { maxPerOrg: 1_000_000, maxTotal: 1_000_000 },
        refreshMs: 60_000,
        halfLifeMs: 10_000,
        priorServiceMs: 100,
        fairness: { enabled, weightOf: () => 1 },
        now: () => 0,
      });
    const fair = make(true);
    const fifo = make(false);
    // No rate measured: a service time (100 ms) per run ahead, plus its own.
    const b = await fair.admit('b');
    expect(b.position).toEqual({ organization: 10, overall: 1_010 });
    // b's 10, then 10 of a's in the same turns.
    expect(b.estimatedWaitMs).toBe(100 + 20 * 100);
    expect((await fair.admit('c')).estimatedWaitMs).toBe(100);
    expect((await fair.admit('a')).estimatedWaitMs).toBe(100 + 1_010 * 100);
    expect((await fifo.admit('b')).estimatedWaitMs).toBe(100 + 1_010 * 100);
    expect((await fifo.admit('c')).estimatedWaitMs).toBe(100 + 1_010 * 100);
    // Nothing is learned from a guess made without a measured rate.
    expect(b.modelWaitMs).toBeNull();
  });

  it('corrects a systematic bias by how the estimates turned out: the error shrinks with each reading', async () => {
    // The system drains its backlog at 200 runs/s, but every interval it measures says 100 (e.g.
    // the rate is measured while a flood is accepted, the backlog drains after it). Each reading
    // reports the runs that finished since, with the model's estimate each was given at accept.
    const trueRate = 200;
    const serviceMs = 500;
    let clock = 0;
    let until = 0;
    let finishing: number[] = [];
    const source: BacklogSource = {
      async read(since) {
        until += 1_000;
        const ratios = finishing.map((model) => Math.log((serviceMs + (1_000 * 1_000) / trueRate) / model));
        finishing = [];
        return {
          openByOrg: new Map([['a', 1_000]]),
          finished: since ? 100 : 0,
          recent: 0,
          fastestMs: null,
          until: new Date(until),
          calibration: { runs: ratios.length, meanLogRatio: ratios.length ? ratios.reduce((a, b) => a + b, 0) / ratios.length : null },
        };
      },
    };
    const backlog = createBacklog({ source, limits: { maxPerOrg: 1_000_000, maxTotal: 1_000_000 }, refreshMs: 1, halfLifeMs: 10_000, priorServiceMs: serviceMs, calibrationHalfLifeRuns: 20, now: () => clock });
    // Three readings: the first, one not measured (the backlog just formed), one measured: 100/s.
    for (let i = 0; i < 3; i++) {
      await backlog.refresh();
      clock += 1_000;
    }
    expect(backlog.status().drainRatePerSecond).toBe(100);
    const actualMs = serviceMs + (1_000 * 1_000) / trueRate;
    const errors: number[] = [];
    for (let round = 0; round < 10; round++) {
      const given: number[] = [];
      for (let i = 0; i < 20; i++) {
        const placed = await backlog.admit('a');
        expect(placed.modelWaitMs).toBe(serviceMs + 10_000);
        given.push(placed.estimatedWaitMs);
        finishing.push(placed.modelWaitMs!);
      }
      errors.push(Math.abs(Math.log(given[0]! / actualMs)));
      await backlog.refresh();
      clock += 1_000;
    }
    // Twice as long at first (10.5 s for 5.5 s); each reading halves the rest of the bias (20 runs,
    // one half-life), to within 2 % in the end.
    expect(errors[0]).toBeCloseTo(Math.log(10_500 / 5_500), 6);
    for (let i = 1; i < errors.length; i++) expect(errors[i]).toBeLessThan(errors[i - 1]!);
    expect(errors[errors.length - 1]).toBeLessThan(Math.log(1.02));
    expect(backlog.status().estimateCorrection).toBeCloseTo(5_500 / 10_500, 2);
    expect(backlog.status().calibratedRuns).toBe(200);
  });

  it('in repeated floods, learns that a backlog drains faster once the flood stops: the median error shrinks after the first', async () => {
    // A simulated system: 400 accepts/s for 3 s, drained first in, first out at 50 runs/s while a
    // flood is accepted and at 100/s once it stops, then idle; four floods. Every estimate given
    // during a flood is judged by the slower drain, while most of its wait falls after the flood.
    const stepMs = 250;
    let clock = 0;
    const queue: Array<{ acceptedAt: number; model: number | null; estimate: number }> = [];
    let finishedSinceRead = 0;
    let learned: number[] = [];
    const source: BacklogSource = {
      async read(since) {
        const reading: BacklogReading = {
          openByOrg: new Map(queue.length ? [['a', queue.length]] : []),
          finished: since ? finishedSinceRead : 0,
          recent: 0,
          fastestMs: null,
          until: new Date(1_800_000_000_000 + clock),
          calibration: { runs: learned.length, meanLogRatio: learned.length ? learned.reduce((a, b) => a + b, 0) / learned.length : null },
        };
        finishedSinceRead = 0;
        learned = [];
        return reading;
      },
    };
    const backlog = createBacklog({ source, limits: { maxPerOrg: 1_000_000, maxTotal: 1_000_000 }, refreshMs: stepMs, halfLifeMs: 1_000, priorServiceMs: 100, now: () => clock });
    const medianLogError: number[] = [];
    let credit = 0;
    for (let flood = 0; flood < 4; flood++) {
      const errors: number[] = [];
      const start = clock;
      // The flood, its drain, then idle until 20 s after it began.
      while (clock - start < 20_000 || queue.length > 0) {
        await backlog.refresh();
        const flooding = clock - start < 3_000;
        if (flooding) {
          for (let i = 0; i < 100; i++) {
            const placed = await backlog.admit('a');
            backlog.accepted('a');
            queue.push({ acceptedAt: clock, model: placed.modelWaitMs, estimate: placed.estimatedWaitMs });
          }
        }
        clock += stepMs;
        credit += ((flooding ? 50 : 100) * stepMs) / 1_000;
        for (; credit >= 1 && queue.length > 0; credit--) {
          const run = queue.shift()!;
          const actual = clock - run.acceptedAt;
          finishedSinceRead++;
          if (run.model !== null) learned.push(Math.log(actual / run.model));
          errors.push(Math.log(run.estimate / actual));
        }
        if (queue.length === 0) credit = 0;
      }
      errors.sort((a, b) => a - b);
      medianLogError.push(errors[Math.floor(errors.length / 2)]!);
    }
    // The first flood is told about 1.9 times its wait at the median; the next ones (by the
    // default half-life of 1,000 runs, about one flood) within 15 %, and the correction says so.
    expect(medianLogError[0]).toBeGreaterThan(Math.log(1.8));
    for (const error of medianLogError.slice(1)) expect(Math.abs(error)).toBeLessThan(Math.log(1.15));
    expect(backlog.status().estimateCorrection).toBeLessThan(0.95);
  });

  it('keeps the old reading when the source fails, with what was accepted meanwhile', async () => {
    const { source, readings, at } = scriptedSource();
    const errors: unknown[] = [];
    readings.push({ openByOrg: new Map([['a', 3]]), finished: 0, fastestMs: null, recent: 0, until: at(0) });
    const backlog = createBacklog({ source, limits: { maxPerOrg: 100, maxTotal: 100 }, refreshMs: 0, halfLifeMs: 1_000, priorServiceMs: 500, onError: (e) => errors.push(e) });
    await backlog.refresh();
    backlog.accepted('a');
    await backlog.refresh();
    expect(errors).toHaveLength(1);
    expect((await backlog.current('a', 0)).position).toEqual({ organization: 4, overall: 4 });
  });
});

describe('organization settings', () => {
  it('resolves a request\'s strategy over the organization default, caches the default and validates changes', async () => {
    const stored = new Map<string, MultitaskStrategy>([['a', 'reject']]);
    let reads = 0;
    let clock = 0;
    const settings = createOrganizationSettings(
      {
        async multitaskStrategy(orgId) {
          reads++;
          return stored.get(orgId);
        },
        async setMultitaskStrategy(orgId, strategy) {
          stored.set(orgId, strategy);
          return true;
        },
      },
      { ttlMs: 1_000, now: () => clock },
    );
    expect(await settings.resolve('a', undefined)).toBe('reject');
    expect(await settings.resolve('a', 'interrupt')).toBe('interrupt');
    expect(await settings.resolve('b', undefined)).toBe('enqueue');
    expect(await settings.resolve('a', undefined)).toBe('reject');
    expect(reads).toBe(2);
    stored.set('a', 'interrupt');
    clock = 1_000;
    expect(await settings.resolve('a', undefined)).toBe('interrupt');
    expect(await settings.update('b', { multitaskStrategy: 'reject' })).toEqual({ multitaskStrategy: 'reject' });
    expect(await settings.resolve('b', undefined)).toBe('reject');
    await expect(settings.update('b', { multitaskStrategy: 'sometimes' as MultitaskStrategy })).rejects.toMatchObject({ code: 'invalid_request', statusCode: 400 });
  });
});
