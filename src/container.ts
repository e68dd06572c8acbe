import OpenAI from 'openai';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { openDatabase, type Database } from './db/client.js';
import { createContactCacheRepository } from './db/repositories/contact-cache.repository.js';
import { createDocumentsRepository } from './db/repositories/documents.repository.js';
import { createRunsRepository } from './db/repositories/runs.repository.js';
import { createTenancyRepository } from './db/repositories/tenancy.repository.js';
import { createThreadsRepository } from './db/repositories/threads.repository.js';
import { ChatService } from './domain/chat/chat.service.js';
import { createInlineDriver } from './domain/chat/inline-driver.js';
import { createStageRunner, type StageServices } from './domain/chat/stage-runner.js';
import { createDocumentsService } from './domain/documents/documents.service.js';
import { createLocalIntentClassifier, createLlmIntentClassifier } from './domain/stages/intent/intent.service.js';
import { createLlmStage } from './domain/stages/llm/llm.stage.js';
import { createOfflineProvider } from './domain/stages/llm/offline.provider.js';
import { createOpenAiProvider } from './domain/stages/llm/openai.provider.js';
import { createRagService } from './domain/stages/rag/rag.service.js';
import { createRocketReachClient } from './domain/stages/rocketreach/rocketreach.client.js';
import { createRocketReachStage } from './domain/stages/rocketreach/rocketreach.stage.js';
import { classifySecurity } from './domain/stages/security/security.service.js';

/** Everything the roles are built from, wired once from the config. */
export function createContainer(config: Readonly<Config>, logger: Logger) {
  const database: Database = openDatabase(config.database.url, { poolMax: config.database.poolMax });
  const repositories = {
    tenancy: createTenancyRepository(database.db),
    threads: createThreadsRepository(database.db),
    runs: createRunsRepository(database.db),
    documents: createDocumentsRepository(database.db),
    contactCache: createContactCacheRepository(database.db),
  };
  const stages = createStageServices(config, repositories);
  const runner = createStageRunner({ runs: repositories.runs, threads: repositories.threads, stages });
  const inline = createInlineDriver(runner);
  const services = {
    chat: new ChatService({ threads: repositories.threads, runs: repositories.runs, inline }),
    documents: createDocumentsService({ documents: repositories.documents }),
  };
  return {
    config,
    logger,
    database,
    repositories,
    stages,
    runner,
    inline,
    services,
    async close(): Promise<void> {
      await database.close();
    },
  };
}

export type Container = ReturnType<typeof createContainer>;

function createStageServices(
  config: Readonly<Config>,
  repositories: { documents: ReturnType<typeof createDocumentsRepository>; contactCache: ReturnType<typeof createContactCacheRepository> },
): StageServices {
  const offline = createOfflineProvider();
  const local = createLocalIntentClassifier();
  const { apiKey, baseURL, model, timeoutMs } = config.openai;
  const provider = apiKey ? createOpenAiProvider({ apiKey, model, timeoutMs, ...(baseURL ? { baseURL } : {}) }) : offline;
  const intent =
    config.intentClassifier === 'llm' && apiKey
      ? createLlmIntentClassifier({ client: new OpenAI({ apiKey, baseURL, timeout: timeoutMs, maxRetries: 0, logLevel: 'off' }), model, fallback: local })
      : local;
  const rr = config.rocketreach;
  const rocketreachClient = rr.apiKey
    ? createRocketReachClient({ apiKey: rr.apiKey, baseUrl: rr.baseUrl, deadlineMs: rr.deadlineMs, pollIntervalMs: rr.pollIntervalMs })
    : undefined;
  return {
    intent,
    classifySecurity,
    rag: createRagService({ search: repositories.documents }),
    rocketreach: createRocketReachStage({ client: rocketreachClient, cache: repositories.contactCache }),
    llm: createLlmStage({ provider, offline }),
  };
}
