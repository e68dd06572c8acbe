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
