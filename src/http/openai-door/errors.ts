import type { FastifyError, FastifyInstance } from 'fastify';
import { AppError } from '../../domain/errors.js';
import { errorAnswer } from '../plugins/errors.js';

/** OpenAI's error shape: what its SDKs and the chat front ends built on them read. */
export interface OpenAiErrorBody {
  error: { message: string; type: string; code: string | null; param: string | null };
}

/** An input error that names the request field at fault (`param`), as OpenAI's do. */
export class OpenAiParamError extends AppError {
  constructor(
    code: string,
    message: string,
    readonly param: string | null,
    statusCode = 400,
  ) {
    super(code, statusCode, message);
    this.name = 'OpenAiParamError';
  }
}

/** OpenAI's `type` for a status; the `code` stays the API's own stable code. */
function typeFor(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 409) return 'conflict_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** OpenAI's own codes where a client may look for them; ours otherwise. */
const CODES: Record<string, string> = { unauthorized: 'invalid_api_key' };

export function openAiError(status: number, code: string, message: string, param: string | null = null): OpenAiErrorBody {
  return { error: { message, type: typeFor(status), code: CODES[code] ?? code, param } };
}

/**
 * The door's scope answers every error in OpenAI's shape (the rest of the API keeps
 * `{error:{code,message}}`): AppErrors keep their status and code, validation errors name the
 * field, server errors are logged and answered without detail.
 */
export function registerOpenAiErrors(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | AppError | Error, request, reply) => {
    const answer = errorAnswer(error, request);
    if (answer.retryAfterSeconds !== undefined) reply.header('retry-after', String(answer.retryAfterSeconds));
    const param = error instanceof OpenAiParamError ? error.param : answer.field ? paramOf(answer.field.path) : null;
    return reply.status(answer.status).serializer(JSON.stringify).send(openAiError(answer.status, answer.code, answer.message, param));
  });
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send(openAiError(404, 'route_not_found', `No route matches ${request.method} on this path`));
  });
}

/** `messages.2.content` as OpenAI names it: `messages[2].content`. */
function paramOf(path: string): string | null {
  if (!path) return null;
  return path.split('.').reduce((param, segment) => (/^\d+$/.test(segment) ? `${param}[${segment}]` : param ? `${param}.${segment}` : segment), '');
}
