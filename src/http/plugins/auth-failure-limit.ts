import type { FastifyInstance } from 'fastify';
import { body } from './errors.js';

/** Addresses tracked at most; beyond, the oldest is forgotten (each address is still limited). */
const MAX_TRACKED = 100_000;
const SWEEP_EVERY_MS = 10_000;
const THROTTLED = 'Too many requests with missing or invalid credentials from this address; retry later';

declare module 'fastify' {
  interface FastifyRequest {
    /** Seconds until the address's failure window ends, when it is over the limit. */
    authThrottleSeconds: number | null;
  }
}

/**
 * Throttles credential guessing: once a client address's requests were answered 401 `max` times
 * within a window (fixed, in this process's memory), every further request from it that would
 * fail authentication (no, an unknown or a revoked token, a wrong METRICS_TOKEN, a failed
 * dashboard sign-in) is answered 429 `rate_limited` instead, until the window ends. A request
 * with a valid token is still served: behind a proxy or NAT many callers share one address, and
 * a stranger's failures must not lock them out. That a valid token gets through is no oracle
 * worth having — tokens are 256-bit random — and a guesser still learns nothing from its 429s.
 * Each API process counts on its own.
 */
export function registerAuthFailureLimit(app: FastifyInstance, options: { max: number; windowMs: number }): void {
  const failures = new Map<string, { window: number; count: number }>();
  const windowOf = (now: number) => Math.floor(now / options.windowMs);

  const sweep = setInterval(() => {
    const current = windowOf(Date.now());
    for (const [address, entry] of failures) if (entry.window < current) failures.delete(address);
  }, SWEEP_EVERY_MS);
  sweep.unref();
  app.addHook('onClose', async () => clearInterval(sweep));
  app.decorateRequest('authThrottleSeconds', null);

  app.addHook('onRequest', async (request) => {
    const now = Date.now();
    const entry = failures.get(request.ip);
    if (!entry || entry.window !== windowOf(now) || entry.count < options.max) return;
    request.authThrottleSeconds = Math.max(1, Math.ceil(((entry.window + 1) * options.windowMs - now) / 1000));
  });

  // The credentials are checked as usual (one cached lookup); only a failing answer is replaced.
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.authThrottleSeconds === null || reply.statusCode !== 401) return payload;
    reply.status(429).header('retry-after', request.authThrottleSeconds).header('content-type', 'application/json; charset=utf-8');
    reply.removeHeader('www-authenticate');
    return JSON.stringify(body('rate_limited', THROTTLED));
  });

  app.addHook('onResponse', async (request, reply) => {
    if (reply.statusCode !== 401) return;
    const window = windowOf(Date.now());
    const entry = failures.get(request.ip);
    if (entry && entry.window === window) {
      entry.count++;
      return;
    }
    failures.delete(request.ip);
    if (failures.size >= MAX_TRACKED) failures.delete(failures.keys().next().value!);
    failures.set(request.ip, { window, count: 1 });
  });
}
