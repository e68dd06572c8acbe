import type { FastifyInstance } from 'fastify';
import { AppError } from '../../domain/errors.js';

/** Addresses tracked at most; beyond, the oldest is forgotten (each address is still limited). */
const MAX_TRACKED = 100_000;
const SWEEP_EVERY_MS = 10_000;

/**
 * Throttles credential guessing: a client address whose requests were answered 401 `max` times
 * within a window (fixed, in this process's memory) gets 429 `rate_limited` for every request
 * until the window ends — before its credentials are even looked at, so a valid guess cannot be
 * told apart from an invalid one. Public pages that check nothing (health, the OpenAPI document,
 * the dashboard's pages) stay open. Each API process counts on its own.
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

  app.addHook('onRequest', async (request, reply) => {
    const { method } = request;
    if (request.routeOptions.config.public && (method === 'GET' || method === 'HEAD')) return;
    const now = Date.now();
    const entry = failures.get(request.ip);
    if (!entry || entry.window !== windowOf(now) || entry.count < options.max) return;
    reply.header('retry-after', Math.max(1, Math.ceil(((entry.window + 1) * options.windowMs - now) / 1000)));
    throw new AppError('rate_limited', 429, 'Too many requests with missing or invalid credentials from this address; retry later');
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
