import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../../domain/errors.js';
import type { MembershipRole, TenancyStore } from '../../domain/tenancy/tenancy-store.js';

export interface RequestActor {
  orgId: string;
  userId: string;
  role: MembershipRole;
  tokenId: string;
  /** A system operator: may use the system-wide surfaces; tenant data stays scoped by orgId. */
  operator: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    actor: RequestActor | null;
    /** Set when the request was authorised by a stream ticket: the one batch or thread it opens. */
    streamGrant: { runId: string | null; threadId: string | null } | null;
  }
  interface FastifyContextConfig {
    /** Routes that answer without credentials (health checks). */
    public?: boolean;
    /** Event streams: a `?ticket=` (see POST /chat/stream-tickets) may stand in for the token. */
    streamTicket?: boolean;
  }
}

/** Redeems a stream ticket (once); undefined when it is unknown, used or expired. */
export type RedeemTicket = (ticket: string) => Promise<{ orgId: string; userId: string; runId: string | null; threadId: string | null } | undefined>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TOUCH_EVERY_MS = 60_000;

export interface AuthOptions {
  /**
   * Without `x-organization-id`, act in the user's only organization (one more query); a user of
   * several is refused (403 `organization_required`). For clients that cannot add a header.
   */
  onlyOrganizationByDefault?: boolean;
  /** Event streams: redeems a `?ticket=` that stands in for the token (routes with `streamTicket`). */
  redeemTicket?: RedeemTicket;
}

/**
 * Every request in the scope needs `Authorization: Bearer <token>` (401 otherwise) and an
 * `x-organization-id` the token's user belongs to (403 otherwise). One query per request.
 */
export function registerAuth(app: FastifyInstance, tenancy: TenancyStore, options: AuthOptions = {}): void {
  const lastTouched = new Map<string, number>();
  app.decorateRequest('actor', null);
  app.decorateRequest('streamGrant', null);
  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.config.public) return;
    const ticket = (request.query as { ticket?: unknown } | undefined)?.ticket;
    if (request.routeOptions.config.streamTicket && options.redeemTicket && typeof ticket === 'string' && request.headers.authorization === undefined) {
      const grant = await options.redeemTicket(ticket);
      if (!grant) throw new AppError('unauthorized', 401, 'The stream ticket is not valid (unknown, used or expired)');
      // A ticket reads one stream: the least a member may do.
      request.actor = { orgId: grant.orgId, userId: grant.userId, role: 'member', tokenId: 'stream-ticket', operator: false };
      request.streamGrant = { runId: grant.runId, threadId: grant.threadId };
      return;
    }
    const token = bearerToken(request);
    const orgHeader = request.headers['x-organization-id'];
    const orgId = typeof orgHeader === 'string' && UUID.test(orgHeader.trim()) ? orgHeader.trim().toLowerCase() : undefined;
    const identity = await tenancy.identify(token, orgId);
    if (!identity || identity.revoked) throw new AppError('unauthorized', 401, 'The token is not valid');
    const member = orgHeader === undefined && options.onlyOrganizationByDefault ? await onlyOrganization(tenancy, identity.userId) : membership(orgHeader, orgId, identity.role);
    request.actor = { orgId: member.orgId, userId: identity.userId, role: member.role, tokenId: identity.tokenId, operator: identity.operator };
    const now = Date.now();
    if ((lastTouched.get(identity.tokenId) ?? 0) + TOUCH_EVERY_MS < now) {
      lastTouched.set(identity.tokenId, now);
      tenancy.touchToken(identity.tokenId).catch((err: unknown) => request.log.warn({ err }, 'could not record token use'));
    }
  });
}

function membership(orgHeader: unknown, orgId: string | undefined, role: MembershipRole | null): { orgId: string; role: MembershipRole } {
  if (orgHeader === undefined) throw new AppError('organization_required', 403, 'The x-organization-id header is required');
  if (!orgId || !role) throw new AppError('forbidden', 403, 'You are not a member of this organization');
  return { orgId, role };
}

async function onlyOrganization(tenancy: TenancyStore, userId: string): Promise<{ orgId: string; role: MembershipRole }> {
  const [only, another] = await tenancy.organizationsOf(userId, 2);
  if (!only || another) {
    throw new AppError('organization_required', 403, 'The x-organization-id header is required: this user does not belong to exactly one organization');
  }
  return only;
}

function bearerToken(request: FastifyRequest): string {
  const header = request.headers.authorization;
  const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (!match?.[1]) throw new AppError('unauthorized', 401, 'Authorization: Bearer <token> is required');
  return match[1];
}

/** The caller of an authenticated route. */
export function actorOf(request: FastifyRequest): RequestActor {
  if (!request.actor) throw new AppError('unauthorized', 401, 'Authorization: Bearer <token> is required');
  return request.actor;
}

export function requireAdmin(request: FastifyRequest): RequestActor {
  const actor = actorOf(request);
  if (actor.role !== 'admin') throw new AppError('forbidden', 403, 'This needs an organization admin');
  return actor;
}

/** System-wide surfaces (process details, every tenant's queues, system alerts): operators only. */
export function requireOperator(request: FastifyRequest): RequestActor {
  const actor = actorOf(request);
  if (!actor.operator) throw new AppError('operator_required', 403, 'This needs a system operator');
  return actor;
}

/** Organization admins, and operators whatever their role in the organization they name. */
export function requireAdminOrOperator(request: FastifyRequest): RequestActor {
  const actor = actorOf(request);
  if (actor.role !== 'admin' && !actor.operator) throw new AppError('forbidden', 403, 'This needs an organization admin');
  return actor;
}
