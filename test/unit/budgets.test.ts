import { describe, expect, it } from 'vitest';
import { createUsageBudgets, hasBudgets, type MeteredResource, type UsageLedger } from '../../src/domain/budgets/usage-budgets.js';
import { StageError } from '../../src/domain/errors.js';

function memoryLedger() {
  const rows = new Map<string, number>();
  let reads = 0;
  const ledger: UsageLedger = {
    async used(orgId, day, resource) {
      reads++;
      return rows.get(`${orgId}/${day}/${resource}`) ?? 0;
    },
    async add(orgId, day, resource, amount) {
      const key = `${orgId}/${day}/${resource}`;
      rows.set(key, (rows.get(key) ?? 0) + amount);
    },
  };
  return { ledger, rows, reads: () => reads };
}

const A = '00000000-0000-4000-8000-00000000000a';
const B = '00000000-0000-4000-8000-00000000000b';

describe('daily budgets per organization', () => {
  it('refuses with a permanent budget_exhausted once the day is spent, for that organization only, and renews the next day', async () => {
    const { ledger } = memoryLedger();
    let now = new Date('2026-12-01T23:59:00Z');
    const budgets = createUsageBudgets({ ledger, limits: { perDay: { llm_tokens: 100 }, byOrg: {} }, now: () => now });
    await budgets.ensureAvailable(A, 'llm_tokens');
    await budgets.record(A, 'llm_tokens', 120);
    const error = await budgets.ensureAvailable(A, 'llm_tokens').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StageError);
    expect(error).toMatchObject({ code: 'budget_exhausted', permanent: true });
    await expect(budgets.ensureAvailable(B, 'llm_tokens')).resolves.toBeUndefined();
    now = new Date('2026-12-02T00:00:01Z');
    await expect(budgets.ensureAvailable(A, 'llm_tokens')).resolves.toBeUndefined();
  });

  it('takes an organization override before the default, and meters nothing without a limit', async () => {
    const { ledger, rows, reads } = memoryLedger();
    const budgets = createUsageBudgets({ ledger, limits: { perDay: {}, byOrg: { [A]: { rocketreach_lookups: 1 } } } });
    const resource: MeteredResource = 'rocketreach_lookups';
    await budgets.ensureAvailable(A, resource);
    await budgets.record(A, resource, 1);
    await expect(budgets.ensureAvailable(A, resource)).rejects.toMatchObject({ code: 'budget_exhausted' });
    const before = reads();
    await budgets.ensureAvailable(B, resource);
    await budgets.record(B, resource, 5);
    await budgets.ensureAvailable(A, 'llm_tokens');
    expect(reads()).toBe(before);
    expect([...rows.keys()].some((key) => key.startsWith(B))).toBe(false);
  });

  it('is off when nothing is configured', () => {
    expect(hasBudgets({ perDay: {}, byOrg: {} })).toBe(false);
    expect(hasBudgets({ perDay: { llm_tokens: 0 }, byOrg: {} })).toBe(true);
  });
});
