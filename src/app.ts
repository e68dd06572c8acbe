import { Ajv } from 'ajv';
import Fastify, { type FastifyServerOptions } from 'fastify';
import secureJson from 'secure-json-parse';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { STATUS_CODES, type ServerOptions } from 'node:http';
import type { Duplex } from 'node:stream';
import type { HttpTimeouts } from './config.js';
import type { Container } from './container.js';
import { AppError } from './domain/errors.js';
import { registerAuth } from './http/plugins/auth.js';
import { registerAuthFailureLimit } from './http/plugins/auth-failure-limit.js';
import { answerFrameworkError, registerErrorHandling } from './http/plugins/errors.js';
import { registerRateLimit } from './http/plugins/rate-limit.js';
import { registerTextInputCheck } from './http/plugins/text-input.js';
import { registerGetMe } from './http/routes/account/get-me.js';
import { registerGetOrganizationSettings } from './http/routes/account/get-organization-settings.js';
import { registerUpdateOrganizationSettings } from './http/routes/account/update-organization-settings.js';
import { registerCancelJobs } from './http/routes/jobs/cancel-jobs.js';
import { registerComprehensive } from './http/routes/jobs/comprehensive.js';
import { registerJobStatus } from './http/routes/jobs/job-status.js';
import { registerQueueStats } from './http/routes/jobs/queue-stats.js';
import { registerFailedJobs } from './http/routes/jobs/failed-jobs.js';
import { createDashboardSessions, registerDashboard } from './http/dashboard/index.js';
import { registerBullBoard } from './http/admin/bull-board.js';
import { registerPostQueuedMessage } from './http/routes/threads/post-queued-message.js';
import { ErrorResponse } from './http/schemas/common.js';
import type { App } from './http/types.js';
import { collectRoutes } from './http/route-table.js';
import { registerGetBatchResults } from './http/routes/batch/get-batch-results.js';
import { registerCreateDocument } from './http/routes/documents/create-document.js';
import { registerDeleteDocument } from './http/routes/documents/delete-document.js';
import { registerGetDocument } from './http/routes/documents/get-document.js';
import { registerListDocuments } from './http/routes/documents/list-documents.js';
import { registerHealth } from './http/routes/system/health.js';
import { registerAcknowledgeAlert } from './http/routes/system/acknowledge-alert.js';
import { registerListAlerts } from './http/routes/system/list-alerts.js';
import { registerHealthDetailed } from './http/routes/system/health-detailed.js';
import { registerMetrics } from './http/routes/system/metrics.js';
import { registerPrometheus } from './http/routes/prometheus.js';
import { registerRequestMetrics } from './http/plugins/request-metrics.js';
import { registerQueueStatus } from './http/routes/system/queue-status.js';
import { registerCreateThread } from './http/routes/threads/create-thread.js';
import { registerGetThread } from './http/routes/threads/get-thread.js';
import { registerListMessages } from './http/routes/threads/list-messages.js';
import { registerListThreads } from './http/routes/threads/list-threads.js';
import { readQueueStatus } from './queue/queue-status.js';
import { createFleetState } from './queue/fleet-state.js';
import { registerPostMessage } from './http/routes/threads/post-message.js';
import { doorWaitMs, registerOpenAiDoor } from './http/openai-door/index.js';
import { registerBatchEvents } from './http/routes/chat/batch-events.js';
import { registerThreadEvents } from './http/routes/chat/thread-events.js';
import { registerCreateStreamTicket } from './http/routes/chat/create-stream-ticket.js';
import { createSseHub } from './http/sse.js';

/**
 * Node's http server timeouts: slow headers and slow bodies are cut off (408), idle sockets closed.
 * Node checks the first two on an interval (30 s by default); it is kept well below them.
 */
function serverTimeouts(
  timeouts: HttpTimeouts,
): Pick<FastifyServerOptions, 'connectionTimeout' | 'keepAliveTimeout' | 'requestTimeout' | 'clientErrorHandler'> & { http: ServerOptions } {
  return {
    clientErrorHandler: answerClientError,
    connectionTimeout: timeouts.idleMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    requestTimeout: timeouts.requestMs,
    http: {
      headersTimeout: timeouts.headersMs,
      connectionsCheckingInterval: Math.min(1_000, Math.max(50, Math.floor(timeouts.headersMs / 4))),
    },
  };
}

const CLIENT_ERRORS: Record<string, { status: number; code: string; message: string }> = {
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, code: 'request_timeout', message: 'The request did not arrive in time' },
  HPE_HEADER_OVERFLOW: { status: 431, code: 'headers_too_large', message: 'The request headers are too large' },
};

/** A request Node could not read (too slow, malformed): answered in the API's error shape, then the connection closed. */
function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const known = (error.code && CLIENT_ERRORS[error.code]) || { status: 400, code: 'bad_request', message: 'The request could not be read' };
  const body = JSON.stringify({ error: { code: known.code, message: known.message } });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${known.status} ${STATUS_CODES[known.status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

/** A hop count becomes "trust the n nearest proxies", as Fastify does at run time (its types take no number). */
function trustProxyOption(value: boolean | number | string): boolean | string | ((address: string, hop: number) => boolean) {
  return typeof value === 'number' ? (_address, hop) => hop < value : value;
}

export interface BuildAppOptions {
  /** Another logger, or false for none; by default (and with true) the container's, whose serializers keep content out of the logs. */
  logger?: FastifyServerOptions['loggerInstance'] | boolean;
}

/** The HTTP API: plugins and every route registered here, explicitly. Tests drive it with inject(). */
export async function buildApp(container: Container, options: BuildAppOptions = {}): Promise<App> {
  const loggerOption = options.logger === undefined || options.logger === true ? container.logger : options.logger;
  const app = Fastify({
    ...(loggerOption === false ? { logger: false } : { loggerInstance: loggerOption }),
    bodyLimit: 1024 * 1024,
    // Off unless TRUST_PROXY names the proxy: otherwise any client could claim to have come over TLS.
    trustProxy: trustProxyOption(container.config.http.trustProxy),
    ...serverTimeouts(container.config.http.timeouts),
    // Clients may send ids that are not ours; request ids are only for our logs.
    genReqId: () => crypto.randomUUID(),
    // Malformed percent-encoding and over-long path parameters: our error shape, no echo of the path.
    frameworkErrors: answerFrameworkError,
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as App;
  // Query strings and params are text and are coerced to their types; JSON bodies are not (a
  // number where a string belongs is a client error, not something to guess about).
  const strict = new Ajv({ coerceTypes: false, useDefaults: true, removeAdditional: false, allErrors: false });
  const coercing = new Ajv({ coerceTypes: 'array', useDefaults: true, removeAdditional: false, allErrors: false });
  for (const ajv of [strict, coercing]) ajv.addKeyword('example').addKeyword('x-internal');
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema));

  collectRoutes(app);
  registerErrorHandling(app);
  registerTextInputCheck(app);
  // Requests waiting for a run answer at once rather than holding the close up.
  app.addHook('preClose', async () => container.waits.close());
  registerRequestMetrics(app, container.monitoring);
  // Before any credential check, on every route: token guessing is throttled per client address.
  registerAuthFailureLimit(app, container.config.authFailureLimit);
  // The API speaks JSON only; anything else is 415 rather than a string body failing validation.
  app.removeContentTypeParser('text/plain');
  // An empty JSON body (a POST with nothing to say, as fetch() sends it) is no body, not an error.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    try {
      // Like Fastify's own parser: __proto__ and constructor.prototype keys are refused.
      done(null, secureJson.parse(text, null, { protoAction: 'error', constructorAction: 'error' }));
    } catch {
      done(new AppError('invalid_json', 400, 'The request body is not valid JSON'), undefined);
    }
  });
  app.addSchema(ErrorResponse);
  await app.register(swagger, {
    openapi: {
      info: { title: 'honeyjar-server', version: '0.1.0', description: 'Chat backend for PR and communications teams.' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer' },
          organization: { type: 'apiKey', in: 'header', name: 'x-organization-id' },
        },
      },
      security: [{ bearer: [], organization: [] }],
    },
  });
  app.get('/api/v1/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
  registerPrometheus(app, {
    prometheus: container.monitoring.prometheus,
    health: container.health,
    tenancy: container.repositories.tenancy,
    token: container.config.monitoring.metricsToken,
  });
  // The operations page (/dashboard) and Bull Board (/admin/queues, system operators, by session cookie).
  const dashboardSessions = createDashboardSessions({ coordination: container.coordination, prefix: container.config.queue.prefix, tenancy: container.repositories.tenancy });
  registerDashboard(app, dashboardSessions);
  await registerBullBoard(app, { queues: container.producer.queues, sessions: dashboardSessions });

  const { services, repositories, config } = container;
  await app.register(
    async (api) => {
      const scoped = api as unknown as App;
      registerAuth(scoped, repositories.tenancy, { redeemTicket: services.events.redeemTicket });
      registerRateLimit(scoped, container.coordination, { ...config.rateLimit, prefix: config.queue.prefix });
      registerGetMe(scoped);
      registerGetOrganizationSettings(scoped, services.organizationSettings);
      registerUpdateOrganizationSettings(scoped, services.organizationSettings);
      await scoped.register(
        async (chat) => {
          const c = chat as unknown as App;
          registerHealth(c, container.health);
          registerHealthDetailed(c, container.health);
          registerMetrics(c, container.metrics);
          registerCreateThread(c, services.chat);
          registerListThreads(c, services.chat);
          registerGetThread(c, services.chat);
          registerListMessages(c, services.chat);
          registerPostMessage(c, services.chat, config.limits);
          registerPostQueuedMessage(c, services.chat, config.limits);
          registerGetBatchResults(c, services.chat, services.events);
          const streams = createSseHub(c, { heartbeatMs: config.events.heartbeatMs });
          registerBatchEvents(c, services.events, streams);
          registerThreadEvents(c, services.events, streams);
          registerCreateStreamTicket(c, services.events);
          registerComprehensive(c, services.chat, config.limits);
          registerJobStatus(c, services.jobs);
          registerCancelJobs(c, services.jobs);
          registerQueueStats(c, services.jobs, container.metrics);
          registerFailedJobs(c, repositories.failedJobs);
          registerListAlerts(c, repositories.alerts);
          registerAcknowledgeAlert(c, repositories.alerts);
          registerQueueStatus(c, {
            read: () => readQueueStatus({ config, queues: container.producer.queues, fleet: createFleetState(container.coordination, config.queue.prefix) }),
            available: container.producer.available,
          });
        },
        { prefix: '/chat' },
      );
      await scoped.register(
        async (docs) => {
          const d = docs as unknown as App;
          registerCreateDocument(d, services.documents, config.limits);
          registerListDocuments(d, services.documents);
          registerGetDocument(d, services.documents);
          registerDeleteDocument(d, services.documents);
        },
        { prefix: '/documents' },
      );
    },
    { prefix: '/api/v1' },
  );
  // GET /v1/models, POST /v1/chat/completions: the OpenAI-compatible door onto the same pipeline.
  await registerOpenAiDoor(app, {
    chat: services.chat,
    events: services.events,
    tenancy: repositories.tenancy,
    coordination: container.coordination,
    rateLimit: { ...config.rateLimit, prefix: config.queue.prefix },
    maxContentBytes: config.limits.maxContentBytes,
    waitMs: doorWaitMs(config.http.timeouts.idleMs),
  });
  return app;
}
