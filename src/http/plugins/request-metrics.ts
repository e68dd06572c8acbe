import type { FastifyInstance } from 'fastify';
import type { Monitoring } from '../../monitoring/monitoring.js';

/**
 * Records every answered request — method, route pattern, status, duration — for the JSON metrics
 * (this process's per-minute ring) and Prometheus. The route is Fastify's pattern
 * (`/api/v1/chat/batch/:batchId/results`), never the raw URL, so ids never become labels; requests
 * that match no route are `unmatched`.
 */
export function registerRequestMetrics(app: FastifyInstance, monitoring: Monitoring): void {
  app.addHook('onResponse', (request, reply, done) => {
    monitoring.recordRequest(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime);
    done();
  });
}
