import type { App } from '../../types.js';
import type { OrganizationSettingsService } from '../../../domain/chat/multitask.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses } from '../../schemas/common.js';
import { OrganizationSettingsSchema } from './organization-settings.schema.js';

/** The caller's organization's settings; every member may read them (they govern its own messages). */
export function registerGetOrganizationSettings(app: App, settings: OrganizationSettingsService): void {
  app.get(
    '/organization/settings',
    {
      schema: {
        tags: ['account'],
        summary: "The organization's settings: the default multitaskStrategy (double texting)",
        response: { 200: OrganizationSettingsSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store');
      return settings.get(actorOf(request).orgId);
    },
  );
}
