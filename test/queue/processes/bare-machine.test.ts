/**
 * A bare machine: `bin/honeyjar.js start` in a network namespace with only loopback (nothing on
 * 5432 or 6379), no DATABASE_URL, a fresh HONEYJAR_DATA_DIR. It must start an embedded PostgreSQL,
 * say so, print the first admin token and serve the README's curl calls (a document, a thread, a
 * blocking message answered from that document, a queued message that completes in-process since
 * Redis is absent); an `api` process and the CLI connect to the same server; SIGTERM stops the
 * embedded PostgreSQL with nothing left running; a restart finds every row again.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLoopbackNamespace, isRunning, loopbackNamespaceUnavailable, processesMentioning, type LoopbackNamespace } from '../../support/netns.js';
import { killAll, runCli, startServerProcess, waitUntil, type ServerProcess } from '../../support/processes.js';

const unavailable = loopbackNamespaceUnavailable();
if (unavailable) console.warn(`bare-machine tests skipped: ${unavailable}`);

let ns: LoopbackNamespace;
let root: string;
let dataDir: string;
let env: Record<string, string>;

beforeAll(async () => {
  if (unavailable) return;
  ns = await createLoopbackNamespace();
  // As root the embedded server runs as the OS user postgres, which must reach the data directory.
  root = mkdtempSync(join(tmpdir(), 'honeyjar-bare-'));
  chmodSync(root, 0o755);
  dataDir = join(root, 'data');
  env = { HONEYJAR_DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', SHUTDOWN_TIMEOUT_MS: '5000' };
});

afterAll(async () => {
  await killAll();
  if (unavailable) return;
  ns.close();
  // Nothing may be left running on the directory, whatever the test did.
  for (const pid of processesMentioning(dataDir)) process.kill(pid, 'SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

const messageOf = (proc: ServerProcess, prefix: string) => proc.logs.find((line) => typeof line.msg === 'string' && line.msg.startsWith(prefix))?.msg;

function logLines(stdout: string): { level: number; time: number; msg: string; err?: unknown }[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line));
}

function postmasterPid(): number {
  return Number(readFileSync(join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]);
}

async function stop(proc: ServerProcess): Promise<void> {
  proc.signal('SIGTERM');
  const exit = await proc.waitForExit(15_000);
  expect(exit.code, proc.tail()).toBe(0);
}

describe.skipIf(unavailable !== undefined)('a bare machine (loopback only, no DATABASE_URL)', () => {
  let token: string;
  let orgId: string;
  let threadId: string;
  const auth = () => ['-H', `Authorization: Bearer ${token}`, '-H', `x-organization-id: ${orgId}`, '-H', 'content-type: application/json'];

  it('starts an embedded PostgreSQL, says why, and serves the README calls', async () => {
    const server = await startServerProcess('start', env, { name: 'first start', launcher: ns.launcher, readyTimeoutMs: 30_000 });
    expect(messageOf(server, 'database:')).toMatch(
      new RegExp(
        `^database: embedded PostgreSQL 17 in ${dataDir}, 127\\.0\\.0\\.1:\\d+/honeyjar, started by this process ` +
          '\\(DATABASE_URL is not set and nothing answers at 127\\.0\\.0\\.1:5432: a new one\\)$',
      ),
    );
    // No Redis configured: the queues are on the (embedded) PostgreSQL, with real workers.
    expect(messageOf(server, 'queue transport:')).toMatch(/^queue transport: BullMQ on PostgreSQL \(REDIS_URL is not set/);
    const manifest = JSON.parse(readFileSync(join(dataDir, 'honeyjar.json'), 'utf8'));
    expect(manifest).toMatchObject({ kind: 'embedded', user: 'postgres', database: 'honeyjar' });
    // The password is in the record, readable by its owner only, and in no log line.
    expect(manifest.password).toMatch(/^[\w-]{32}$/);
    expect(server.lines.join('\n')).not.toContain(manifest.password);

    const printed = server.lines.join('\n');
    orgId = /x-organization-id: (\S+)/.exec(printed)?.[1] ?? '';
    token = /Authorization: Bearer (\S+)/.exec(printed)?.[1] ?? '';
    expect(token).toMatch(/^hj_/);
    const base = `http://127.0.0.1:${server.port}/api/v1`;

    const health = await ns.curl([`${base}/chat/system/health`]);
    expect(health.status).toBe(200);
    expect(health.body.checks.database.status).toBe('healthy');

    const doc = await ns.curl([
      ...auth(),
      '-d',
      JSON.stringify({ title: 'Crisis playbook', content: 'The head of communications approves every public statement.' }),
      `${base}/documents`,
    ]);
    expect(doc.status, doc.text).toBe(201);
    const thread = await ns.curl([...auth(), '-d', JSON.stringify({ title: 'Launch' }), `${base}/chat/threads`]);
    expect(thread.status, thread.text).toBe(201);
    threadId = thread.body.id;

    const blocking = await ns.curl([...auth(), '-d', JSON.stringify({ content: 'Who approves public statements in a crisis?' }), `${base}/chat/threads/${threadId}/messages`]);
    expect(blocking.status, blocking.text).toBe(200);
    // Retrieval (full-text search on the embedded server) found the playbook.
    expect(blocking.body.results.rag.documents.map((d: { title: string }) => d.title)).toContain('Crisis playbook');
    expect(blocking.body.assistantMessage.content).toBeTruthy();

    const queued = await ns.curl([...auth(), '-d', JSON.stringify({ content: 'Draft a holding statement' }), `${base}/chat/threads/${threadId}/messages/queued`]);
    expect(queued.status, queued.text).toBe(202);
    expect(queued.body.degraded).toBeUndefined();
    const batchId = queued.body.data.tracking.batchId;
    const done = await waitUntil(
      async () => {
        const batch = await ns.curl([...auth(), `${base}/chat/batch/${batchId}/results`]);
        return batch.body?.status === 'completed' ? batch.body : undefined;
      },
      { timeoutMs: 20_000, what: 'the queued message completes' },
    );
    expect(done.completedJobs).toBe(done.totalJobs);
    const messages = await ns.curl([...auth(), `${base}/chat/threads/${threadId}/messages`]);
    expect(messages.body.messages.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);

    // A second process, the `api` role, and the CLI use the same server; the first keeps owning it.
    const ownerPid = server.pid;
    const api = await startServerProcess('api', env, { name: 'api', launcher: ns.launcher, readyTimeoutMs: 30_000 });
    expect(messageOf(api, 'database:')).toMatch(new RegExp(`, run by process ${ownerPid} \\(DATABASE_URL is not set and ${dataDir} holds its data\\)$`));
    const viaApi = await ns.curl([...auth(), `http://127.0.0.1:${api.port}/api/v1/chat/threads/${threadId}/messages`]);
    expect(viaApi.body.messages).toHaveLength(4);
    const cli = await runCli(['bootstrap', '--org', 'Second', '--email', 'second@bare.test'], env, 30_000, ns.launcher);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stderr).toContain(`run by process ${ownerPid}`);
    expect(JSON.parse(cli.stdout.trim().split('\n').pop()!).token).toMatch(/^hj_/);
    await stop(api);
    expect(messageOf(api, 'embedded PostgreSQL stopped')).toBeUndefined();
    expect((await ns.curl([`${base}/chat/system/health`])).body.checks.database.status).toBe('healthy');

    // SIGTERM: the owner stops the embedded server; nothing of it is left.
    const postgres = postmasterPid();
    await stop(server);
    expect(messageOf(server, 'embedded PostgreSQL stopped'), server.tail(30)).toBeDefined();
    expect(existsSync(join(dataDir, 'postgres', 'postmaster.pid'))).toBe(false);
    expect(isRunning(postgres)).toBe(false);
    expect(processesMentioning(dataDir)).toEqual([]);
  }, 120_000);

  it('restarts on the same data: no new token, every row still there', async () => {
    const server = await startServerProcess('start', env, { name: 'restart', launcher: ns.launcher, readyTimeoutMs: 30_000 });
    expect(messageOf(server, 'database:')).toMatch(new RegExp(`, started by this process \\(DATABASE_URL is not set and ${dataDir} holds its data\\)$`));
    expect(server.lines.join('\n')).not.toContain('First start');
    const messages = await ns.curl([...auth(), `http://127.0.0.1:${server.port}/api/v1/chat/threads/${threadId}/messages`]);
    expect(messages.status, messages.text).toBe(200);
    expect(messages.body.messages).toHaveLength(4);
    await stop(server);
    expect(processesMentioning(dataDir)).toEqual([]);
  }, 60_000);

  it('stops the embedded PostgreSQL when the start fails after starting it (the HTTP port is taken)', async () => {
    const [command, ...prefix] = ns.launcher;
    const holder = spawn(command!, [...prefix, process.execPath, '-e', "require('net').createServer().listen(4321, '127.0.0.1', () => console.log('held'))"], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      await new Promise((resolve) => holder.stdout!.once('data', resolve));
      const result = await runCli(['start'], { ...env, PORT: '4321' }, 30_000, ns.launcher);
      expect(result.code).toBe(1);
      const messages = logLines(result.stdout).map((line) => line.msg);
      expect(messages).toContain('could not start: the HTTP port is in use (EADDRINUSE: address already in use 127.0.0.1:4321); set PORT to another one');
      expect(messages).toContain('embedded PostgreSQL stopped');
      expect(logLines(result.stdout).filter((line) => line.level === 60 && line.err)).toEqual([]);
      expect(processesMentioning(dataDir)).toEqual([]);
    } finally {
      holder.kill('SIGKILL');
    }
  }, 60_000);

  it('never moves to an embedded database silently: a recorded default address that does not answer is one clear line', async () => {
    const other = join(root, 'recorded-default');
    mkdirSync(other);
    writeFileSync(join(other, 'honeyjar.json'), JSON.stringify({ version: 1, kind: 'default-address' }));
    const result = await runCli(['start'], { ...env, HONEYJAR_DATA_DIR: other }, 15_000, ns.launcher);
    expect(result.code).toBe(1);
    const fatal = logLines(result.stdout).filter((line) => line.level === 60);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]!.msg).toBe(
      `could not start: nothing answers at 127.0.0.1:5432, the PostgreSQL this directory uses (${other}/honeyjar.json records the default address): ` +
        `start it, set DATABASE_URL, or remove ${other} to use an embedded PostgreSQL`,
    );
    expect(fatal[0]!.err).toBeUndefined();
    expect(existsSync(join(other, 'postgres'))).toBe(false);
  }, 60_000);
});

describe('an expected start failure', () => {
  it('is one line without a stack trace', async () => {
    // A port nothing listens on (the namespace is not needed: DATABASE_URL is set).
    const url = 'postgres://postgres@127.0.0.1:1/honeyjar';
    const result = await runCli(['start'], { DATABASE_URL: url, PORT: '0', LOG_LEVEL: 'info', HONEYJAR_DATA_DIR: join(tmpdir(), 'honeyjar-unused') }, 15_000);
    expect(result.code).toBe(1);
    // In the order they were logged (the fatal line is written synchronously, so it may come out first).
    const lines = logLines(result.stdout).sort((x, y) => x.time - y.time);
    expect(lines.map((line) => line.msg)).toEqual([
      'database: PostgreSQL at 127.0.0.1:1/honeyjar (DATABASE_URL)',
      'could not start: PostgreSQL at 127.0.0.1:1/honeyjar (DATABASE_URL) refused the connection (ECONNREFUSED)',
    ]);
    expect(result.stdout).not.toContain('stack');
  }, 60_000);
});
