import type { Logger } from 'pino';
import { buildApp } from './app.js';
import type { App } from './http/types.js';
import { bootstrapOrganization } from './admin/bootstrap.js';
import type { Config } from './config.js';
import { createContainer } from './container.js';
import { prepareDatabaseAt } from './adapters/postgres/client.js';
import type { TenancyRepository } from './adapters/postgres/repositories/tenancy.repository.js';
import { stageOrder } from './engine/dag.js';
import type { StageName } from './engine/catalog.js';
import { startQueueSystem } from './queue/queue-system.js';
import { chooseTransport, withTransport } from './queue/transport-choice.js';
import { describeRedis } from './adapters/redis/connections.js';
import { armWatchdog, createShutdownSteps, settleBy } from './lib/shutdown.js';

export type Role = 'all' | 'api' | 'worker';

/** Creates the database when missing and applies the committed migrations. */
export async function prepareDatabase(config: Readonly<Config>, logger: Logger): Promise<void> {
  if (await prepareDatabaseAt(config.database.url)) logger.info('created the database');
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
  options: { stages?: readonly StageName[]; handleSignals?: boolean; afterClose?: () => Promise<void> } = {},
): Promise<RunningServer> {
  await prepareDatabase(config, logger);
  // Every process of a system uses the transport recorded for it; one configured otherwise stops here.
  const transport = await chooseTransport(config, logger);
  logger.info(`queue transport: ${transport.backend === 'redis' ? `BullMQ on ${describeRedis(config.redis)}` : 'BullMQ on PostgreSQL'} (${transport.reason})`);
  const container = createContainer(withTransport(config, transport.backend), logger);
  if (role !== 'worker') await printFirstStartToken(container.repositories.tenancy, config, logger);

  const stages = role === 'api' ? [] : (options.stages ?? stageOrder(config.catalog));
  const queueSystem = await startQueueSystem(container, stages, logger);

  let app: Awaited<ReturnType<typeof buildApp>> | undefined;
  let port: number | undefined;
  try {
    app = role === 'worker' ? undefined : await buildApp(container);
    if (app) {
      await app.listen({ port: config.http.port, host: config.http.host });
      const address = app.server.address();
      port = typeof address === 'object' && address ? address.port : config.http.port;
      logger.info(`Server listening on port ${port}`);
    }
  } catch (error) {
    // No server after all (the port is taken, say): what was started is stopped before the caller
    // hears of it, so that nothing holds the database (or keeps the process alive) behind it.
    const deadline = Date.now() + Math.min(config.shutdownTimeoutMs, 5_000);
    await app?.close().catch(() => undefined);
    await queueSystem.close(Math.max(0, deadline - Date.now())).catch(() => undefined);
    await container.close({ deadline, steps: createShutdownSteps() }).catch(() => undefined);
    throw error;
  }

  let stopping: Promise<void> | undefined;
  const steps = createShutdownSteps();
  // One deadline for the whole shutdown: HTTP and the queue side stop side by side, in-process runs
  // may finish until it, then every connection is closed within a second (container.close).
  const stop = () =>
    (stopping ??= (async () => {
      logger.info('shutting down: no new connections; finishing in-flight requests and active jobs');
      const deadline = Date.now() + config.shutdownTimeoutMs;
      await Promise.all([
        app ? steps.run('http', () => closeHttp(app, deadline, logger), deadline + HTTP_CUT_OFF_MS) : undefined,
        steps.run('queue system', () => queueSystem.close(Math.max(0, deadline - Date.now())), deadline),
      ]);
      await container.close({ deadline, steps });
      // The embedded PostgreSQL (src/adapters/embedded/) goes last: everything above may still need it.
      if (options.afterClose) await steps.run('embedded postgresql', options.afterClose, Date.now() + EMBEDDED_STOP_BUDGET_MS);
      // What did not finish in time is left to another process or the next start.
      const leftBehind = steps.pending();
      if (leftBehind.length > 0) logger.warn({ leftBehind }, 'shutdown complete');
      else logger.info('shutdown complete');
    })());

  if (options.handleSignals !== false) {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      if (++signals > 1) {
        logger.warn(`${signal} again: exiting now`);
        process.exit(1);
      }
      logger.info(`${signal} received`);
      // A connection being closed may still emit an error no one listens to any more (BullMQ's wait
      // for a Redis that never answered rejects after its close dropped the listeners). Past this
      // point that must not end the process before it has stopped what it owns (the embedded
      // PostgreSQL); the watchdog below bounds the shutdown whatever happens.
      process.on('uncaughtException', (error: Error & { code?: string }) => {
        logger.warn({ err: { message: error.message, code: error.code } }, 'error while shutting down: ignored');
      });
      // Whatever Redis or PostgreSQL do, the process is gone shortly after the deadline, with exit 0:
      // nothing is lost that another process or the next start does not pick up.
      armWatchdog(config.shutdownTimeoutMs + WATCHDOG_MARGIN_MS, steps, (pending) => {
        logger.warn({ pending }, 'shutdown incomplete');
        process.exit(0);
      });
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

/** A fast shutdown of the embedded PostgreSQL takes well under a second; past this it is left to the next start. */
const EMBEDDED_STOP_BUDGET_MS = 5_000;
/** How long the HTTP close may still take after the deadline, once it has cut off the requests still running. */
const HTTP_CUT_OFF_MS = 250;
/** The watchdog's moment after the deadline: past the connections' close budget, short of the 2 s promise. */
const WATCHDOG_MARGIN_MS = 1_500;

/**
 * Stops taking connections and lets in-flight requests finish until `deadline`; then closes the
 * connections of those still running (their clients see the connection end).
 */
async function closeHttp(app: App, deadline: number, logger: Logger): Promise<void> {
  const closed = app.close();
  if ((await settleBy(closed, deadline)) !== 'timeout') return;
  logger.warn('requests still in flight at the shutdown deadline: closing their connections');
  app.server.closeAllConnections();
  await closed;
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
