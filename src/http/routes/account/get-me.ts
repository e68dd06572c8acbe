import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses } from '../../schemas/common.js';

const Me = Type.Object({
  userId: Type.String(),
  orgId: Type.String(),
  role: Type.Union([Type.Literal('admin'), Type.Literal('member')]),
  operator: Type.Boolean({ description: 'A system operator: Bull Board, process details, system-wide figures, acknowledging alerts' }),
});

/** Who the caller is in the organization it names: what a client (the dashboard) may offer it. */
export function registerGetMe(app: App): void {
  app.get(
    '/me',
    { schema: { tags: ['account'], summary: 'The caller: user, organization, role and whether it is a system operator', response: { 200: Me, ...errorResponses } } },
    async (request, reply) => {
      const { userId, orgId, role, operator } = actorOf(request);
      reply.header('cache-control', 'no-store');
      return { userId, orgId, role, operator };
    },
  );
}
