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
 * - An explicit request whose name, employer or title carries a secret, restricted data or instructions
 *   (the security detectors) is not looked up; none left gives `skipped` with `reason: 'contact_blocked'`.
 *   Whether the message itself may cause a call is the engine stage's decision (the security verdict).
 * - Every profile is gated before it is returned or cached, and a cached one again when read
 *   (`gateContact`): instructions in its name, title or employer drop it (counted in `dropped`).
 *
 * Results: `not_configured` when there is no client (nothing is called), `completed` with the contacts
 * found, `not_found` when none was. At most five distinct lookups per run, one after another. Each lookup is
 * cached per organization under its normalised name|employer|title; only `completed`/`not_found` outcomes
 * are cached, so a failure is retried next time. `cached: true` means every lookup of the run was served
 * from the cache. Errors propagate: a StageError with `permanent` fails the step at once, anything else is
 * retried by the driver (lookups that succeeded before the error are already cached).
 */
import type { IntentResult, RocketReachResult, Contact, SecurityResult } from '../types.js';
import { classifySecurity } from '../security/security.service.js';
import type { PersonQuery, RocketReachClient } from './rocketreach.client.js';

/** The detectors the contacts go through (the security stage's). */
export type ContactScan = (text: string) => SecurityResult;

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

type Plan = { kind: 'skipped' } | { kind: 'blocked' } | { kind: 'nobody' } | { kind: 'lookup'; requests: ContactRequest[] };

/** Whether a verdict keeps text from external services: restricted, unsafe or carrying instructions. */
export function keptFromExternal(verdict: SecurityResult): boolean {
  return verdict.level === 'restricted' || !verdict.safe || verdict.promptInjection;
}

/** A requested contact goes out only if none of its fields carries a secret, restricted data or instructions. */
function mayLookUp(request: ContactRequest, scan: ContactScan): boolean {
  return [request.name, request.employer, request.title].every((field) => field === undefined || !keptFromExternal(scan(field)));
}

function plan(input: RocketReachStageInput, scan: ContactScan): Plan {
  const explicit = (input.contacts ?? [])
    .map((c) => toRequest(c.name, c.employer, c.title))
    .filter((c): c is ContactRequest => c !== undefined);
  let requests: ContactRequest[];
  if (explicit.length > 0) {
    requests = explicit.filter((request) => mayLookUp(request, scan));
    if (requests.length === 0) return { kind: 'blocked' };
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

/** The result of a lookup kept from RocketReach: nothing was sent. */
export function skippedFor(reason: NonNullable<RocketReachResult['reason']>): RocketReachResult {
  return { status: 'skipped', contacts: [], reason };
}

/** Not a field that may go to the model: instructions aimed at the assistant, or anything but contact data. */
function unfit(value: string, scan: ContactScan, allowed: readonly string[]): boolean {
  const verdict = scan(value);
  return verdict.promptInjection || verdict.findings.some((finding) => !allowed.includes(finding.type));
}

/**
 * A directory profile as it may reach the prompt: a contact whose name, title or employer carries
 * instructions is dropped (undefined); other secrets in them are redacted; an email, phone or
 * LinkedIn address that carries anything but itself is left out.
 */
export function gateContact(contact: Contact, scan: ContactScan): Contact | undefined {
  const identity = [contact.name, contact.title, contact.employer].map((field) => (field === undefined ? undefined : scan(field)));
  if (identity.some((verdict) => verdict?.promptInjection)) return undefined;
  const [name, title, employer] = identity;
  const gated: Contact = {
    name: name!.redactedContent,
    emails: contact.emails.filter((email) => !unfit(email, scan, ['email'])),
    phones: contact.phones.filter((phone) => !unfit(phone, scan, ['phone'])),
  };
  if (title) gated.title = title.redactedContent;
  if (employer) gated.employer = employer.redactedContent;
  if (contact.linkedinUrl && !unfit(contact.linkedinUrl, scan, [])) gated.linkedinUrl = contact.linkedinUrl;
  return gated;
}

function gateResult(result: RocketReachResult, scan: ContactScan): RocketReachResult {
  const contacts = result.contacts.map((contact) => gateContact(contact, scan)).filter((c): c is Contact => c !== undefined);
  const dropped = result.contacts.length - contacts.length + (result.dropped ?? 0);
  const gated: RocketReachResult = { ...result, contacts };
  if (dropped > 0) gated.dropped = dropped;
  return gated;
}

export function createRocketReachStage(deps: { client: RocketReachClient | undefined; cache: ContactCache; scan?: ContactScan }): RocketReachStage {
  const { client, cache } = deps;
  const scan = deps.scan ?? classifySecurity;
  return {
    needsApi(input) {
      const p = plan(input, scan);
      return p.kind === 'lookup' && client !== undefined;
    },

    async run(input, signal) {
      const p = plan(input, scan);
      if (p.kind === 'skipped') return { status: 'skipped', contacts: [] };
      if (!client) return { status: 'not_configured', contacts: [] };
      if (p.kind === 'blocked') return skippedFor('contact_blocked');
      if (p.kind === 'nobody') return { status: 'not_found', contacts: [] };

      const contacts: Contact[] = [];
      let dropped = 0;
      let allCached = true;
      for (const request of p.requests) {
        signal?.throwIfAborted();
        const key = contactCacheKey(request);
        const hit = await cache.get(input.orgId, key);
        if (hit && (hit.status === 'completed' || hit.status === 'not_found')) {
          // Gated again when read: an entry stored before the gate, or under older detectors.
          const gatedHit = gateResult(hit, scan);
          contacts.push(...gatedHit.contacts);
          dropped += gatedHit.dropped ?? 0;
          continue;
        }
        allCached = false;
        const query: PersonQuery = { name: request.name };
        if (request.employer) query.currentEmployer = request.employer;
        if (request.title) query.title = request.title;
        const contact = await client.lookupPerson(query, signal);
        const result = gateResult(contact ? { status: 'completed', contacts: [contact] } : { status: 'not_found', contacts: [] }, scan);
        await cache.set(input.orgId, key, result);
        contacts.push(...result.contacts);
        dropped += result.dropped ?? 0;
      }
      const result: RocketReachResult = { status: contacts.length > 0 ? 'completed' : 'not_found', contacts };
      if (allCached) result.cached = true;
      if (dropped > 0) result.dropped = dropped;
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
