import Fastify, { type FastifyServerOptions } from 'fastify';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Container } from './container.js';
import { registerAuth } from './http/plugins/auth.js';
import { registerErrorHandling } from './http/plugins/errors.js';
import { ErrorResponse } from './http/schemas/common.js';
import type { App } from './http/types.js';
import { registerGetBatchResults } from './http/routes/batch/get-batch-results.js';
import { registerCreateDocument } from './http/routes/documents/create-document.js';
import { registerDeleteDocument } from './http/routes/documents/delete-document.js';
import { registerGetDocument } from './http/routes/documents/get-document.js';
import { registerListDocuments } from './http/routes/documents/list-documents.js';
import { registerHealth } from './http/routes/system/health.js';
import { registerCreateThread } from './http/routes/threads/create-thread.js';
import { registerGetThread } from './http/routes/threads/get-thread.js';
import { registerListMessages } from './http/routes/threads/list-messages.js';
import { registerListThreads } from './http/routes/threads/list-threads.js';
import { registerPostMessage } from './http/routes/threads/post-message.js';

export interface BuildAppOptions {
  logger?: FastifyServerOptions['loggerInstance'] | boolean;
}

/** The HTTP API: plugins and every route registered here, explicitly. Tests drive it with inject(). */
export async function buildApp(container: Container, options: BuildAppOptions = {}): Promise<App> {
  const loggerOption = options.logger ?? container.logger;
  const app = Fastify({
    ...(typeof loggerOption === 'boolean' ? { logger: loggerOption } : { loggerInstance: loggerOption }),
    bodyLimit: 1024 * 1024,
    // Clients may send ids that are not ours; request ids are only for our logs.
    genReqId: () => crypto.randomUUID(),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as App;

  registerErrorHandling(app);
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

  const { services, repositories, config } = container;
  await app.register(
    async (api) => {
      const scoped = api as unknown as App;
      registerAuth(scoped, repositories.tenancy);
      await scoped.register(
        async (chat) => {
          const c = chat as unknown as App;
          registerHealth(c, container.database.db);
          registerCreateThread(c, services.chat);
          registerListThreads(c, services.chat);
          registerGetThread(c, services.chat);
          registerListMessages(c, services.chat);
          registerPostMessage(c, services.chat, config.limits);
          registerGetBatchResults(c, services.chat);
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
  return app;
}
