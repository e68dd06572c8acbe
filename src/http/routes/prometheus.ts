import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { App } from '../types.js';
import type { HealthService } from '../../monitoring/health.service.js';
import type { Prometheus } from '../../monitoring/prometheus.js';
import { body } from '../plugins/errors.js';

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Prometheus exposition at `GET /metrics` on the server root. With METRICS_TOKEN set it needs
 * `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise); without it, it is open — keep the port
 * private then.
 */
export function registerPrometheus(app: App, prometheus: Prometheus, health: HealthService, token: string | undefined): void {
  const expected = token === undefined ? undefined : digest(token);
  const authorised = (request: FastifyRequest): boolean => {
    if (!expected) return true;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    return match?.[1] !== undefined && timingSafeEqual(digest(match[1]), expected);
  };

  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    if (!authorised(request)) {
      return reply.status(401).header('www-authenticate', 'Bearer').send(body('unauthorized', 'Authorization: Bearer <METRICS_TOKEN> is required'));
    }
    const text = await prometheus.metrics(() => health.queueCounts());
    return reply.header('content-type', prometheus.contentType).header('cache-control', 'no-store').send(text);
  });
}
