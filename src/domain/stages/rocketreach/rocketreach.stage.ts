/**
 * The rocketreach stage: looks up the contact details of people a message asks about.
 *
 * What gets looked up:
 * - explicit `contacts` requests (the comprehensive endpoint) are looked up whatever the intent says;
 * - otherwise only an intent of category `contact_lookup` with an `entities.person` triggers a lookup
 *   (with `entities.employer` / `entities.title` when present); any other intent gives `skipped`.
 * - A `contact_lookup` intent without a person name gives `not_found` without calling RocketReach: the
 *   user did ask for a contact, there is simply nobody to look up (and `skipped` would read as "not
 *   applicable"). It is still `not_configured` when no client is wired.
 *
 * Results: `not_configured` when there is no client (nothing is called), `completed` with the contacts
 * found, `not_found` when none was. At most five distinct lookups per run, one after another. Each lookup is
 * cached per organization under its normalised name|employer|title; only `completed`/`not_found` outcomes
 * are cached, so a failure is retried next time. `cached: true` means every lookup of the run was served
 * from the cache. Errors propagate: a StageError with `permanent` fails the step at once, anything else is
 * retried by the driver (lookups that succeeded before the error are already cached).
 */
import type { IntentResult, RocketReachResult, Contact } from '../types.js';
import type { PersonQuery, RocketReachClient } from './rocketreach.client.js';

export interface ContactCache {
  get(orgId: string, key: string): Promise<RocketReachResult | undefined>;
  set(orgId: string, key: string, value: RocketReachResult): Promise<void>;
}

export interface ContactRequest {
  name: string;
  employer?: string;
  title?: string;
}

export interface RocketReachStageInput {
  orgId: string;
  intent: IntentResult | undefined;
  contacts?: ContactRequest[];
}

export interface RocketReachStage {
  /**
   * Whether `run` would call the API (a contact lookup is asked for and a key is configured). When
   * it would not, the result (skipped, not_configured, not_found) is known at once, without I/O.
   */
  needsApi(input: RocketReachStageInput): boolean;
  run(input: RocketReachStageInput, signal?: AbortSignal): Promise<RocketReachResult>;
}

export const MAX_LOOKUPS_PER_RUN = 5;

/** Lowercased, trimmed, whitespace collapsed. */
export function normaliseKeyPart(value: string | undefined): string {
  return (value ?? '').normalize('NFKC').toLowerCase().replace(/\s+/g, ' ').trim();
}

export function contactCacheKey(request: ContactRequest): string {
  return [request.name, request.employer, request.title].map(normaliseKeyPart).join('|');
}

function clean(value: string | undefined): string | undefined {
  const v = value?.replace(/\s+/g, ' ').trim();
  return v ? v : undefined;
}

function toRequest(name: string | undefined, employer: string | undefined, title: string | undefined): ContactRequest | undefined {
  const n = clean(name);
  if (!n) return undefined;
  const request: ContactRequest = { name: n };
  const e = clean(employer);
  const t = clean(title);
  if (e) request.employer = e;
  if (t) request.title = t;
  return request;
}

type Plan = { kind: 'skipped' } | { kind: 'nobody' } | { kind: 'lookup'; requests: ContactRequest[] };

function plan(input: RocketReachStageInput): Plan {
  const explicit = (input.contacts ?? [])
    .map((c) => toRequest(c.name, c.employer, c.title))
    .filter((c): c is ContactRequest => c !== undefined);
  let requests: ContactRequest[];
  if (explicit.length > 0) {
    requests = explicit;
  } else {
    if (input.intent?.category !== 'contact_lookup') return { kind: 'skipped' };
    const entities = input.intent.entities;
    const request = toRequest(entities?.person, entities?.employer, entities?.title);
    if (!request) return { kind: 'nobody' };
    requests = [request];
  }
  const seen = new Set<string>();
  const unique: ContactRequest[] = [];
  for (const request of requests) {
    const key = contactCacheKey(request);
    if (seen.has(key)) continue;
    seen.add(key);
    unique.push(request);
    if (unique.length === MAX_LOOKUPS_PER_RUN) break;
  }
  return { kind: 'lookup', requests: unique };
}

export function createRocketReachStage(deps: { client: RocketReachClient | undefined; cache: ContactCache }): RocketReachStage {
  const { client, cache } = deps;
  return {
    needsApi(input) {
      const p = plan(input);
      return p.kind === 'lookup' && client !== undefined;
    },

    async run(input, signal) {
      const p = plan(input);
      if (p.kind === 'skipped') return { status: 'skipped', contacts: [] };
      if (!client) return { status: 'not_configured', contacts: [] };
      if (p.kind === 'nobody') return { status: 'not_found', contacts: [] };

      const contacts: Contact[] = [];
      let allCached = true;
      for (const request of p.requests) {
        signal?.throwIfAborted();
        const key = contactCacheKey(request);
        const hit = await cache.get(input.orgId, key);
        if (hit && (hit.status === 'completed' || hit.status === 'not_found')) {
          contacts.push(...hit.contacts);
          continue;
        }
        allCached = false;
        const query: PersonQuery = { name: request.name };
        if (request.employer) query.currentEmployer = request.employer;
        if (request.title) query.title = request.title;
        const contact = await client.lookupPerson(query, signal);
        const result: RocketReachResult = contact
          ? { status: 'completed', contacts: [contact] }
          : { status: 'not_found', contacts: [] };
        await cache.set(input.orgId, key, result);
        contacts.push(...result.contacts);
      }
      const result: RocketReachResult = { status: contacts.length > 0 ? 'completed' : 'not_found', contacts };
      if (allCached) result.cached = true;
      return result;
    },
  };
}

/**
 * An in-process cache, per organization, holding at most `maxEntries` lookups (oldest evicted first).
 * For tests, and for when no database cache is wired.
 */
export function createMemoryContactCache(options: { maxEntries?: number } = {}): ContactCache {
  const maxEntries = options.maxEntries ?? 1000;
  const entries = new Map<string, RocketReachResult>();
  const slot = (orgId: string, key: string): string => `${orgId}\u0000${key}`;
  return {
    async get(orgId, key) {
      const value = entries.get(slot(orgId, key));
      return value === undefined ? undefined : structuredClone(value);
    },
    async set(orgId, key, value) {
      const k = slot(orgId, key);
      entries.delete(k);
      entries.set(k, structuredClone(value));
      while (entries.size > maxEntries) {
        const oldest = entries.keys().next().value;
        if (oldest === undefined) break;
        entries.delete(oldest);
      }
    },
  };
}
