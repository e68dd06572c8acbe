/**
 * A fake RocketReach v2 server for tests, speaking the documented protocol on 127.0.0.1 (random port).
 *
 * - Every request must carry the right `Api-Key` header, else 401 `{status:401,message:"Invalid API Key"}`.
 * - `GET /api/v2/person/lookup?name=&current_employer=` (or `id=`, `linkedin_url=`; `title=` breaks ties)
 *   answers with the profile in status `searching` the first time a person is looked up (and spends one
 *   lookup credit; 402 when none are left), 404 when the directory has no such person, 400 without any
 *   identifying parameter.
 * - `GET /api/v2/person/checkStatus?ids=1,2` (or repeated `ids`) answers with an array of profiles. Each poll
 *   of a pending profile counts; after `pollsUntilComplete` polls it is `complete` (or the person's
 *   `finalStatus`, e.g. `failed`). Pending profiles carry null emails/phones, as the API does when cached
 *   emails are not returned. Once complete, a new lookup of that person answers `complete` at once.
 * - `GET /api/v2/account/` answers with an account: `credit_usage` (lookup credits) and `rate_limits`.
 * - `failNext(status, {retryAfterSeconds, body, path, times})` makes the next matching request(s) fail
 *   (a 429 carries `Retry-After`).
 * - `latencyMs` (number or function of the request) delays each response; a request counts as in flight
 *   from arrival until its response is finished or its connection closes, so `maxConcurrent` is the
 *   highest number of requests the server was handling at once, latency included.
 * - `requests` records every request: method, path, query, headers (lower-case names), arrival and finish
 *   times (ms since the epoch, sub-millisecond precision) and the status answered.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface FakeEmail {
  email: string;
  smtp_valid?: 'valid' | 'invalid' | 'accept-all' | 'unknown' | null;
  type?: 'personal' | 'professional' | 'disposable' | 'role-based' | null;
  grade?: string;
}

export interface FakePhone {
  number: string;
  type?: string;
  recommended?: boolean;
}

export interface FakePerson {
  /** Assigned when omitted. */
  id?: number;
  name: string;
  currentEmployer?: string;
  currentTitle?: string;
  linkedinUrl?: string;
  emails?: FakeEmail[];
  phones?: FakePhone[];
  /** Polls before this person's lookup completes; overrides the server's default. `Infinity` = never. */
  pollsUntilComplete?: number;
  /** Status once polling ends. Default `complete`. */
  finalStatus?: 'complete' | 'failed';
}

export interface FakeRequestRecord {
  method: string;
  /** Path with the `/api/v2` prefix, without the query string. */
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  /** Epoch milliseconds (sub-millisecond precision) when the request arrived. */
  receivedAt: number;
  /** Epoch milliseconds when the response finished or the connection closed. */
  finishedAt?: number;
  /** Status answered; undefined if the client went away first. */
  status?: number;
}

export interface FailureOptions {
  /** For 429: the `Retry-After` header value, in seconds. */
  retryAfterSeconds?: number;
  /** Response body; defaults to `{status, message}`. */
  body?: unknown;
  /** Only requests whose path ends with this (e.g. `/person/checkStatus`) consume the failure. */
  path?: string;
  /** How many matching requests fail. Default 1. */
  times?: number;
}

export type Latency = number | ((request: FakeRequestRecord) => number);

export interface FakeRocketReachOptions {
  apiKey?: string;
  people?: FakePerson[];
  /** checkStatus polls before a lookup completes. Default 2; 0 = lookups complete at once. */
  pollsUntilComplete?: number;
  latencyMs?: Latency;
  /** Lookup credits on the account. Default 1000. */
  lookupCredits?: number;
}

interface PendingFailure {
  status: number;
  options: FailureOptions;
  remaining: number;
}

interface LookupState {
  polls: number;
  done: boolean;
}

const DEFAULT_MESSAGES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Invalid API Key',
  402: 'Insufficient lookup credits',
  403: 'API Key lacks permission to perform this action',
  404: 'Not Found',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

const PREFIX = '/api/v2';
const epochNow = (): number => performance.timeOrigin + performance.now();
const norm = (s: string | undefined): string => (s ?? '').toLowerCase().replace(/\s+/g, ' ').trim();
const normUrl = (s: string | undefined): string =>
  norm(s)
    .replace(/^https?:\/\//, '')
    .replace(/^www\./, '')
    .replace(/\/+$/, '');

export class FakeRocketReach {
  readonly apiKey: string;
  readonly requests: FakeRequestRecord[] = [];
  pollsUntilComplete: number;
  latencyMs: Latency;
  lookupCredits: number;
  lookupCreditsUsed = 0;
  private people: Array<FakePerson & { id: number }> = [];
  private nextId = 1001;
  private failures: PendingFailure[] = [];
  private lookups = new Map<number, LookupState>();
  private current = 0;
  private max = 0;
  private server: Server | undefined;
  private baseUrl = '';

  constructor(options: FakeRocketReachOptions = {}) {
    this.apiKey = options.apiKey ?? 'test-rocketreach-key';
    this.pollsUntilComplete = options.pollsUntilComplete ?? 2;
    this.latencyMs = options.latencyMs ?? 0;
    this.lookupCredits = options.lookupCredits ?? 1000;
    for (const person of options.people ?? []) this.addPerson(person);
  }

  /** Base URL including `/api/v2`, e.g. `http://127.0.0.1:43123/api/v2`. */
  get url(): string {
    return this.baseUrl;
  }

  /** Requests being handled right now. */
  get inFlight(): number {
    return this.current;
  }

  /** The most requests handled at once since start (or the last `reset`). */
  get maxConcurrent(): number {
    return this.max;
  }

  async listen(): Promise<this> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    const { port } = server.address() as AddressInfo;
    this.baseUrl = `http://127.0.0.1:${port}${PREFIX}`;
    return this;
  }

  addPerson(person: FakePerson): FakePerson & { id: number } {
    const withId = { ...person, id: person.id ?? this.nextId++ };
    this.people = this.people.filter((p) => p.id !== withId.id);
    this.people.push(withId);
    return withId;
  }

  setPeople(people: FakePerson[]): void {
    this.people = [];
    this.lookups.clear();
    for (const person of people) this.addPerson(person);
  }

  failNext(status: number, options: FailureOptions = {}): void {
    this.failures.push({ status, options, remaining: options.times ?? 1 });
  }

  /** Recorded requests whose path ends with `suffix` (e.g. `/person/lookup`). */
  requestsTo(suffix: string): FakeRequestRecord[] {
    return this.requests.filter((r) => r.path.replace(/\/+$/, '').endsWith(suffix.replace(/\/+$/, '')));
  }

  /** Forgets requests, pending failures, lookup progress and the concurrency peak; keeps people and credits. */
  reset(): void {
    this.requests.length = 0;
    this.failures = [];
    this.lookups.clear();
    this.max = this.current;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake.invalid');
    const query: Record<string, string> = {};
    for (const [k, v] of url.searchParams) query[k] = k in query ? `${query[k]},${v}` : v;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
    }
    const record: FakeRequestRecord = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query,
      headers,
      receivedAt: epochNow(),
    };
    this.requests.push(record);

    this.current += 1;
    this.max = Math.max(this.max, this.current);
    let settled = false;
    res.on('close', () => {
      if (settled) return;
      settled = true;
      this.current -= 1;
      record.finishedAt = epochNow();
      if (res.writableFinished) record.status = res.statusCode;
    });
    req.resume();

    try {
      const latency = typeof this.latencyMs === 'function' ? this.latencyMs(record) : this.latencyMs;
      if (latency > 0) await sleep(latency);
      if (res.destroyed || settled) return; // the client went away: do not act on the request
      this.route(record, url, res);
    } catch (error) {
      if (!res.headersSent) this.send(res, 500, { status: 500, message: String(error) });
      else res.destroy();
    }
  }

  private send(res: ServerResponse, status: number, body: unknown, extraHeaders: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...extraHeaders });
    res.end(text);
  }

  private error(res: ServerResponse, status: number, message?: string): void {
    this.send(res, status, { status, message: message ?? DEFAULT_MESSAGES[status] ?? 'Error' });
  }

  private takeFailure(path: string): PendingFailure | undefined {
    const index = this.failures.findIndex(
      (f) => f.options.path === undefined || path.replace(/\/+$/, '').endsWith(f.options.path.replace(/\/+$/, '')),
    );
    if (index === -1) return undefined;
    const failure = this.failures[index]!;
    failure.remaining -= 1;
    if (failure.remaining <= 0) this.failures.splice(index, 1);
    return failure;
  }

  private route(record: FakeRequestRecord, url: URL, res: ServerResponse): void {
    if (record.headers['api-key'] !== this.apiKey) return this.error(res, 401);

    const failure = this.takeFailure(record.path);
    if (failure) {
      const headers: Record<string, string> = {};
      if (failure.options.retryAfterSeconds !== undefined) headers['Retry-After'] = String(failure.options.retryAfterSeconds);
      const body = failure.options.body ?? { status: failure.status, message: DEFAULT_MESSAGES[failure.status] ?? 'Error' };
      return this.send(res, failure.status, body, headers);
    }

    if (record.method !== 'GET') return this.error(res, 405, 'Method Not Allowed');
    const route = record.path.startsWith(PREFIX) ? record.path.slice(PREFIX.length).replace(/\/+$/, '') : undefined;
    switch (route) {
      case '/person/lookup':
        return this.lookup(url.searchParams, res);
      case '/person/checkStatus':
        return this.checkStatus(url.searchParams, res);
      case '/account':
        return this.account(res);
      default:
        return this.error(res, 404);
    }
  }

  private findPerson(params: URLSearchParams): (FakePerson & { id: number }) | undefined | null {
    const id = params.get('id');
    if (id) return this.people.find((p) => String(p.id) === id.trim());
    const linkedin = params.get('linkedin_url');
    if (linkedin) return this.people.find((p) => p.linkedinUrl !== undefined && normUrl(p.linkedinUrl) === normUrl(linkedin));
    const name = params.get('name');
    if (!name) return null;
    const employer = params.get('current_employer');
    const title = params.get('title');
    const matches = this.people.filter(
      (p) => norm(p.name) === norm(name) && (!employer || norm(p.currentEmployer) === norm(employer)),
    );
    if (title) return matches.find((p) => norm(p.currentTitle) === norm(title)) ?? matches[0];
    return matches[0];
  }

  private profile(person: FakePerson & { id: number }, status: string): Record<string, unknown> {
    const complete = status === 'complete';
    return {
      id: person.id,
      status,
      name: person.name,
      current_title: person.currentTitle ?? null,
      current_employer: person.currentEmployer ?? null,
      linkedin_url: person.linkedinUrl ?? null,
      emails: complete ? (person.emails ?? []) : status === 'failed' ? [] : null,
      phones: complete ? (person.phones ?? []) : status === 'failed' ? [] : null,
    };
  }

  private statusOf(person: FakePerson & { id: number }, state: LookupState): string {
    if (state.done) return person.finalStatus ?? 'complete';
    return state.polls === 0 ? 'searching' : 'progress';
  }

  private lookup(params: URLSearchParams, res: ServerResponse): void {
    const person = this.findPerson(params);
    if (person === null) return this.error(res, 400, 'Specify name and current_employer, id, or linkedin_url');
    if (!person) return this.error(res, 404, 'Profile not found');
    let state = this.lookups.get(person.id);
    if (!state) {
      if (this.lookupCreditsUsed >= this.lookupCredits) return this.error(res, 402);
      this.lookupCreditsUsed += 1;
      const needed = person.pollsUntilComplete ?? this.pollsUntilComplete;
      state = { polls: 0, done: needed <= 0 };
      this.lookups.set(person.id, state);
    }
    this.send(res, 200, this.profile(person, this.statusOf(person, state)));
  }

  private checkStatus(params: URLSearchParams, res: ServerResponse): void {
    const ids = params
      .getAll('ids')
      .flatMap((v) => v.replace(/[[\]]/g, '').split(','))
      .map((v) => v.trim())
      .filter((v) => v !== '');
    if (ids.length === 0) return this.error(res, 400, 'ids is required');
    const profiles: Array<Record<string, unknown>> = [];
    for (const id of ids) {
      const person = this.people.find((p) => String(p.id) === id);
      const state = person ? this.lookups.get(person.id) : undefined;
      if (!person || !state) continue;
      if (!state.done) {
        state.polls += 1;
        if (state.polls >= (person.pollsUntilComplete ?? this.pollsUntilComplete)) state.done = true;
      }
      profiles.push(this.profile(person, this.statusOf(person, state)));
    }
    if (profiles.length === 0) return this.error(res, 404, 'Profile not found');
    this.send(res, 200, profiles);
  }

  private account(res: ServerResponse): void {
    this.send(res, 200, {
      id: 42,
      first_name: 'Fake',
      last_name: 'Account',
      email: 'api@example.test',
      state: 'registered',
      credit_usage: [
        {
          credit_type: 'standard_lookup',
          allocated: this.lookupCredits,
          used: this.lookupCreditsUsed,
          remaining: Math.max(0, this.lookupCredits - this.lookupCreditsUsed),
        },
      ],
      rate_limits: [{ action: 'person_lookup', duration: 'minute', limit: null, used: 0, remaining: null }],
    });
  }
}

export async function startFakeRocketReach(options: FakeRocketReachOptions = {}): Promise<FakeRocketReach> {
  return new FakeRocketReach(options).listen();
}
