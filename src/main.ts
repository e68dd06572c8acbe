import type { Logger } from 'pino';
import { buildApp } from './app.js';
import { bootstrapOrganization } from './admin/bootstrap.js';
import type { Config } from './config.js';
import { createContainer } from './container.js';
import { ensureDatabaseExists, openDatabase, runMigrations } from './adapters/postgres/client.js';
import type { TenancyRepository } from './adapters/postgres/repositories/tenancy.repository.js';
import { stageOrder } from './engine/dag.js';
import type { StageName } from './engine/catalog.js';
import { startQueueSystem } from './queue/queue-system.js';

export type Role = 'all' | 'api' | 'worker';

/** Creates the database when missing and applies the committed migrations. */
export async function prepareDatabase(config: Readonly<Config>, logger: Logger): Promise<void> {
  if (await ensureDatabaseExists(config.database.url)) logger.info('created the database');
  const database = openDatabase(config.database.url, { poolMax: 1 });
  try {
    await runMigrations(database);
  } finally {
    await database.close();
  }
}

export interface RunningServer {
  port: number | undefined;
  stop(): Promise<void>;
}

/**
 * Starts a role — `all` (HTTP and every worker), `api` (HTTP only) or `worker` (workers only,
 * optionally a subset of stages) — and owns the one shutdown path.
 */
export async function startServer(
  config: Readonly<Config>,
  role: Role,
  logger: Logger,
  options: { stages?: readonly StageName[]; handleSignals?: boolean } = {},
): Promise<RunningServer> {
  await prepareDatabase(config, logger);
  const container = createContainer(config, logger);
  if (role !== 'worker') await printFirstStartToken(container.repositories.tenancy, config, logger);

  const stages = role === 'api' ? [] : (options.stages ?? stageOrder(config.catalog));
  const queueSystem = await startQueueSystem(container, stages, logger);

  const app = role === 'worker' ? undefined : await buildApp(container);
  let port: number | undefined;
  if (app) {
    await app.listen({ port: config.http.port, host: config.http.host });
    const address = app.server.address();
    port = typeof address === 'object' && address ? address.port : config.http.port;
    logger.info(`Server listening on port ${port}`);
  }

  let stopping: Promise<void> | undefined;
  // Stop taking connections and finish in-flight requests, then let active jobs finish (bounded),
  // then close Redis and PostgreSQL.
  const stop = () =>
    (stopping ??= (async () => {
      logger.info('shutting down: no new connections; finishing in-flight requests and active jobs');
      await app?.close();
      await queueSystem.close(config.shutdownTimeoutMs);
      await container.close();
      logger.info('shutdown complete');
    })());

  if (options.handleSignals !== false) {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      if (++signals > 1) {
        logger.warn(`${signal} again: exiting now`);
        process.exit(1);
      }
      logger.info(`${signal} received`);
      stop().then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  return { port, stop };
}

/** On the very first start, with no organization at all, make one so the API can be used at once. */
async function printFirstStartToken(tenancy: TenancyRepository, config: Readonly<Config>, logger: Logger): Promise<void> {
  if ((await tenancy.countOrganizations()) > 0) return;
  // Someone must be able to reach the system-wide surfaces: the first admin is a system operator.
  const result = await bootstrapOrganization(tenancy, config.bootstrap.orgName, config.bootstrap.adminEmail, { operator: true });
  logger.info({ orgId: result.orgId, userId: result.userId }, 'created the first organization and its admin (a system operator)');
  process.stdout.write(
    [
      '',
      '  First start: an organization and an admin token were created (the admin is a system operator). The token is shown only now.',
      `    x-organization-id: ${result.orgId}`,
      `    Authorization: Bearer ${result.token}`,
      '',
      '',
    ].join('\n'),
  );
}
