import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { OrganizationSettingsService } from '../../../domain/chat/multitask.js';
import { requireAdmin } from '../../plugins/auth.js';
import { errorResponses } from '../../schemas/common.js';
import { MultitaskStrategySchema } from '../../schemas/chat.js';
import { OrganizationSettingsSchema } from './organization-settings.schema.js';

/**
 * Changes the organization's settings (organization admins). A new default holds at once in this
 * process and within a second in the others.
 */
export function registerUpdateOrganizationSettings(app: App, settings: OrganizationSettingsService): void {
  app.patch(
    '/organization/settings',
    {
      schema: {
        tags: ['account'],
        summary: "Change the organization's default multitaskStrategy (organization admins)",
        body: Type.Object({ multitaskStrategy: Type.Optional(MultitaskStrategySchema) }, { additionalProperties: false }),
        response: { 200: OrganizationSettingsSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const actor = requireAdmin(request);
      reply.header('cache-control', 'no-store');
      return settings.update(actor.orgId, request.body.multitaskStrategy ? { multitaskStrategy: request.body.multitaskStrategy } : {});
    },
  );
}
