import { createHash } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { AppError } from '../../domain/errors.js';
import type { Idempotency } from '../../domain/chat/chat.service.js';

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
      tracking: Type.Object({
        batchId: Type.String(),
        threadId: Type.String(),
        estimatedCompletion: Type.String({
          description:
            "When the reply is expected: the measured service time plus the runs served before it (its organization's turn among the organizations with open runs, by weight, under fairness; every run ahead without it) at the measured drain rate, times the measured ratio of actual to estimated wait of recently finished runs",
        }),
        queuePosition: Type.Object(
          {
            organization: Type.Integer({ description: "Open runs of the caller's organization accepted before this message" }),
            overall: Type.Integer({ description: 'Open runs of every organization accepted before this message' }),
          },
          { description: 'Runs accepted before this message and not finished (being processed or waiting), counted at most BACKLOG_REFRESH_MS ago' },
        ),
        interrupted: Type.Optional(Type.Array(Type.String(), { description: 'Batches of the thread this message cancelled (multitaskStrategy interrupt)' })),
      }),
    }),
  },
  { additionalProperties: true },
);

export const IDEMPOTENCY_KEY_MAX = 255;

/**
 * The request's Idempotency-Key (1–255 visible ASCII characters, 400 otherwise) and the request's
 * fingerprint: a SHA-256 of the method, the route, its path parameters and the body with keys in
 * a canonical order. The same key with another fingerprint is refused (422).
 */
export function idempotencyOf(request: FastifyRequest): Idempotency | undefined {
  const value = request.headers['idempotency-key'];
  if (value === undefined) return undefined;
  const key = Array.isArray(value) ? (value.length === 1 ? value[0] : undefined) : value;
  if (!key || key.length > IDEMPOTENCY_KEY_MAX || !/^[\x21-\x7e]+$/.test(key)) {
    throw new AppError('invalid_request', 400, `headers.idempotency-key must be 1–${IDEMPOTENCY_KEY_MAX} visible ASCII characters`);
  }
  const route = `${request.method} ${request.routeOptions.url ?? request.url.split('?')[0]}`;
  const fingerprint = createHash('sha256')
    .update(canonicalJson({ route, params: request.params ?? null, body: request.body ?? null }))
    .digest('hex');
  return { key, fingerprint };
}

/** JSON with object keys sorted at every depth, so that equal requests hash alike. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
