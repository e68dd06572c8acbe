import { describe, expect, it } from 'vitest';
import { createFairClock, createFairPriorities, createOrgPauses } from '../../../src/engine/fairness.js';
import { createQueuedDriver } from '../../../src/engine/drivers/queued.js';
import type { JobTransport } from '../../../src/engine/ports/job-transport.js';
import type { Progression } from '../../../src/engine/progression.js';
import type { StepVerdict } from '../../../src/engine/process-step.js';
import type { AnyStageDefinition } from '../../../src/engine/stage.js';

/** Takes jobs lowest tag first (ties: first added), as a priority queue does. */
function drain(jobs: Array<{ org: string; tag: number; seq: number }>): string[] {
  return [...jobs].sort((a, b) => a.tag - b.tag || a.seq - b.seq).map((job) => job.org);
}

describe('the fair clock', () => {
  it("puts another organization's new job ahead of a flood's backlog", () => {
    let now = 1_000_000;
    const clock = createFairClock({ jobCostMs: 100, maxLeadMs: 3_600_000, weightOf: () => 1, now: () => now });
    const jobs = [];
    let seq = 0;
    for (let i = 0; i < 3000; i++) jobs.push({ org: 'A', tag: clock.tag('intent', 'A'), seq: seq++ });
    now += 200;
    jobs.push({ org: 'B', tag: clock.tag('intent', 'B'), seq: seq++ });
    const order = drain(jobs);
    // B's job goes after the A jobs tagged before it arrived (200 ms at one per 100 ms, and the one at its tag).
    expect(order.indexOf('B')).toBeLessThanOrEqual(3);
  });

  it('serves an organization within its share in arrival order: nothing is reordered when nobody floods', () => {
    let now = 0;
    const clock = createFairClock({ jobCostMs: 100, maxLeadMs: 60_000, weightOf: () => 1, now: () => now });
    const tags: number[] = [];
    for (let i = 0; i < 20; i++) {
      tags.push(clock.tag('llm', i % 2 ? 'A' : 'B'));
      now += 100;
    }
    expect(tags).toEqual([...tags].sort((a, b) => a - b));
  });

  it('interleaves backlogged organizations in proportion to their weights', () => {
    const clock = createFairClock({ jobCostMs: 100, maxLeadMs: 3_600_000, weightOf: (org) => (org === 'A' ? 2 : 1), now: () => 0 });
    const jobs = [];
    let seq = 0;
    for (let i = 0; i < 300; i++) jobs.push({ org: 'A', tag: clock.tag('openai', 'A'), seq: seq++ });
    for (let i = 0; i < 300; i++) jobs.push({ org: 'C', tag: clock.tag('openai', 'C'), seq: seq++ });
    const first = drain(jobs).slice(0, 150);
    expect(first.filter((o) => o === 'A')).toHaveLength(100);
    expect(first.filter((o) => o === 'C')).toHaveLength(50);
  });

  it('keeps each stage its own lane and keeps an organization first in, first out within a lane', () => {
    const clock = createFairClock({ jobCostMs: 100, maxLeadMs: 3_600_000, weightOf: () => 1, now: () => 0 });
    const intent = [clock.tag('intent', 'A'), clock.tag('intent', 'A'), clock.tag('intent', 'A')];
    expect(clock.tag('rag', 'A')).toBe(0);
    expect(intent).toEqual([0, 100, 200]);
  });

  it("caps the lead: a huge flood's tail shares one tag, still behind everyone else", () => {
    const clock = createFairClock({ jobCostMs: 100, maxLeadMs: 1_000, weightOf: () => 1, now: () => 0 });
    const tags = Array.from({ length: 50 }, () => clock.tag('intent', 'A'));
    expect(Math.max(...tags)).toBe(1_000);
    expect(clock.tag('intent', 'B')).toBe(0);
  });

  it("puts a newcomer next even when the queue lags behind the clock (a stage slower than one job per cost)", () => {
    let now = 0;
    const clock = createFairClock({ jobCostMs: 100, maxLeadMs: 3_600_000, weightOf: () => 1, now: () => now });
    const waiting: Array<{ org: string; tag: number; seq: number }> = [];
    let seq = 0;
    for (let i = 0; i < 1000; i++) waiting.push({ org: 'A', tag: clock.tag('openai', 'A'), seq: seq++ });
    // The stage serves 5 jobs/s (behind a limiter): after 60 s, 300 are done and the head's tag is 30 s.
    now = 60_000;
    const rest = waiting.sort((x, y) => x.tag - y.tag).slice(300);
    const head = rest[0]!.tag;
    expect(head).toBe(30_000);
    // Tagged on the clock alone, B would wait behind the 300 A jobs tagged between the head and now.
    const onClock = createFairClock({ jobCostMs: 100, maxLeadMs: 3_600_000, weightOf: () => 1, now: () => now }).tag('openai', 'B');
    expect(drain([...rest, { org: 'B', tag: onClock, seq: seq++ }]).indexOf('B')).toBeGreaterThan(290);
    // With the head passed, B goes right after it.
    expect(drain([...rest, { org: 'B', tag: clock.tag('openai', 'B', head), seq: seq++ }]).indexOf('B')).toBe(1);
    // A's own next job still goes after its backlog, and a head ahead of now changes nothing.
    expect(clock.tag('openai', 'A', head)).toBe(100_000);
    expect(clock.tag('openai', 'C', now + 5_000)).toBe(now);
  });

  it('forgets lanes whose last job is in the past', () => {
    let now = 0;
    const clock = createFairClock({ jobCostMs: 1, maxLeadMs: 1_000, weightOf: () => 1, now: () => now });
    for (let i = 0; i < 10_000; i++) clock.tag('intent', `org-${i}`);
    now = 10;
    clock.tag('intent', 'one more');
    expect(clock.size()).toBe(1);
  });
});

describe('fair priorities', () => {
  const MAX = 2_097_151;

  it('stay in range for tags from now to the largest lead, and order as the tags do', () => {
    const now = 1_764_000_000_000;
    const p = createFairPriorities({ resolutionMs: 10, maxPriority: MAX, now: () => now });
    const atNow = p.priorityOf(now).priority;
    const ahead = p.priorityOf(now + 1_000).priority;
    const furthest = p.priorityOf(now + p.maxLeadMs).priority;
    expect(atNow).toBeGreaterThanOrEqual(1);
    expect(ahead - atNow).toBe(100);
    expect(furthest).toBeLessThanOrEqual(MAX);
    expect(p.maxLeadMs).toBeGreaterThan(3_600_000);
  });

  it('rebased across an epoch, an old job still goes before a newer tag', () => {
    let now = 0;
    const p = createFairPriorities({ resolutionMs: 10, maxPriority: MAX, now: () => now });
    const span = (MAX + 1) / 4;
    now = span * 10 - 50; // just before the next epoch
    const old = p.priorityOf(now + 30_000); // a backlog 30 s ahead
    now += 100; // the epoch has changed
    const fresh = p.priorityOf(now);
    expect(fresh.epoch).toBe(old.epoch + 1);
    // Unrebased, the old job would wrongly go after the new one.
    expect(old.priority).toBeGreaterThan(fresh.priority);
    const rebased = p.rebase(old.priority, old.epoch, fresh.epoch);
    expect(rebased).toBeGreaterThan(fresh.priority);
    expect(p.priorityOf(now + 30_000 - 100).priority).toBe(rebased);
    expect(p.rebase(5, 1, 3)).toBe(1);
    // A priority maps back to its tag (to the resolution).
    expect(p.tagOf(fresh.priority, fresh.epoch)).toBe(Math.floor(now / 10) * 10);
  });
});

describe("an organization's 429", () => {
  it('holds that organization for the Retry-After and lets the others through', async () => {
    let now = 0;
    const pauses = createOrgPauses(() => now);
    const calls: string[] = [];
    const transport = { enqueue: async () => undefined } as unknown as JobTransport<'llm'>;
    const progression = {} as Progression<'llm'>;
    // One stage that calls out; its jobs carry no fan-out, so nothing else of it is read.
    const catalog = { llm: { callsOut: true } as unknown as AnyStageDefinition };
    const consume = createQueuedDriver({
      catalog,
      transport,
      progression,
      pauses,
      processStep: () => async (job) => {
        calls.push(job.run.orgId);
        return (job.run.orgId === 'A' && calls.length === 1 ? { kind: 'pause', ms: 1_000 } : { kind: 'done', status: 'completed' }) as StepVerdict;
      },
    });
    const job = (orgId: string) => ({ runId: `r-${orgId}`, orgId, stage: 'llm' as const, attemptsMade: 0 });
    expect(await consume(job('A'))).toEqual({ kind: 'pause', ms: 1_000 });
    now = 400;
    // A's next job is put back for the rest of the wait, without calling the provider.
    expect(await consume(job('A'))).toEqual({ kind: 'pause', ms: 600 });
    expect(await consume(job('B'))).toMatchObject({ kind: 'done' });
    now = 1_000;
    expect(await consume(job('A'))).toMatchObject({ kind: 'done' });
    expect(calls).toEqual(['A', 'B', 'A']);
  });
});
