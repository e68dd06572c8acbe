import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, InvalidCursorError, isDatabaseUnavailable } from '../../domain/errors.js';

export interface ErrorBody {
  error: { code: string; message: string };
}

const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
};

/** Seconds a client is asked to wait when PostgreSQL is unreachable. */
export const DATABASE_RETRY_AFTER_SECONDS = 5;

/**
 * One place turns every error into `{error:{code,message}}`. Client errors keep their message;
 * server errors are logged (through the logger's error serializer, which strips values) and
 * answered with a generic message, never a stack or SQL. PostgreSQL being unreachable is a 503
 * with Retry-After, on every route.
 */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | AppError | Error, request, reply) => {
    const answer = errorAnswer(error, request);
    if (answer.retryAfterSeconds !== undefined) reply.header('retry-after', String(answer.retryAfterSeconds));
    // Not a route's own 503 schema (the detailed health check has one): this is the error shape.
    if (answer.code === 'database_unavailable') reply.serializer(JSON.stringify);
    return reply.status(answer.status).send(body(answer.code, answer.message));
  });

  // The path is not repeated: it may carry whatever a client put there (a key, a card number).
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send(body('route_not_found', `No route matches ${request.method} on this path`));
  });
}

/** What an error is answered with, whatever the shape it is rendered in. */
export interface ErrorAnswer {
  status: number;
  code: string;
  message: string;
  retryAfterSeconds?: number;
  /** The field at fault, for a validation error. */
  field?: { where: string; path: string };
}

/**
 * Client errors keep their message; server errors are logged (through the logger's error
 * serializer, which strips values) and answered with a generic message.
 */
export function errorAnswer(error: FastifyError | AppError | Error, request: FastifyRequest): ErrorAnswer {
  if (error instanceof AppError) {
    // Errors that know when to come back (a cap, a quota window) say so.
    const retryAfter = (error as AppError & { retryAfterSeconds?: unknown }).retryAfterSeconds;
    return { status: error.statusCode, code: error.code, message: error.message, ...(typeof retryAfter === 'number' ? { retryAfterSeconds: Math.max(1, Math.ceil(retryAfter)) } : {}) };
  }
  if (error instanceof InvalidCursorError) return { status: 400, code: 'invalid_cursor', message: 'The cursor is not valid' };
  const fastifyError = error as FastifyError;
  if (fastifyError.validation) return { status: 400, code: 'invalid_request', message: validationMessage(fastifyError), field: validationField(fastifyError) };
  if (error instanceof SyntaxError || fastifyError.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return { status: 400, code: 'invalid_json', message: 'The request body is not valid JSON' };
  }
  const status = fastifyError.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    const code = (fastifyError.code && FASTIFY_CODES[fastifyError.code]) ?? (status === 413 ? 'payload_too_large' : 'bad_request');
    return { status, code, message: fastifyError.message };
  }
  if (isDatabaseUnavailable(error)) {
    request.log.warn({ err: error }, 'request failed: database unavailable');
    return { status: 503, code: 'database_unavailable', message: 'The database is unreachable; try again shortly', retryAfterSeconds: DATABASE_RETRY_AFTER_SECONDS };
  }
  request.log.error({ err: error }, 'request failed');
  return { status: 500, code: 'internal_error', message: 'An internal error occurred' };
}

/**
 * Errors Fastify raises while routing, before any hook or handler (a path that is not valid
 * percent-encoding, a path parameter over the length limit): the API's error shape, without
 * Fastify's own echo of the path.
 */
export function answerFrameworkError(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  if (error.code === 'FST_ERR_BAD_URL') {
    reply.status(400).send(body('invalid_request', 'The path is not valid percent-encoded UTF-8'));
    return;
  }
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    reply.status(414).send(body('uri_too_long', 'A path parameter is longer than the server accepts'));
    return;
  }
  reply.log.error({ err: error }, 'request failed while routing');
  reply.status(500).send(body('internal_error', 'An internal error occurred'));
}

export function body(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

function validationMessage(error: FastifyError): string {
  const first = error.validation?.[0];
  if (!first) return error.message;
  const { where, path } = validationField(error);
  return `${where}${path ? `.${path}` : ''} ${first.message ?? 'is invalid'}`;
}

/** Where the first validation error is: `body` and `messages.2.content`. */
function validationField(error: FastifyError): { where: string; path: string } {
  const first = error.validation?.[0];
  const where = error.validationContext ?? 'body';
  const path = first?.instancePath ? first.instancePath.replace(/^\//, '').replace(/\//g, '.') : '';
  const missing = (first?.params as { missingProperty?: string } | undefined)?.missingProperty;
  return { where, path: missing ?? path };
}
