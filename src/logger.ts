import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { classifySecurity } from './domain/stages/security/security.service.js';

/**
 * Server logs go to stdout; the CLI logs to stderr so that its stdout stays machine-readable. A
 * stream may be given instead (tests capture every line).
 */
export function createLogger(level: string, destination: 1 | 2 | DestinationStream = 1): Logger {
  const stream = typeof destination === 'number' ? pino.destination({ fd: destination, sync: destination === 2 }) : destination;
  return pino(loggerOptions(level), stream);
}

/**
 * What every logger of the process shares. No line may carry message or document text, titles,
 * tokens or query parameters: errors go through serializeError, requests are logged by method
 * and route only, and fields that hold such values by name are censored wherever they appear.
 */
export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    base: { pid: process.pid },
    serializers: { err: serializeError, error: serializeError, req: serializeRequest, res: serializeResponse },
    redact: {
      paths: [
        'req.headers',
        'headers.authorization',
        'headers.cookie',
        '*.apiKey',
        '*.token',
        '*.tokenHash',
        '*.content',
        '*.title',
        '*.params',
        '*.password',
      ],
      censor: '[redacted]',
    },
    hooks: {
      // pino takes an error's own message as the line's message when none is given, and callers
      // sometimes pass it on; either way it goes out only as serializeError makes it.
      logMethod(args, method) {
        const [first, second] = args as unknown[];
        const error = first instanceof Error ? first : isRecord(first) && first.err instanceof Error ? first.err : undefined;
        if (error && (typeof second !== 'string' || second === error.message)) {
          const rest = typeof second === 'string' ? args.slice(2) : args.slice(1);
          return method.apply(this, [first as object, safeErrorMessage(error), ...rest] as Parameters<typeof method>);
        }
        return method.apply(this, args);
      },
    },
  };
}

interface SerializedError {
  type: string;
  message: string;
  stack?: string;
  code?: string | number;
  [field: string]: unknown;
}

/** Fields of pg's DatabaseError that name schema objects or server internals, never values. */
const PG_FIELDS = ['severity', 'schema', 'table', 'column', 'dataType', 'constraint', 'routine'] as const;
/** Fields of network and HTTP errors that describe the failure, never its payload. */
const PLAIN_FIELDS = ['errno', 'syscall', 'address', 'port', 'status', 'statusCode', 'retryAfterMs', 'permanent'] as const;
const MAX_MESSAGE = 500;
const MAX_DEPTH = 3;

/**
 * An error as it may be logged: type, code, a message stripped of values, stack frames and the
 * same for its cause. Everything else an error carries is dropped — Drizzle's `query` and
 * `params`, pg's `detail` (the failing row, the key's value), `where` (a parameter's text, a JSON
 * excerpt), `hint`, `internalQuery`, an HTTP client's response body — because those are where
 * message text and secrets travel.
 */
export function serializeError(value: unknown, depth = 0): SerializedError {
  if (!isRecord(value)) return { type: typeof value, message: typeof value === 'string' ? scrub(value) : String(value) };
  const type = value instanceof Error ? value.constructor.name : 'Object';
  const message = safeErrorMessage(value);
  const out: SerializedError = { type, message };
  if (typeof value.code === 'string' || typeof value.code === 'number') out.code = value.code;
  for (const field of isPgError(value) ? [...PG_FIELDS, ...PLAIN_FIELDS] : PLAIN_FIELDS) {
    const v = value[field];
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[field] = typeof v === 'string' ? v.slice(0, 200) : v;
  }
  if (typeof value.stack === 'string') {
    const frames = value.stack.split('\n').filter((line) => /^\s+at /.test(line));
    out.stack = [`${type}: ${message}`, ...frames].join('\n');
  }
  if (depth < MAX_DEPTH && value.cause !== undefined) out.cause = serializeError(value.cause, depth + 1);
  if (depth < MAX_DEPTH && Array.isArray(value.errors)) out.errors = value.errors.slice(0, 5).map((e: unknown) => serializeError(e, depth + 1));
  return out;
}

/** An error's message without the values it may quote (also what is stored and shown of an unexpected failure). */
export function safeErrorMessage(error: unknown): string {
  if (!isRecord(error)) return typeof error === 'string' ? scrub(error) : 'unknown error';
  const raw = typeof error.message === 'string' ? error.message : '';
  if (isDrizzleQueryError(error)) {
    // "Failed query: <sql>\nparams: <every bound value>": the statement is ours, the values are not.
    const statement = raw.split('\n')[0]!.slice(0, 200);
    return statement;
  }
  if (isPgError(error) && VALUE_QUOTING_CLASSES.has(String(error.code).slice(0, 2))) {
    // e.g. invalid input syntax for type uuid: "<the value>"
    return scrub(raw.replace(/"[^"]*"|'[^']*'/g, '"…"'));
  }
  return scrub(raw);
}

/** SQLSTATE classes whose messages quote the offending value: data exceptions, integrity violations, PL/pgSQL raises. */
const VALUE_QUOTING_CLASSES = new Set(['22', '23', 'P0', '2F', '38', '39']);

/** Secrets that reach a message anyway (a provider echoing input, a value in our own text) are replaced by their kind. */
function scrub(text: string): string {
  const bounded = text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE)}…` : text;
  return classifySecurity(bounded).redactedContent;
}

function isPgError(error: Record<string, unknown>): boolean {
  return typeof error.severity === 'string' && typeof error.code === 'string' && /^[0-9A-Z]{5}$/.test(error.code);
}

function isDrizzleQueryError(error: Record<string, unknown>): boolean {
  return (error instanceof Error && error.constructor.name === 'DrizzleQueryError') || (typeof error.query === 'string' && Array.isArray(error.params));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

interface RequestLike {
  method?: string;
  url?: string;
  ip?: string;
  routeOptions?: { url?: string };
}

/**
 * A request by method and route: the route's pattern (`/api/v1/documents/:documentId`) when one
 * matched, otherwise the path with every segment that does not look like a route's static word
 * replaced, since a path can carry anything a client typed (a key, a card number). The query
 * string (cursors, filters) and headers stay out.
 */
export function serializeRequest(request: RequestLike): Record<string, unknown> {
  const route = request.routeOptions?.url;
  return {
    method: request.method,
    url: route ?? (typeof request.url === 'string' ? redactPath(request.url) : undefined),
    remoteAddress: request.ip,
  };
}

/** Route words are short, lower-case and spelled with letters and hyphens (`v1` aside); an id, a key or a number is not one. */
const STATIC_SEGMENT = /^(?:[a-z][a-z-]{0,31}|v\d{1,2})$/;

/** A path as it may be logged or shown: the query string dropped, every segment that is not a plain word replaced by `:param`. */
export function redactPath(url: string): string {
  const path = url.split('?')[0]!.slice(0, 2_000);
  return path
    .split('/')
    .map((segment) => (segment === '' || STATIC_SEGMENT.test(segment) ? segment : ':param'))
    .join('/');
}

export function serializeResponse(reply: { statusCode?: number }): Record<string, unknown> {
  return { statusCode: reply.statusCode };
}
