import type { App } from '../../types.js';
import type { AlertsRepository } from '../../../db/repositories/alerts.repository.js';
import { notFound } from '../../../domain/errors.js';
import { requireAdmin } from '../../plugins/auth.js';
import { errorResponses, IdParams, requireId } from '../../schemas/common.js';
import { AlertSchema, toAlert } from './alert.schema.js';

/** Records who acknowledged an alert and when; the first acknowledgement is kept (idempotent). */
export function registerAcknowledgeAlert(app: App, alerts: AlertsRepository): void {
  app.post(
    '/system/alerts/:alertId/acknowledge',
    {
      schema: {
        tags: ['system'],
        summary: 'Acknowledge an alert (organization admins); acknowledging again keeps the first acknowledgement',
        params: IdParams('alertId'),
        response: { 200: AlertSchema, ...errorResponses },
      },
    },
    async (request) => {
      const actor = requireAdmin(request);
      const { alertId } = request.params as { alertId: string };
      const result = await alerts.acknowledge(requireId(alertId, 'Alert'), actor.userId, actor.orgId);
      if (!result) throw notFound('Alert');
      return toAlert(result.alert, actor.orgId);
    },
  );
}
