import { describe, expect, it } from 'vitest';
import { armWatchdog, createShutdownSteps, settleBy } from '../../src/lib/shutdown.js';

const never = () => new Promise<never>(() => undefined);

describe('settleBy', () => {
  it('answers how the work ended, or timeout at the given moment, and never rejects', async () => {
    expect(await settleBy(Promise.resolve(1), Date.now() + 1_000)).toBe('done');
    expect(await settleBy(Promise.reject(new Error('boom')), Date.now() + 1_000)).toBe('failed');
    const startedAt = Date.now();
    expect(await settleBy(never(), startedAt + 50)).toBe('timeout');
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(45);
    expect(await settleBy(never(), Date.now() - 10)).toBe('timeout');
  });
});

describe('shutdown steps', () => {
  it('lists as pending the steps whose work has not settled, even after they timed out', async () => {
    const steps = createShutdownSteps();
    let finishSlow!: () => void;
    const slow = new Promise<void>((resolve) => (finishSlow = resolve));
    const outcomes = await Promise.all([
      steps.run('quick', async () => undefined, Date.now() + 1_000),
      steps.run('failing', async () => {
        throw new Error('no connection');
      }, Date.now() + 1_000),
      steps.run('throwing at once', () => {
        throw new Error('sync');
      }, Date.now() + 1_000),
      steps.run('slow', () => slow, Date.now() + 20),
      steps.run('hung', never, Date.now() + 20),
    ]);
    expect(outcomes).toEqual(['done', 'failed', 'failed', 'timeout', 'timeout']);
    expect(steps.pending().sort()).toEqual(['hung', 'slow']);
    finishSlow();
    await slow;
    await Promise.resolve();
    expect(steps.pending()).toEqual(['hung']);
  });
});

describe('the shutdown watchdog', () => {
  it('gives up after its time with the steps still pending, unless disarmed', async () => {
    const steps = createShutdownSteps();
    void steps.run('postgresql pool', never, Date.now() + 10);
    void steps.run('quick', async () => undefined, Date.now() + 10);
    const startedAt = Date.now();
    const pending = await new Promise<string[]>((resolve) => armWatchdog(30, steps, resolve));
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(25);
    expect(pending).toEqual(['postgresql pool']);

    let fired = false;
    const disarm = armWatchdog(10, steps, () => (fired = true));
    disarm();
    await settleBy(never(), Date.now() + 30);
    expect(fired).toBe(false);
  });
});
