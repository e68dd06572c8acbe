import { Type } from '@sinclair/typebox';

const JobRef = Type.Object({ id: Type.String(), queue: Type.String() });

/** The 202 answer of the queued endpoints. */
export const AcceptedSchema = Type.Object(
  {
    status: Type.Literal('accepted'),
    message: Type.String(),
    degraded: Type.Optional(Type.Boolean({ description: 'true when processed in-process because the queues are unreachable' })),
    data: Type.Object({
      immediate: Type.Object({ messageId: Type.String(), status: Type.Literal('processing'), timestamp: Type.String() }),
      jobs: Type.Record(Type.String(), JobRef),
      tracking: Type.Object({ batchId: Type.String(), threadId: Type.String(), estimatedCompletion: Type.String() }),
    }),
  },
  { additionalProperties: true },
);

/** An optional Idempotency-Key: printable, bounded. */
export function idempotencyKeyOf(headers: Record<string, string | string[] | undefined>): string | undefined {
  const value = headers['idempotency-key'];
  if (value === undefined) return undefined;
  const key = Array.isArray(value) ? value[0] : value;
  if (!key || key.length > 200 || !/^[\x21-\x7e]+$/.test(key)) return 'invalid';
  return key;
}
