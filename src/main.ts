import type { Logger } from 'pino';
import { buildApp } from './app.js';
import { bootstrapOrganization } from './admin/bootstrap.js';
import type { Config } from './config.js';
import { createContainer } from './container.js';
import { ensureDatabaseExists, openDatabase, runMigrations } from './db/client.js';
import { createTenancyRepository } from './db/repositories/tenancy.repository.js';

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

/**
 * Starts a role and owns the one shutdown path: the first SIGTERM/SIGINT stops accepting
 * connections, lets in-flight requests finish and closes every connection; a second exits at once.
 */
export async function startServer(config: Readonly<Config>, role: Role, logger: Logger): Promise<{ stop(): Promise<void> }> {
  await prepareDatabase(config, logger);
  const container = createContainer(config, logger);
  await printFirstStartToken(container.repositories.tenancy, config, logger);

  const app = role === 'worker' ? undefined : await buildApp(container);
  if (app) {
    await app.listen({ port: config.http.port, host: config.http.host });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.http.port;
    logger.info(`Server listening on port ${port}`);
  }

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      logger.info('shutting down');
      await app?.close();
      await container.close();
      logger.info('shutdown complete');
    })());

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
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
  return { stop };
}

/** On the very first start, with no organization at all, make one so the API can be used at once. */
async function printFirstStartToken(
  tenancy: ReturnType<typeof createTenancyRepository>,
  config: Readonly<Config>,
  logger: Logger,
): Promise<void> {
  if ((await tenancy.countOrganizations()) > 0) return;
  const result = await bootstrapOrganization(tenancy, config.bootstrap.orgName, config.bootstrap.adminEmail);
  logger.info({ orgId: result.orgId, userId: result.userId }, 'created the first organization and its admin');
  process.stdout.write(
    [
      '',
      '  First start: an organization and an admin token were created. The token is shown only now.',
      `    x-organization-id: ${result.orgId}`,
      `    Authorization: Bearer ${result.token}`,
      '',
      '',
    ].join('\n'),
  );
}
