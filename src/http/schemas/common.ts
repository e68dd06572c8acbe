import { TIME_RANGES, type TimeRange } from '../../domain/monitoring/stage-stats.js';
import { Type, type Static } from '@sinclair/typebox';
import { notFound } from '../../domain/errors.js';

export const ErrorResponse = Type.Object(
  { error: Type.Object({ code: Type.String(), message: Type.String() }) },
  { $id: 'ErrorResponse', description: 'Every error has this shape; `code` is stable.' },
);

export const errorResponses = {
  400: Type.Ref('ErrorResponse'),
  401: Type.Ref('ErrorResponse'),
  403: Type.Ref('ErrorResponse'),
  404: Type.Ref('ErrorResponse'),
};

export const PageQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
    cursor: Type.Optional(Type.String({ maxLength: 500 })),
  },
  { additionalProperties: false },
);
export type PageQuery = Static<typeof PageQuery>;

/** `?timeRange=`: how far back windowed figures look. */
export function timeRangeQuery(description: string) {
  return Type.Object(
    {
      timeRange: Type.Optional(
        Type.Union(
          (Object.keys(TIME_RANGES) as TimeRange[]).map((range) => Type.Literal(range)),
          { default: '1h', description: `${description}: 5m, 15m, 1h, 6h or 24h` },
        ),
      ),
    },
    { additionalProperties: false },
  );
}

export const IdParams = (name: string) => Type.Object({ [name]: Type.String({ maxLength: 100 }) });

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An id that is not even well-formed names nothing: 404, like an id of another organization. */
export function requireId(value: string, what: string): string {
  if (!UUID.test(value)) throw notFound(what);
  return value.toLowerCase();
}

export const AuthHeaders = Type.Object({
  authorization: Type.Optional(Type.String({ description: 'Bearer <token>' })),
  'x-organization-id': Type.Optional(Type.String({ description: 'The organization the request acts in' })),
});
