import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { AlertsStore } from '../../../domain/monitoring/alerts-store.js';
import { requireAdminOrOperator } from '../../plugins/auth.js';
import { errorResponses } from '../../schemas/common.js';
import { AlertSchema, toAlert } from './alert.schema.js';

const Summary = Type.Object({
  open: Type.Integer(),
  acknowledged: Type.Integer({ description: 'open and acknowledged' }),
  unacknowledged: Type.Integer({ description: 'open and not acknowledged' }),
  critical: Type.Integer({ description: 'open and critical' }),
  warning: Type.Integer({ description: 'open and warning' }),
  resolved: Type.Integer(),
});

/**
 * Operational alerts, system-wide (no tenant content): organization admins and operators may list
 * them (they tell an admin why the service is slow); only operators acknowledge them.
 */
export function registerListAlerts(app: App, alerts: AlertsStore): void {
  app.get(
    '/system/alerts',
    {
      schema: {
        tags: ['system'],
        summary: 'Alerts raised by the evaluator, newest activity first (organization admins and operators)',
        querystring: Type.Object(
          {
            acknowledged: Type.Optional(Type.Boolean()),
            status: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('resolved')])),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ alerts: Type.Array(AlertSchema), summary: Summary }), ...errorResponses },
      },
    },
    async (request) => {
      const actor = requireAdminOrOperator(request);
      const { acknowledged, status, limit } = request.query;
      const [rows, summary] = await Promise.all([
        alerts.list({ limit: limit ?? 50, ...(status ? { status } : {}), ...(acknowledged !== undefined ? { acknowledged } : {}) }),
        alerts.summary(),
      ]);
      const acknowledgements = await alerts.acknowledgementsOf(rows.filter((alert) => alert.acknowledgedAt !== null).map((alert) => alert.id));
      return { alerts: rows.map((alert) => toAlert(alert, actor, acknowledgements)), summary };
    },
  );
}
