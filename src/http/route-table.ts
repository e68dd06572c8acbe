import type { FastifyInstance } from 'fastify';

export interface RegisteredRoute {
  method: string;
  url: string;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route registered on the app, plugins' included; a HEAD that only mirrors a GET is left out. */
    readonly routeTable: readonly RegisteredRoute[];
  }
}

/**
 * Records every route as it is registered (Bull Board's too), so that tests walk the whole
 * surface instead of a list that goes stale. Must run before any route is registered.
 */
export function collectRoutes(app: FastifyInstance): void {
  const routes: RegisteredRoute[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) routes.push({ method, url: route.url });
  });
  app.decorate('routeTable', {
    getter: () => {
      const trimmed = (url: string) => (url.length > 1 ? url.replace(/\/$/, '') : url);
      const gets = new Set(routes.filter((r) => r.method === 'GET').map((r) => trimmed(r.url)));
      // Fastify adds a HEAD for each GET (and static files register both): same handler, same hooks.
      return routes.filter((r) => !(r.method === 'HEAD' && gets.has(trimmed(r.url))));
    },
  });
}
