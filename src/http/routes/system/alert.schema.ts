import { Type } from '@sinclair/typebox';
import type { AlertRecord } from '../../../db/repositories/alerts.repository.js';
import { ALERT_RULES } from '../../../domain/monitoring/alert-rules.js';

const Timestamp = Type.String({ format: 'date-time' });
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);

export const AlertSchema = Type.Object({
  id: Type.String(),
  rule: Type.String({ description: `One of ${ALERT_RULES.join(', ')}` }),
  subject: Type.String({ description: 'A queue name, `postgres`, `redis` or a provider' }),
  severity: Type.Union([Type.Literal('warning'), Type.Literal('critical')]),
  status: Type.Union([Type.Literal('open'), Type.Literal('resolved')]),
  message: Type.String(),
  value: Type.Number(),
  threshold: Type.Number(),
  firstSeenAt: Timestamp,
  lastSeenAt: Timestamp,
  resolvedAt: Nullable(Timestamp),
  acknowledged: Type.Boolean(),
  acknowledgedAt: Nullable(Timestamp),
  acknowledgedBy: Nullable(Type.String({ description: "The user who acknowledged it; null when nobody did, or someone of another organization did" })),
});

/**
 * Alerts are system-wide, seen by the admins of every organization; who acknowledged one is shown
 * only to the acknowledger's own organization (a user id of another tenant is not theirs to see).
 */
export function toAlert(alert: AlertRecord, viewerOrgId: string) {
  return {
    id: alert.id,
    rule: alert.rule,
    subject: alert.subject,
    severity: alert.severity,
    status: alert.status,
    message: alert.message,
    value: alert.value,
    threshold: alert.threshold,
    firstSeenAt: alert.firstSeenAt.toISOString(),
    lastSeenAt: alert.lastSeenAt.toISOString(),
    resolvedAt: alert.resolvedAt?.toISOString() ?? null,
    acknowledged: alert.acknowledgedAt !== null,
    acknowledgedAt: alert.acknowledgedAt?.toISOString() ?? null,
    acknowledgedBy: alert.acknowledgedOrg === viewerOrgId ? alert.acknowledgedBy : null,
  };
}
