import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Coordination } from '../../engine/ports/coordination.js';
import { AppError } from '../../domain/errors.js';
import { hashToken, type TenancyStore } from '../../domain/tenancy/tenancy-store.js';

/**
 * Browser sessions for the pages a browser navigates to (Bull Board), which cannot send the
 * Bearer header. The cookie carries only an opaque random id; the coordination store (Redis, or
 * PostgreSQL when the queues are there) keeps, under the SHA-256 of
 * that id, which token (its SHA-256, never the token) and organization the session acts for, and
 * the session's CSRF token. Every request re-checks that token, the membership and the operator
 * flag in PostgreSQL, so revoking the token or the flag ends the board's access at once.
 *
 * The CSRF token goes to the browser in a second cookie that scripts of the page can read
 * (`XSRF-TOKEN`, the name Bull Board's HTTP client reads and sends back as `X-XSRF-TOKEN` on
 * requests to its own origin). A state-changing call must carry it in that header: another page,
 * even of the same site, can neither read the cookie nor send the header without CORS, which this
 * server never grants.
 */
export const SESSION_COOKIE = 'hj_admin_session';
export const SESSION_COOKIE_PATH = '/admin';
export const CSRF_COOKIE = 'XSRF-TOKEN';
export const CSRF_HEADER = 'x-xsrf-token';
export const SESSION_TTL_MS = 8 * 60 * 60 * 1000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface StoredSession {
  tokenHash: string;
  orgId: string;
  userId: string;
  createdAt: string;
  /** Absent in sessions opened before CSRF tokens existed: those cannot change anything. */
  csrfToken?: string;
}

export interface SessionActor {
  orgId: string;
  userId: string;
  tokenId: string;
  operator: boolean;
}

export type SessionCheck =
  | { ok: true; actor: SessionActor; csrfToken: string | undefined }
  | { ok: false; status: 401 | 403; code: string; message: string };

export interface DashboardSessions {
  /** Checks `token` and `orgId` as the auth plugin does (valid, a member); throws AppError otherwise. */
  create(token: string, orgId: string): Promise<{ id: string; csrfToken: string; expiresAt: Date; actor: SessionActor }>;
  /** The session named by the request's cookie, re-validated against PostgreSQL. */
  check(request: FastifyRequest): Promise<SessionCheck>;
  destroy(request: FastifyRequest): Promise<void>;
}

export function createDashboardSessions(deps: { coordination: Coordination; prefix: string; tenancy: TenancyStore; ttlMs?: number }): DashboardSessions {
  const ttlMs = deps.ttlMs ?? SESSION_TTL_MS;
  const keyOf = (id: string) => `${deps.prefix}:dashboard:session:${createHash('sha256').update(id).digest('hex')}`;
  const unavailable = () => new AppError('session_store_unavailable', 503, `Sessions are kept in ${deps.coordination.kind === 'redis' ? 'Redis' : 'PostgreSQL'}, which is unreachable`);

  async function read(id: string): Promise<StoredSession | undefined> {
    if (!deps.coordination.available()) throw unavailable();
    const raw = await deps.coordination.getValue(keyOf(id));
    if (!raw) return undefined;
    try {
      return JSON.parse(raw) as StoredSession;
    } catch {
      return undefined;
    }
  }

  return {
    async create(token, orgIdInput) {
      const orgId = UUID.test(orgIdInput.trim()) ? orgIdInput.trim().toLowerCase() : undefined;
      const identity = await deps.tenancy.identify(token, orgId);
      if (!identity || identity.revoked) throw new AppError('unauthorized', 401, 'The token is not valid');
      if (!orgId || !identity.role) throw new AppError('forbidden', 403, 'You are not a member of this organization');
      if (!deps.coordination.available()) throw unavailable();
      const id = randomBytes(32).toString('base64url');
      const csrfToken = randomBytes(32).toString('base64url');
      const stored: StoredSession = { tokenHash: hashToken(token), orgId, userId: identity.userId, createdAt: new Date().toISOString(), csrfToken };
      await deps.coordination.setValue(keyOf(id), JSON.stringify(stored), ttlMs);
      return {
        id,
        csrfToken,
        expiresAt: new Date(Date.now() + ttlMs),
        actor: { orgId, userId: identity.userId, tokenId: identity.tokenId, operator: identity.operator },
      };
    },

    async check(request) {
      const id = sessionIdOf(request);
      if (!id) return { ok: false, status: 401, code: 'unauthorized', message: 'Sign in on /dashboard as a system operator first' };
      const stored = await read(id);
      if (!stored) return { ok: false, status: 401, code: 'unauthorized', message: 'The session has expired or was ended; sign in again on /dashboard' };
      const identity = await deps.tenancy.identifyUncached(stored.tokenHash, stored.orgId);
      if (!identity || identity.revoked || identity.userId !== stored.userId) {
        await deps.coordination.deleteValue(keyOf(id)).catch(() => undefined);
        return { ok: false, status: 401, code: 'unauthorized', message: 'The token this session was opened with is no longer valid' };
      }
      if (!identity.role) return { ok: false, status: 403, code: 'forbidden', message: 'You are no longer a member of this organization' };
      return {
        ok: true,
        actor: { orgId: stored.orgId, userId: stored.userId, tokenId: identity.tokenId, operator: identity.operator },
        csrfToken: stored.csrfToken,
      };
    },

    async destroy(request) {
      const id = sessionIdOf(request);
      if (id && deps.coordination.available()) await deps.coordination.deleteValue(keyOf(id));
    },
  };
}

/** `Set-Cookie` for a new session (Secure when the request came over HTTPS). */
export function sessionCookie(id: string, ttlMs: number, secure: boolean): string {
  return [
    `${SESSION_COOKIE}=${id}`,
    `Path=${SESSION_COOKIE_PATH}`,
    `Max-Age=${Math.floor(ttlMs / 1000)}`,
    'HttpOnly',
    'SameSite=Strict',
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}

/** `Set-Cookie` for the session's CSRF token: readable by the board's scripts (not HttpOnly), same path. */
export function csrfCookie(csrfToken: string, ttlMs: number, secure: boolean): string {
  return [`${CSRF_COOKIE}=${csrfToken}`, `Path=${SESSION_COOKIE_PATH}`, `Max-Age=${Math.floor(ttlMs / 1000)}`, 'SameSite=Strict', ...(secure ? ['Secure'] : [])].join('; ');
}

export function clearedSessionCookies(secure: boolean): string[] {
  const tail = ['SameSite=Strict', ...(secure ? ['Secure'] : [])];
  return [
    [`${SESSION_COOKIE}=`, `Path=${SESSION_COOKIE_PATH}`, 'Max-Age=0', 'HttpOnly', ...tail].join('; '),
    [`${CSRF_COOKIE}=`, `Path=${SESSION_COOKIE_PATH}`, 'Max-Age=0', ...tail].join('; '),
  ];
}

/** Whether the request carries the session's CSRF token in the `X-XSRF-TOKEN` header. */
export function hasCsrfToken(request: FastifyRequest, expected: string | undefined): boolean {
  const sent = request.headers[CSRF_HEADER];
  if (!expected || typeof sent !== 'string') return false;
  const a = Buffer.from(sent);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function sessionIdOf(request: FastifyRequest): string | undefined {
  const header = request.headers.cookie;
  if (typeof header !== 'string') return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== SESSION_COOKIE) continue;
    const value = part.slice(eq + 1).trim();
    // Ours are 43 base64url characters; anything else is not a session id.
    if (/^[A-Za-z0-9_-]{20,100}$/.test(value)) return value;
  }
  return undefined;
}
