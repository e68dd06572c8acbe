/**
 * Client for the RocketReach v2 REST API (https://docs.rocketreach.co).
 *
 * Protocol, as documented:
 * - Base URL `https://api.rocketreach.co/api/v2`; the key travels in the `Api-Key` request header
 *   (the `api_key` query parameter is deprecated and never used here).
 * - `GET /person/lookup?name=…&current_employer=…[&title=…]` (also `id`, `linkedin_url`) answers with a
 *   profile whose `status` is `complete`, or still pending (`searching`, `progress`, `waiting`,
 *   `not queued`). A pending profile is polled with `GET /person/checkStatus?ids=<id>`, which answers with
 *   an array of profiles. Polling is free; a lookup may spend a credit.
 * - Errors are `{status, message}` JSON. 401 = key missing or invalid, 403 = key lacks permission,
 *   402 = no credits left, 404 = no such profile, 429 = throttled with a `Retry-After` header in seconds,
 *   5xx = server trouble (retry later).
 * - `GET /account/` describes the account: `credit_usage[]` ({credit_type, allocated, used, remaining},
 *   `'inf'` when unlimited) and `rate_limits[]`. It also echoes the API key, which is never returned here.
 *
 * The API key is never logged and never placed in an error message.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { StageError, parseRetryAfter } from '../../errors.js';
import type { Contact } from '../types.js';

export interface PersonQuery {
  name: string;
  currentEmployer?: string;
  title?: string;
}

export interface RocketReachClient {
  /** Resolves to the contact, or null when RocketReach has no such person (404) or the lookup failed. */
  lookupPerson(query: PersonQuery, signal?: AbortSignal): Promise<Contact | null>;
}

export interface RocketReachCreditUsage {
  creditType: string;
  /** `Infinity` when the plan is unlimited (the API sends `'inf'`). */
  allocated: number;
  used: number;
  /** `Infinity` when the plan is unlimited (the API sends `'inf'`). */
  remaining: number;
}

export interface RocketReachRateLimit {
  action: string;
  duration: string;
  limit: number | null;
  used: number;
  remaining: number | null;
}

/** The parts of `GET /account/` worth knowing. The API key it echoes is deliberately dropped. */
export interface RocketReachAccount {
  id?: number;
  state?: string;
  creditUsage: RocketReachCreditUsage[];
  rateLimits: RocketReachRateLimit[];
  /** Remaining lookup credits: the smallest `remaining` among `*lookup*` credit types, if any are listed. */
  lookupCreditsRemaining?: number;
}

export interface RocketReachApiClient extends RocketReachClient {
  getAccount(signal?: AbortSignal): Promise<RocketReachAccount>;
}

export interface RocketReachClientOptions {
  apiKey: string;
  baseUrl: string;
  /** Delay between checkStatus polls. Default 1000 ms. */
  pollIntervalMs?: number;
  /** Budget for one whole lookup (request, rate-limit waits and polling). Default 30000 ms. */
  deadlineMs?: number;
  /** Total time one lookup may spend waiting out 429 Retry-After before giving up. Default 10000 ms. */
  maxRateLimitWaitMs?: number;
  fetch?: typeof fetch;
}

const PENDING_STATUSES = new Set(['searching', 'progress', 'waiting', 'not queued', 'pending', 'queued']);
const FAILED_STATUSES = new Set(['failed', 'lookup_failed']);
/** Used when a 429 carries no usable Retry-After. */
const DEFAULT_RATE_LIMIT_WAIT_MS = 1000;
const GRADE_ORDER = ['A', 'A-', 'B', 'B-', 'C', 'D', 'F'];

interface RawEmail {
  email?: unknown;
  smtp_valid?: unknown;
  valid?: unknown;
  type?: unknown;
  grade?: unknown;
}

interface RawPhone {
  number?: unknown;
  recommended?: unknown;
}

interface RawProfile {
  id?: unknown;
  status?: unknown;
  name?: unknown;
  current_title?: unknown;
  current_employer?: unknown;
  linkedin_url?: unknown;
  emails?: unknown;
  phones?: unknown;
  recommended_email?: unknown;
  recommended_professional_email?: unknown;
  current_work_email?: unknown;
}

interface HttpResult {
  status: number;
  body: unknown;
}

/** State shared by the requests of one operation: its signals and its rate-limit budget. */
interface Operation {
  signal: AbortSignal;
  callerSignal: AbortSignal | undefined;
  deadlineSignal: AbortSignal;
  deadlineAt: number;
  rateLimitWaitedMs: number;
}

const now = (): number => performance.now();

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

function serverMessage(body: unknown): string {
  if (body && typeof body === 'object') {
    const record = body as Record<string, unknown>;
    const message = str(record.message) ?? str(record.detail) ?? str(record.error);
    if (message) return message.slice(0, 200);
  }
  if (typeof body === 'string' && body.trim() !== '') return body.trim().slice(0, 200);
  return '';
}

/**
 * What of an error body may go into a stored message: a short machine code, if the body has one.
 * The body's text is left out — a provider that repeats the request echoes the caller's data back.
 */
function serverCode(body: unknown): string {
  if (!body || typeof body !== 'object') return '';
  const record = body as Record<string, unknown>;
  const code = str(record.code) ?? str(record.error_code) ?? (typeof record.code === 'number' ? String(record.code) : undefined);
  return code && /^[A-Za-z0-9_.-]{1,40}$/.test(code) ? code : '';
}

function gradeRank(grade: unknown): number {
  const index = typeof grade === 'string' ? GRADE_ORDER.indexOf(grade.trim().toUpperCase()) : -1;
  return index === -1 ? GRADE_ORDER.length : index;
}

function validityRank(email: RawEmail): number {
  const v = email.smtp_valid ?? email.valid;
  if (v === 'valid' || v === true || v === 'true') return 0;
  if (v === 'invalid' || v === false || v === 'false') return 2;
  return 1;
}

/** Emails, best first: by grade (A, A-, B, …), then SMTP validity (invalid last), then API order. */
function mapEmails(profile: RawProfile): string[] {
  const raw = Array.isArray(profile.emails) ? (profile.emails as RawEmail[]) : [];
  const ranked = raw
    .map((e, index) => ({ e, index, email: e && typeof e === 'object' ? str(e.email) : undefined }))
    .filter((x): x is { e: RawEmail; index: number; email: string } => x.email !== undefined)
    .sort(
      (a, b) =>
        gradeRank(a.e.grade) - gradeRank(b.e.grade) || validityRank(a.e) - validityRank(b.e) || a.index - b.index,
    )
    .map((x) => x.email);
  // Older or partial responses may only carry the recommended address fields.
  const fallbacks = [profile.recommended_professional_email, profile.recommended_email, profile.current_work_email]
    .map(str)
    .filter((x): x is string => x !== undefined);
  const seen = new Set<string>();
  const out: string[] = [];
  for (const email of [...ranked, ...fallbacks]) {
    const key = email.toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(email);
  }
  return out;
}

/** Phones, recommended first, duplicates removed. */
function mapPhones(profile: RawProfile): string[] {
  const raw = Array.isArray(profile.phones) ? (profile.phones as RawPhone[]) : [];
  const phones = raw
    .map((p, index) => ({ p, index, number: p && typeof p === 'object' ? str(p.number) : undefined }))
    .filter((x): x is { p: RawPhone; index: number; number: string } => x.number !== undefined)
    .sort((a, b) => Number(b.p.recommended === true) - Number(a.p.recommended === true) || a.index - b.index)
    .map((x) => x.number);
  return [...new Set(phones)];
}

export function mapProfileToContact(profile: RawProfile, query?: PersonQuery): Contact {
  const contact: Contact = {
    name: str(profile.name) ?? query?.name ?? '',
    emails: mapEmails(profile),
    phones: mapPhones(profile),
  };
  const title = str(profile.current_title);
  const employer = str(profile.current_employer);
  const linkedinUrl = str(profile.linkedin_url);
  if (title !== undefined) contact.title = title;
  if (employer !== undefined) contact.employer = employer;
  if (linkedinUrl !== undefined) contact.linkedinUrl = linkedinUrl;
  return contact;
}

function asProfile(body: unknown): RawProfile | undefined {
  return body && typeof body === 'object' && !Array.isArray(body) ? (body as RawProfile) : undefined;
}

function profileStatus(profile: RawProfile): string {
  return typeof profile.status === 'string' ? profile.status.trim().toLowerCase() : '';
}

function creditNumber(value: unknown): number {
  if (value === 'inf' || value === 'Infinity') return Number.POSITIVE_INFINITY;
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isFinite(n) ? n : 0;
}

function mapAccount(body: unknown): RocketReachAccount {
  const raw = body && typeof body === 'object' ? (body as Record<string, unknown>) : {};
  const creditUsage: RocketReachCreditUsage[] = (Array.isArray(raw.credit_usage) ? raw.credit_usage : [])
    .filter((c): c is Record<string, unknown> => !!c && typeof c === 'object')
    .map((c) => ({
      creditType: String(c.credit_type ?? ''),
      allocated: creditNumber(c.allocated),
      used: creditNumber(c.used),
      remaining: creditNumber(c.remaining),
    }));
  const rateLimits: RocketReachRateLimit[] = (Array.isArray(raw.rate_limits) ? raw.rate_limits : [])
    .filter((r): r is Record<string, unknown> => !!r && typeof r === 'object')
    .map((r) => ({
      action: String(r.action ?? ''),
      duration: String(r.duration ?? ''),
      limit: typeof r.limit === 'number' ? r.limit : null,
      used: typeof r.used === 'number' ? r.used : 0,
      remaining: typeof r.remaining === 'number' ? r.remaining : null,
    }));
  const account: RocketReachAccount = { creditUsage, rateLimits };
  if (typeof raw.id === 'number') account.id = raw.id;
  if (typeof raw.state === 'string') account.state = raw.state;
  const lookup = creditUsage.filter((c) => c.creditType.toLowerCase().includes('lookup'));
  if (lookup.length > 0) account.lookupCreditsRemaining = Math.min(...lookup.map((c) => c.remaining));
  return account;
}

export function createRocketReachClient(options: RocketReachClientOptions): RocketReachApiClient {
  const apiKey = options.apiKey;
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const deadlineMs = options.deadlineMs ?? 30_000;
  const maxRateLimitWaitMs = options.maxRateLimitWaitMs ?? 10_000;
  const doFetch = options.fetch ?? globalThis.fetch;

  function startOperation(callerSignal: AbortSignal | undefined): Operation {
    const deadlineSignal = AbortSignal.timeout(deadlineMs);
    return {
      signal: callerSignal ? AbortSignal.any([callerSignal, deadlineSignal]) : deadlineSignal,
      callerSignal,
      deadlineSignal,
      deadlineAt: now() + deadlineMs,
      rateLimitWaitedMs: 0,
    };
  }

  /** Turns whatever an aborted or failed operation threw into what callers should see. */
  function translateError(error: unknown, op: Operation, what: string): unknown {
    if (error instanceof StageError) return error;
    if (op.callerSignal?.aborted) {
      return op.callerSignal.reason ?? error;
    }
    if (op.deadlineSignal.aborted) {
      return new StageError('lookup_timeout', `RocketReach ${what} did not finish within ${deadlineMs} ms`, {
        cause: error,
      });
    }
    return new StageError('network_error', `RocketReach ${what} failed: ${(error as Error)?.message ?? 'unknown error'}`, {
      cause: error,
    });
  }

  /** Sleeps at least `ms` (timers may fire a hair early), aborting with the operation. */
  async function wait(ms: number, op: Operation): Promise<void> {
    const until = now() + ms;
    for (let left = ms; left > 0; left = until - now()) {
      await sleep(Math.ceil(left), undefined, { signal: op.signal });
    }
  }

  async function send(path: string, params: Record<string, string>, op: Operation): Promise<HttpResult> {
    const url = new URL(`${baseUrl}${path}`);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    const response = await doFetch(url, {
      method: 'GET',
      headers: { 'Api-Key': apiKey, Accept: 'application/json' },
      signal: op.signal,
    });
    const text = await response.text();
    let body: unknown = text;
    if (text !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        // kept as text: it only classifies the error (credits), it is never put in a message
      }
    }
    if (response.status === 429) {
      const retryAfterMs = parseRetryAfter(response.headers.get('retry-after')) ?? DEFAULT_RATE_LIMIT_WAIT_MS;
      const withinBudget = op.rateLimitWaitedMs + retryAfterMs <= maxRateLimitWaitMs;
      const beforeDeadline = now() + retryAfterMs < op.deadlineAt;
      if (!withinBudget || !beforeDeadline) {
        throw new StageError('rate_limited', `RocketReach rate limit reached; retry after ${retryAfterMs} ms`, {
          retryAfterMs,
        });
      }
      op.rateLimitWaitedMs += retryAfterMs;
      await wait(retryAfterMs, op);
      return send(path, params, op);
    }
    return { status: response.status, body };
  }

  /** Maps a non-2xx, non-404, non-429 response to a StageError. */
  function httpError(result: HttpResult, path: string): StageError {
    const { status, body } = result;
    // The body's text only classifies the error; the stored message keeps the status and a code.
    const code = serverCode(body);
    const suffix = code ? ` (code ${code})` : '';
    const creditProblem = /credit|quota|payment|balance/i.test(serverMessage(body));
    if (status === 402 || (status === 403 && creditProblem)) {
      return new StageError('insufficient_credits', `RocketReach account has no lookup credits left (${status})${suffix}`, {
        permanent: true,
      });
    }
    if (status === 401) {
      return new StageError('invalid_api_key', `RocketReach rejected the API key (401)${suffix}`, { permanent: true });
    }
    if (status === 403) {
      return new StageError('forbidden', `RocketReach API key lacks permission for ${path} (403)${suffix}`, {
        permanent: true,
      });
    }
    if (status >= 500 || status === 408 || status === 409) {
      return new StageError('upstream_error', `RocketReach ${path} answered ${status}${suffix}`);
    }
    return new StageError('invalid_request', `RocketReach ${path} answered ${status}${suffix}`, { permanent: true });
  }

  async function lookupOnce(query: PersonQuery, op: Operation): Promise<Contact | null> {
    const params: Record<string, string> = { name: query.name };
    if (query.currentEmployer) params.current_employer = query.currentEmployer;
    if (query.title) params.title = query.title;

    const first = await send('/person/lookup', params, op);
    if (first.status === 404) return null;
    if (first.status < 200 || first.status >= 300) throw httpError(first, '/person/lookup');
    const initial = asProfile(first.body);
    if (!initial) throw new StageError('invalid_response', 'RocketReach /person/lookup returned no profile');
    let profile: RawProfile = initial;

    for (;;) {
      const status = profileStatus(profile);
      if (status === 'complete') return mapProfileToContact(profile, query);
      if (FAILED_STATUSES.has(status)) return null;
      if (!PENDING_STATUSES.has(status)) {
        throw new StageError('invalid_response', `RocketReach returned an unknown lookup status "${status.slice(0, 40)}"`);
      }
      const id: unknown = profile.id;
      if (typeof id !== 'number' && typeof id !== 'string') {
        throw new StageError('invalid_response', 'RocketReach returned a pending lookup without a profile id');
      }
      await wait(pollIntervalMs, op);
      const polled = await send('/person/checkStatus', { ids: String(id) }, op);
      if (polled.status === 404) return null;
      if (polled.status < 200 || polled.status >= 300) throw httpError(polled, '/person/checkStatus');
      const list = Array.isArray(polled.body) ? (polled.body as unknown[]) : [polled.body];
      const next: RawProfile | undefined = list.map(asProfile).find((p) => p !== undefined && String(p.id) === String(id));
      if (!next) throw new StageError('invalid_response', 'RocketReach /person/checkStatus did not return the profile');
      profile = next;
    }
  }

  return {
    async lookupPerson(query, signal) {
      signal?.throwIfAborted();
      const op = startOperation(signal);
      try {
        return await lookupOnce(query, op);
      } catch (error) {
        throw translateError(error, op, 'person lookup');
      }
    },

    async getAccount(signal) {
      signal?.throwIfAborted();
      const op = startOperation(signal);
      try {
        const result = await send('/account/', {}, op);
        if (result.status < 200 || result.status >= 300) throw httpError(result, '/account/');
        return mapAccount(result.body);
      } catch (error) {
        throw translateError(error, op, 'account request');
      }
    },
  };
}
