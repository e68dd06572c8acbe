import { Type } from '@sinclair/typebox';
import { AppError } from '../../domain/errors.js';

/**
 * A message's text: required and not blank. Its limit, 32 KiB of UTF-8, is checked in bytes by
 * checkContentSize (413); the route's body limit bounds what is parsed at all.
 */
export const MessageContent = Type.String({ minLength: 1, pattern: '\\S' });

export function checkContentSize(content: string, maxBytes: number): string {
  if (Buffer.byteLength(content, 'utf8') > maxBytes) {
    throw new AppError('content_too_large', 413, `content is larger than ${maxBytes} bytes`);
  }
  return content;
}

export const BatchDocumentSchema = Type.Object(
  {
    batchId: Type.String(),
    status: Type.Union([
      Type.Literal('processing'),
      Type.Literal('partial'),
      Type.Literal('completed'),
      Type.Literal('failed'),
      Type.Literal('cancelled'),
    ]),
    results: Type.Record(Type.String(), Type.Unknown()),
    completedJobs: Type.Integer(),
    totalJobs: Type.Integer(),
    jobs: Type.Record(Type.String(), Type.Unknown()),
    errors: Type.Optional(Type.Array(Type.Object({ stage: Type.String(), jobId: Type.Optional(Type.String()), code: Type.String(), message: Type.String(), attempts: Type.Optional(Type.Integer()) }))),
    createdAt: Type.String(),
    finishedAt: Type.Union([Type.String(), Type.Null()]),
    events: Type.Optional(
      Type.Array(Type.Object({ runId: Type.String(), seq: Type.Integer(), type: Type.String(), at: Type.String() }, { additionalProperties: true }), {
        description: 'With `?after=`: the run\'s events after that seq (see GET /batch/:batchId/events for their grammar)',
      }),
    ),
    eventCursor: Type.Optional(Type.Integer({ description: 'With `?after=`: the seq of the last event listed, to give as `after` next time' })),
  },
  { additionalProperties: true },
);
