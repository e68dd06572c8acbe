import { Type } from '@sinclair/typebox';
import type { AlertAcknowledgement, AlertRecord } from '../../../domain/monitoring/alerts-store.js';
import type { RequestActor } from '../../plugins/auth.js';
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
  acknowledgedBy: Nullable(Type.String({ description: 'The first user who acknowledged it; null when nobody did, or (for a non-operator) someone of another organization did' })),
  acknowledgements: Type.Array(
    Type.Object({
      userId: Nullable(Type.String()),
      orgId: Nullable(Type.String()),
      at: Timestamp,
    }),
    { description: "Every acknowledgement, oldest first; ids of another organization's users are null unless the caller is an operator" },
  ),
});

/**
 * Alerts are system-wide (no tenant content), seen by the admins of every organization; who
 * acknowledged one is shown to operators and to the acknowledger's own organization only (a user
 * id of another tenant is not theirs to see).
 */
export function toAlert(alert: AlertRecord, viewer: Pick<RequestActor, 'orgId' | 'operator'>, acknowledgements: AlertAcknowledgement[]) {
  const visible = (orgId: string | null) => viewer.operator || (orgId !== null && orgId === viewer.orgId);
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
    acknowledgedBy: visible(alert.acknowledgedOrg) ? alert.acknowledgedBy : null,
    acknowledgements: acknowledgements
      .filter((ack) => ack.alertId === alert.id)
      .map((ack) => (visible(ack.orgId) ? { userId: ack.userId, orgId: ack.orgId, at: ack.at.toISOString() } : { userId: null, orgId: null, at: ack.at.toISOString() })),
  };
}
