import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply } from 'fastify';

/** The page and its two assets, next to this file; read once at start (no build step, no CDN). */
const FILES = {
  'index.html': 'text/html; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
} as const;

/**
 * Everything the page loads comes from this server: scripts and styles only from files, no
 * inline script, fetches only to this origin, never framed.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function registerDashboardPages(app: FastifyInstance): void {
  const files = Object.fromEntries(
    Object.keys(FILES).map((name) => [name, readFileSync(new URL(`./${name}`, import.meta.url))]),
  ) as Record<keyof typeof FILES, Buffer>;

  const serve = (name: keyof typeof FILES) => ({
    config: { public: true },
    schema: { hide: true },
    handler: async (_request: unknown, reply: FastifyReply) =>
      reply
        .type(FILES[name])
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .header('content-security-policy', CONTENT_SECURITY_POLICY)
        .send(files[name]),
  });

  app.get('/dashboard', serve('index.html'));
  app.get('/dashboard/', { config: { public: true }, schema: { hide: true } }, async (_request, reply) => reply.redirect('/dashboard', 301));
  app.get('/dashboard/dashboard.js', serve('dashboard.js'));
  app.get('/dashboard/dashboard.css', serve('dashboard.css'));
}
