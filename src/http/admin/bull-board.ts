import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { body } from '../plugins/errors.js';
import { clearedSessionCookies, hasCsrfToken, type DashboardSessions, type SessionCheck } from '../dashboard/sessions.js';

export const BULL_BOARD_PATH = '/admin/queues';

/**
 * Bull Board at /admin/queues, for system operators only: it shows and changes every tenant's
 * queues. A browser navigating there cannot send the Bearer header, so the dashboard opens a
 * session (POST /dashboard/session) whose cookie is checked here on every request: no valid
 * session → 401 JSON, or a redirect to /dashboard for a page navigation; a session whose user is
 * not (or no longer) an operator → 403 `operator_required`. A state-changing call (anything but
 * GET/HEAD: pause, add, retry, clean, obliterate, …) must also carry the session's CSRF token in
 * `X-XSRF-TOKEN`, as the board's own client does (403 `csrf_token_invalid` otherwise). Its routes
 * are hidden from the OpenAPI document. `DELETE /admin/session` ends the session; it takes no CSRF
 * token (the dashboard page that signs out cannot read the /admin-scoped CSRF cookie): the
 * SameSite=Strict session cookie keeps other sites from triggering it, and at worst a same-site
 * page could sign an operator out.
 */
export async function registerBullBoard(app: FastifyInstance, deps: { queues: Record<string, Queue>; sessions: DashboardSessions }): Promise<void> {
  await app.register(async (admin) => {
    admin.delete('/admin/session', { config: { public: true }, schema: { hide: true } }, async (request, reply) => {
      await deps.sessions.destroy(request);
      return reply.status(204).header('set-cookie', clearedSessionCookies(request.protocol === 'https')).send();
    });

    await admin.register(async (board) => {
      board.addHook('onRequest', async (request, reply) => {
        reply.header('x-frame-options', 'DENY').header('referrer-policy', 'no-referrer').header('cache-control', 'no-store');
        let check: SessionCheck;
        try {
          check = await deps.sessions.check(request);
        } catch (error) {
          return deny(request, reply, 503, 'session_store_unavailable', error instanceof Error ? error.message : 'Sessions are unavailable');
        }
        if (!check.ok) return deny(request, reply, check.status, check.code, check.message);
        if (!check.actor.operator) return deny(request, reply, 403, 'operator_required', 'Bull Board is for system operators only');
        if (request.method !== 'GET' && request.method !== 'HEAD' && !hasCsrfToken(request, check.csrfToken)) {
          return deny(request, reply, 403, 'csrf_token_invalid', 'A change needs the session\'s CSRF token in the X-XSRF-TOKEN header (Bull Board\'s own page sends it)');
        }
        request.log.debug({ userId: check.actor.userId, orgId: check.actor.orgId }, 'bull board request');
      });

      const serverAdapter = new FastifyAdapter();
      serverAdapter.setBasePath(BULL_BOARD_PATH);
      createBullBoard({
        queues: Object.values(deps.queues).map((queue) => new BullMQAdapter(queue)),
        serverAdapter,
        options: {
          uiConfig: { boardTitle: 'honeyjar queues', hideDocsLink: true, miscLinks: [{ text: 'Dashboard', url: '/dashboard' }] },
        },
      });
      await board.register(serverAdapter.registerPlugin(), { prefix: BULL_BOARD_PATH });
    });
  });
}

function deny(request: FastifyRequest, reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  const navigation = request.method === 'GET' && /\btext\/html\b/.test(String(request.headers.accept ?? ''));
  if (navigation && status !== 503) {
    // A person who opened the link without (or with an expired) session: back to the sign-in.
    return reply.redirect(`/dashboard?bullBoard=${status === 403 ? 'forbidden' : 'signin'}`, 303);
  }
  return reply.status(status).send(body(code, message));
}
