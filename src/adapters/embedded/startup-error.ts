/**
 * A start that fails for a reason the operator can act on (nothing answers, a directory cannot be
 * reached, a port is taken): printed as one line, without a stack trace.
 */
export class StartupError extends Error {
  override name = 'StartupError';
}

/** Connection failures of pg and net that mean "not there" or "not allowed", by code. */
const CONNECTION_FAILURES: Record<string, string> = {
  ECONNREFUSED: 'refused the connection',
  ECONNRESET: 'closed the connection',
  ETIMEDOUT: 'did not answer in time',
  EHOSTUNREACH: 'is unreachable',
  ENETUNREACH: 'is unreachable',
  ENOTFOUND: 'names a host that does not resolve',
  EAI_AGAIN: 'names a host that does not resolve (yet)',
  '28P01': 'refused the password',
  '28000': 'refused the role',
  '3D000': 'has no such database',
  '42501': 'refused the permission',
  '57P03': 'is starting up or shutting down',
  '53300': 'has no connection slots left',
};

/**
 * The one line to print when a start fails for an expected reason, or undefined for anything else
 * (then the error is logged with its stack). `databaseLabel` names the database tried.
 */
export function describeStartFailure(error: unknown, databaseLabel: string): string | undefined {
  if (error instanceof StartupError) return error.message;
  const code = codeOf(error);
  if (code === 'EADDRINUSE') return `the HTTP port is in use (${(error as Error).message.replace(/^listen /, '')}); set PORT to another one`;
  if (code && CONNECTION_FAILURES[code]) return `${databaseLabel} ${CONNECTION_FAILURES[code]} (${code})`;
  if (error instanceof Error && /timeout exceeded when trying to connect|Connection terminated due to connection timeout/i.test(error.message)) {
    return `${databaseLabel} did not answer in time`;
  }
  return undefined;
}

function codeOf(error: unknown): string | undefined {
  if (!error || typeof error !== 'object') return undefined;
  const { code, errors } = error as { code?: unknown; errors?: unknown };
  if (typeof code === 'string') return code;
  // Node reports a refused connection to a name with several addresses as an AggregateError.
  if (Array.isArray(errors)) return codeOf(errors[0]);
  return undefined;
}

/** `host:port/database` of a PostgreSQL URL: never its user or password. */
export function addressOf(url: string): string {
  const parsed = new URL(url);
  const port = parsed.searchParams.get('port') || parsed.port || '5432';
  // A `host` parameter wins over the URL's host, as it does for the driver: a directory is a Unix socket's.
  const host = parsed.searchParams.get('host') || parsed.hostname;
  return `${host.startsWith('/') ? `unix:${host}` : host}:${port}${parsed.pathname}`;
}
