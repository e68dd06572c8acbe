import pino, { type Logger } from 'pino';

/** Server logs go to stdout; the CLI logs to stderr so that its stdout stays machine-readable. */
export function createLogger(level: string, destination: 1 | 2 = 1): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.apiKey', '*.token'], censor: '[redacted]' },
    },
    pino.destination({ fd: destination, sync: destination === 2 }),
  );
}
