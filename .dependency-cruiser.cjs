/**
 * Layering rules, checked by `npm run lint`. The engine and the domain own the rules and the ports;
 * adapters (PostgreSQL, BullMQ, Redis), the HTTP layer and the entry points depend on them, never the
 * other way round. Violations that predate a rule are listed in
 * .dependency-cruiser-known-violations.json (regenerate it with `npm run lint:baseline`); any other
 * one fails the check.
 */
const INFRASTRUCTURE_PACKAGES = ['pg', 'drizzle-orm', 'bullmq', 'ioredis', 'fastify', '@fastify/[^/]+', '@bull-board/[^/]+', 'prom-client'];
const OUTWARD_LAYERS = ['db', 'adapters', 'queue', 'http', 'monitoring', 'admin', 'container', 'app', 'main', 'cli'];

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'A cycle makes load order matter and ties modules that should change independently.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'http-not-to-storage-or-transport',
      comment: 'Routes and plugins call services; they do not reach repositories or queues themselves.',
      severity: 'error',
      // Bull Board is a UI over the BullMQ queues themselves, so it needs them.
      from: { path: '^src/http/', pathNot: '^src/http/admin/bull-board\\.ts$' },
      to: { path: '^src/(db|adapters|queue)/' },
    },
    {
      name: 'core-not-to-infrastructure',
      comment: 'The engine and the domain speak through their ports; drivers for PostgreSQL, Redis, queues and HTTP live in adapters.',
      severity: 'error',
      from: { path: '^src/(engine|domain)/' },
      // A type-only import resolves to the package's @types/ twin when it has one (pg).
      to: { path: `(^|/)node_modules/(@types/)?(${INFRASTRUCTURE_PACKAGES.join('|')})/` },
    },
    {
      name: 'core-not-outward',
      comment: 'The engine and the domain do not depend on the layers built around them.',
      severity: 'error',
      from: { path: '^src/(engine|domain)/' },
      to: { path: `^src/(${OUTWARD_LAYERS.join('|')})(/|\\.ts$)` },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    // Content hashes, so a cached result never outlives an edit (committed or not).
    cache: { folder: 'node_modules/.cache/dependency-cruiser', strategy: 'content' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
