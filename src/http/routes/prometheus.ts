import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { App } from '../types.js';
import type { HealthService } from '../../monitoring/health.service.js';
import type { Prometheus } from '../../monitoring/prometheus.js';
import { body } from '../plugins/errors.js';

const digest = (value: string) => createHash('sha256').update(value).digest();

type Access = 'granted' | 'unauthenticated' | 'not_operator';

/** What the scrape needs of the token store: whether a token is live and its user an operator. */
export interface TokenIdentifier {
  identify(token: string, orgId: undefined): Promise<{ revoked: boolean; operator: boolean } | undefined>;
}

/**
 * Prometheus exposition at `GET /metrics` on the server root: every tenant's per-route traffic
 * and the system-wide queue counts, so never open. It needs `Authorization: Bearer
 * <METRICS_TOKEN>` (for a scraper) or a system operator's API token; 401 without either (the
 * message says whether METRICS_TOKEN is set at all), 403 `operator_required` for anyone else's
 * valid token. Wrong tokens count towards the per-address failure limit like any other.
 */
export function registerPrometheus(app: App, deps: { prometheus: Prometheus; health: HealthService; tenancy: TokenIdentifier; token: string | undefined }): void {
  const { prometheus, health, tenancy } = deps;
  const expected = deps.token === undefined ? undefined : digest(deps.token);
  const required = expected
    ? 'Authorization: Bearer <METRICS_TOKEN> (or a system operator\'s token) is required'
    : 'METRICS_TOKEN is not set on this server: the scrape needs Authorization: Bearer <a system operator\'s token>';

  const access = async (request: FastifyRequest): Promise<Access> => {
    const sent = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')?.[1];
    if (sent === undefined) return 'unauthenticated';
    if (expected && timingSafeEqual(digest(sent), expected)) return 'granted';
    const identity = await tenancy.identify(sent, undefined);
    if (!identity || identity.revoked) return 'unauthenticated';
    return identity.operator ? 'granted' : 'not_operator';
  };

  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    const outcome = await access(request);
    if (outcome === 'unauthenticated') return reply.status(401).header('www-authenticate', 'Bearer').send(body('unauthorized', required));
    if (outcome === 'not_operator') return reply.status(403).send(body('operator_required', 'The scrape shows every tenant\'s traffic: it needs METRICS_TOKEN or a system operator\'s token'));
    const text = await prometheus.metrics(() => health.queueCounts());
    return reply.header('content-type', prometheus.contentType).header('cache-control', 'no-store').send(text);
  });
}
