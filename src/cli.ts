import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { parseArgs } from 'node:util';
import { bootstrapOrganization } from './admin/bootstrap.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { AppError } from './domain/errors.js';
import { openDatabase } from './adapters/postgres/client.js';
import { createDocumentsRepository } from './adapters/postgres/repositories/documents.repository.js';
import { createTenancyRepository } from './adapters/postgres/repositories/tenancy.repository.js';
import { createDocumentsService } from './domain/documents/documents.service.js';
import { createLogger } from './logger.js';
import { prepareDatabase, startServer, type Role } from './main.js';
import type { StageName } from './engine/catalog.js';
import { selectStages } from './adapters/bullmq/job-options.js';
import { readSystemSetting, writeSystemSetting } from './adapters/postgres/system-settings.js';
import { QUEUE_BACKEND_SETTING, QueueBackendMismatchError } from './queue/transport-choice.js';
import { chooseDatabase, type ChosenDatabase } from './adapters/embedded/database-choice.js';
import { describeStartFailure } from './adapters/embedded/startup-error.js';

const USAGE = `Usage: honeyjar <command> [options]

Server:
  start                         API and every worker in one process (what npm start runs)
  api                           HTTP API only
  worker [--queues a,b]         workers only: all five, or the named queues (or stage names)

Administration (prints JSON on stdout, logs on stderr):
  migrate                       create the database if missing and apply migrations
  bootstrap --org NAME --email EMAIL [--operator]
                                create or reuse the organization and its admin user, issue a token:
                                {"orgId","userId","token","operator"}; --operator also makes the
                                user a system operator
  operator grant|revoke --email EMAIL
                                make an existing user a system operator, or no longer one
  token create --org ID --email EMAIL [--role admin|member] [--name NAME]
                                add the user to the organization (if needed) and issue a token
  token revoke TOKEN_OR_ID      revoke a token
  ingest --org ID FILE...       add text or markdown files as documents for retrieval
  queue-backend [redis|postgres]
                                the queue transport recorded for this system (every process uses
                                it); with a value, record that one instead — stop every process
                                first, and start them all again with the new transport

Settings come from the environment; see the README.`;

class UsageError extends Error {}

export async function runCli(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return command ? 0 : 1;
  }
  let config: Readonly<Config>;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return 2;
    }
    throw error;
  }
  try {
    switch (command) {
      case 'start':
      case 'all':
      case 'api':
        return await serve(config, command === 'api' ? 'api' : 'all');
      case 'worker': {
        const { values } = parseArgs({ args: rest, options: { queues: { type: 'string' } }, strict: true });
        const names = values.queues?.split(',').map((name) => name.trim()).filter(Boolean);
        let stages: StageName[];
        try {
          stages = selectStages(config.catalog, names);
        } catch (error) {
          throw new UsageError((error as Error).message);
        }
        return await serve(config, 'worker', stages);
      }
      case 'migrate':
        await withDatabase(config, async () => undefined);
        printJson({ migrated: true });
        return 0;
      case 'bootstrap':
        return await bootstrap(config, rest);
      case 'token':
        return await token(config, rest);
      case 'operator':
        return await operator(config, rest);
      case 'ingest':
        return await ingest(config, rest);
      case 'queue-backend':
        return await queueBackend(config, rest);
      default:
        throw new UsageError(`unknown command: ${command}`);
    }
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`${(error as Error).message}\n\n${USAGE}\n`);
      return 2;
    }
    throw error;
  }
}

async function serve(config: Readonly<Config>, role: Role, stages?: StageName[]): Promise<number> {
  const logger = createLogger(config.logLevel);
  let database: ChosenDatabase | undefined;
  try {
    database = await chooseDatabase(config, logger);
    await startServer(database.config, role, logger, { ...(stages ? { stages } : {}), afterClose: database.release });
  } catch (error) {
    // A transport that is not this system's, or another expected failure (nothing answers, a port
    // taken, …): the reason in one line; anything else keeps its stack.
    const reason = error instanceof QueueBackendMismatchError ? error.message : describeStartFailure(error, database?.label ?? 'PostgreSQL');
    if (error instanceof QueueBackendMismatchError) logger.fatal({ code: 'queue_backend_mismatch' }, `could not start: ${reason}`);
    else if (reason) logger.fatal(`could not start: ${reason}`);
    else logger.fatal({ err: error }, 'could not start');
    await database?.release().catch((stopError: unknown) => logger.error({ err: stopError }, 'could not stop the embedded PostgreSQL'));
    // Connections opened before the failure would keep the process alive.
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
    process.exit(1);
  }
  // Keeps running until a signal; main.ts exits the process.
  return new Promise<number>(() => {});
}

/**
 * Runs `work` against the database after migrating it, then closes everything. With the embedded
 * PostgreSQL, a running one is used; otherwise it is started for the command and stopped after it.
 */
async function withDatabase<T>(config: Readonly<Config>, work: (db: ReturnType<typeof openDatabase>) => Promise<T>): Promise<T> {
  const logger = createLogger(config.logLevel, 2);
  const chosen = await chooseDatabase(config, logger);
  try {
    await prepareDatabase(chosen.config, logger).catch((error: unknown) => {
      const reason = describeStartFailure(error, chosen.label);
      throw reason ? new Error(reason) : error;
    });
    const database = openDatabase(chosen.config.database.url, { poolMax: 2 });
    try {
      return await work(database);
    } finally {
      await database.close();
    }
  } finally {
    await chosen.release();
  }
}

async function bootstrap(config: Readonly<Config>, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { org: { type: 'string' }, email: { type: 'string' }, operator: { type: 'boolean', default: false } },
    strict: true,
  });
  if (!values.org?.trim() || !values.email?.includes('@')) throw new UsageError('bootstrap needs --org NAME and --email EMAIL');
  const result = await withDatabase(config, (database) =>
    bootstrapOrganization(createTenancyRepository(database.db), values.org!.trim(), values.email!.trim(), { operator: values.operator }),
  );
  printJson(result);
  return 0;
}

async function operator(config: Readonly<Config>, args: string[]): Promise<number> {
  const [action, ...rest] = args;
  if (action !== 'grant' && action !== 'revoke') throw new UsageError('operator needs grant or revoke');
  const { values } = parseArgs({ args: rest, options: { email: { type: 'string' } }, strict: true });
  if (!values.email?.includes('@')) throw new UsageError(`operator ${action} needs --email EMAIL`);
  const result = await withDatabase(config, ({ db }) => createTenancyRepository(db).setOperator(values.email!, action === 'grant'));
  if (!result) {
    process.stderr.write(`no user with email ${values.email}\n`);
    printJson({ error: { code: 'user_not_found', message: `No user with email ${values.email}` } });
    return 1;
  }
  printJson(result);
  return 0;
}

async function token(config: Readonly<Config>, args: string[]): Promise<number> {
  const [action, ...rest] = args;
  if (action === 'create') {
    const { values } = parseArgs({
      args: rest,
      options: { org: { type: 'string' }, email: { type: 'string' }, role: { type: 'string', default: 'member' }, name: { type: 'string' } },
      strict: true,
    });
    if (!values.org || !values.email?.includes('@')) throw new UsageError('token create needs --org ID and --email EMAIL');
    if (values.role !== 'admin' && values.role !== 'member') throw new UsageError('--role is admin or member');
    const role = values.role;
    const result = await withDatabase(config, async ({ db }) => {
      const tenancy = createTenancyRepository(db);
      const org = /^[0-9a-f-]{36}$/i.test(values.org!) ? await tenancy.findOrganization(values.org!) : undefined;
      if (!org) throw new UsageError(`no organization with id ${values.org}`);
      const user = await tenancy.upsertUser(values.email!);
      await tenancy.setMembership(org.id, user.id, role);
      const created = await tenancy.createToken(user.id, values.name);
      return { orgId: org.id, userId: user.id, tokenId: created.id, token: created.token };
    });
    printJson(result);
    return 0;
  }
  if (action === 'revoke') {
    const [value] = rest;
    if (!value) throw new UsageError('token revoke needs a token or a token id');
    const revoked = await withDatabase(config, ({ db }) => createTenancyRepository(db).revokeToken(value));
    printJson({ revoked });
    return revoked ? 0 : 1;
  }
  throw new UsageError('token needs create or revoke');
}

async function ingest(config: Readonly<Config>, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { org: { type: 'string' } }, allowPositionals: true, strict: true });
  if (!values.org || positionals.length === 0) throw new UsageError('ingest needs --org ID and at least one FILE');
  const documents = await withDatabase(config, async ({ db, pool }) => {
    const tenancy = createTenancyRepository(db);
    const org = /^[0-9a-f-]{36}$/i.test(values.org!) ? await tenancy.findOrganization(values.org!) : undefined;
    if (!org) throw new UsageError(`no organization with id ${values.org}`);
    const service = createDocumentsService({ documents: createDocumentsRepository(db, pool), quota: config.documentQuota });
    const added = [];
    for (const file of positionals) {
      const content = await readFile(file, 'utf8');
      if (Buffer.byteLength(content) > config.limits.maxDocumentBytes) throw new UsageError(`${file} is larger than ${config.limits.maxDocumentBytes} bytes`);
      if (!content.trim()) throw new UsageError(`${file} is empty`);
      const doc = await service.add(org.id, null, titleOf(file, content), content).catch((error: unknown) => {
        if (error instanceof AppError) throw new UsageError(`${file}: ${error.message}`);
        throw error;
      });
      added.push({ id: doc.id, title: doc.title, chunks: doc.chunks, file });
    }
    return added;
  });
  printJson({ documents });
  return 0;
}

/** A markdown file's first heading, else the file name. */
function titleOf(file: string, content: string): string {
  const heading = /^#\s+(.+)$/m.exec(content)?.[1]?.trim();
  return (heading || basename(file, extname(file))).slice(0, 300);
}

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Shows or records the queue transport of this system (see src/queue/transport-choice.ts). */
async function queueBackend(config: Readonly<Config>, args: string[]): Promise<number> {
  const [value, ...extra] = args;
  if (extra.length > 0 || (value !== undefined && value !== 'redis' && value !== 'postgres')) throw new UsageError('usage: queue-backend [redis|postgres]');
  return withDatabase(config, async (database) => {
    if (value === undefined) {
      printJson({ queueBackend: (await readSystemSetting(database.pool, QUEUE_BACKEND_SETTING)) ?? null });
    } else {
      const previous = await writeSystemSetting(database.pool, QUEUE_BACKEND_SETTING, value);
      printJson({ queueBackend: value, previous: previous ?? null });
    }
    return 0;
  });
}
