/**
 * Errors that domain code raises. The HTTP edge renders an AppError as
 * `{error:{code,message}}` with its status; anything else becomes a 500 with no detail.
 */
export class AppError extends Error {
  constructor(
    readonly code: string,
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

/** A page cursor that is not one the server wrote (forged, truncated, out of range): answered 400 invalid_cursor. */
export class InvalidCursorError extends Error {}

export const notFound = (what: string): AppError => new AppError('not_found', 404, `${what} not found`);

/**
 * A stage failure. `permanent` failures (bad key, no quota, 4xx other than 408/409/429) must not be
 * retried; `retryAfterMs` carries a provider's Retry-After so a driver can wait that long.
 */
export class StageError extends Error {
  readonly permanent: boolean;
  readonly retryAfterMs: number | undefined;
  readonly code: string;

  constructor(code: string, message: string, options: { permanent?: boolean; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StageError';
    this.code = code;
    this.permanent = options.permanent ?? false;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** Parses an HTTP Retry-After header (seconds or HTTP date) into milliseconds, if present and sane. */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const date = Date.parse(value);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/**
 * Whether an error means PostgreSQL could not be reached or dropped the connection (refused,
 * timed out, terminated, shutting down, out of connection slots), as opposed to a query that
 * failed. Drizzle wraps the driver's error, so the cause chain is walked.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    const { code, message } = current as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && (UNAVAILABLE_SQLSTATES.has(code) || code.startsWith('08') || NETWORK_CODES.has(code))) return true;
    if (typeof message === 'string' && UNAVAILABLE_MESSAGES.some((pattern) => pattern.test(message))) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections, database_dropped. */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '57P04', '53300']);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);
/** What node-postgres throws itself when it has no connection to use. */
const UNAVAILABLE_MESSAGES = [
  /^timeout exceeded when trying to connect$/,
  /^Connection terminated/,
  /^Client has encountered a connection error and is not queryable$/,
  /^Cannot use a pool after calling end on the pool$/,
];
