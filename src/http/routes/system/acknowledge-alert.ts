import type { App } from '../../types.js';
import type { AlertsStore } from '../../../domain/monitoring/alerts-store.js';
import { notFound } from '../../../domain/errors.js';
import { requireOperator } from '../../plugins/auth.js';
import { errorResponses, IdParams, requireId } from '../../schemas/common.js';
import { AlertSchema, toAlert } from './alert.schema.js';

/**
 * System operators acknowledge alerts (they are system-wide). Each acknowledgement is recorded;
 * the alert keeps the first as `acknowledgedBy`/`acknowledgedAt` and lists them all.
 */
export function registerAcknowledgeAlert(app: App, alerts: AlertsStore): void {
  app.post(
    '/system/alerts/:alertId/acknowledge',
    {
      schema: {
        tags: ['system'],
        summary: 'Acknowledge an alert (system operators); each acknowledgement is recorded, the first is kept as the alert\'s',
        params: IdParams('alertId'),
        response: { 200: AlertSchema, ...errorResponses },
      },
    },
    async (request) => {
      const actor = requireOperator(request);
      const { alertId } = request.params as { alertId: string };
      const result = await alerts.acknowledge(requireId(alertId, 'Alert'), actor.userId, actor.orgId);
      if (!result) throw notFound('Alert');
      return toAlert(result.alert, actor, await alerts.acknowledgementsOf([result.alert.id]));
    },
  );
}
