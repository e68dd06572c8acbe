import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { csrfCookie, sessionCookie, SESSION_TTL_MS, type DashboardSessions } from './sessions.js';

const Body = Type.Object(
  { token: Type.String({ minLength: 1, maxLength: 500 }), orgId: Type.String({ minLength: 1, maxLength: 100 }) },
  { additionalProperties: false },
);

/**
 * Opens a browser session for Bull Board: the token and organization are checked as the auth
 * plugin checks them (valid, not revoked, a member). Bull Board itself then answers system
 * operators only (403 for anyone else). Answers with an HttpOnly, SameSite=Strict cookie limited
 * to /admin that carries an opaque id only, and the session's CSRF token in a cookie the board's
 * scripts read.
 */
export function registerCreateDashboardSession(app: FastifyInstance, sessions: DashboardSessions): void {
  app.post(
    '/dashboard/session',
    { config: { public: true }, bodyLimit: 4096, schema: { hide: true, body: Body } },
    async (request, reply) => {
      const { token, orgId } = request.body as Static<typeof Body>;
      const session = await sessions.create(token, orgId);
      const secure = request.protocol === 'https';
      return reply
        .status(201)
        .header('set-cookie', [sessionCookie(session.id, SESSION_TTL_MS, secure), csrfCookie(session.csrfToken, SESSION_TTL_MS, secure)])
        .header('cache-control', 'no-store')
        .send({
          bullBoard: '/admin/queues',
          expiresAt: session.expiresAt.toISOString(),
          orgId: session.actor.orgId,
          userId: session.actor.userId,
          operator: session.actor.operator,
        });
    },
  );
}
