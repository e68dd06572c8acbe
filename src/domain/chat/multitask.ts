import { AppError } from '../errors.js';
import type { AcceptOutcome, NewRun } from '../../engine/run.js';

/*
 * Double texting: what a new message does while an earlier message of its thread is still being
 * answered. `enqueue` answers it after the earlier ones (replies keep the thread's order);
 * `reject` refuses it (409 `thread_busy`, naming the batch that runs); `interrupt` cancels every
 * open run of the thread — an LLM call in progress is aborted and no reply is stored for it — and
 * answers the new message with the whole thread, the interrupted messages included, as context.
 */
export const MULTITASK_STRATEGIES = ['enqueue', 'reject', 'interrupt'] as const;
export type MultitaskStrategy = (typeof MULTITASK_STRATEGIES)[number];
export const DEFAULT_MULTITASK_STRATEGY: MultitaskStrategy = 'enqueue';

export function isMultitaskStrategy(value: unknown): value is MultitaskStrategy {
  return typeof value === 'string' && (MULTITASK_STRATEGIES as readonly string[]).includes(value);
}

/** An accept that looks at the thread's open runs first, serialised per thread. */
export type ExclusiveOutcome =
  | Exclude<AcceptOutcome, { kind: 'created' }>
  | { kind: 'created'; runId: string; createdAt: Date; messageId: string; interrupted: string[] }
  | { kind: 'thread_busy'; runId: string };

export interface ExclusiveAccept<S extends string = string> {
  /**
   * Writes the run only after taking the thread's lock and reading its open runs: with `reject`
   * nothing is written when one is open; with `interrupt` the open runs are returned (oldest
   * first) for the caller to cancel. Two concurrent accepts of one thread are ordered by the lock,
   * so of two `reject`s at once exactly one is accepted.
   */
  create(run: NewRun<S>, whenBusy: 'reject' | 'interrupt'): Promise<ExclusiveOutcome>;
}

export class ThreadBusyError extends AppError {
  constructor(readonly batchId: string) {
    super('thread_busy', 409, `Batch ${batchId} of this thread is still being answered; send again when it has finished, or use multitaskStrategy "enqueue" or "interrupt"`);
    this.name = 'ThreadBusyError';
  }
}

/** Where an organization's default is kept (PostgreSQL). */
export interface OrganizationSettingsStore {
  multitaskStrategy(orgId: string): Promise<MultitaskStrategy | undefined>;
  setMultitaskStrategy(orgId: string, strategy: MultitaskStrategy): Promise<boolean>;
}

export interface OrganizationSettings {
  multitaskStrategy: MultitaskStrategy;
}

/**
 * The organizations' settings, read through a short cache: the accept path asks for every
 * message, and a change made in one process holds there at once and elsewhere within `ttlMs`.
 */
export function createOrganizationSettings(store: OrganizationSettingsStore, options: { ttlMs: number; now?: () => number }) {
  const now = options.now ?? Date.now;
  const cache = new Map<string, { value: MultitaskStrategy; at: number }>();
  const MAX_ENTRIES = 10_000;

  async function strategyOf(orgId: string): Promise<MultitaskStrategy> {
    const hit = cache.get(orgId);
    if (hit && now() - hit.at < options.ttlMs) return hit.value;
    const value = (await store.multitaskStrategy(orgId)) ?? DEFAULT_MULTITASK_STRATEGY;
    if (cache.size >= MAX_ENTRIES) cache.clear();
    cache.set(orgId, { value, at: now() });
    return value;
  }

  return {
    async get(orgId: string): Promise<OrganizationSettings> {
      return { multitaskStrategy: await strategyOf(orgId) };
    },

    async update(orgId: string, changes: Partial<OrganizationSettings>): Promise<OrganizationSettings> {
      if (changes.multitaskStrategy !== undefined) {
        if (!isMultitaskStrategy(changes.multitaskStrategy)) throw new AppError('invalid_request', 400, `multitaskStrategy must be one of ${MULTITASK_STRATEGIES.join(', ')}`);
        await store.setMultitaskStrategy(orgId, changes.multitaskStrategy);
        cache.set(orgId, { value: changes.multitaskStrategy, at: now() });
      }
      return { multitaskStrategy: await strategyOf(orgId) };
    },

    /** The strategy of one message: the request's own, else the organization's default. */
    async resolve(orgId: string, requested: MultitaskStrategy | undefined): Promise<MultitaskStrategy> {
      return requested ?? (await strategyOf(orgId));
    },
  };
}

export type OrganizationSettingsService = ReturnType<typeof createOrganizationSettings>;
