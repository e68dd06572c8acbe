import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueNames } from '../../src/adapters/bullmq/job-options.js';
import { createAlertsService, type AlertsServiceDeps } from '../../src/domain/monitoring/alerts.service.js';
import { createStalledJobs } from '../../src/domain/monitoring/stalled-jobs.js';
import { createLogger } from '../../src/logger.js';
import { createTestApp, type TestApp } from '../support/app.js';

const SECRET = 'whsec-test-0123456789abcdef';

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A loopback receiver; `respond` decides each answer (it may hold the response open). */
async function startReceiver(respond: (received: Received, res: ServerResponse) => void) {
  const received: Received[] = [];
  const waiters: Array<() => void> = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const entry = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      received.push(entry);
      for (const wake of waiters.splice(0)) wake();
      respond(entry, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    /** Resolves once `count` requests have arrived. */
    async receivedAtLeast(count: number): Promise<void> {
      while (received.length < count) await new Promise<void>((resolve) => waiters.push(resolve));
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** How a receiver checks a delivery: recompute the HMAC over `<timestamp>.<body>` and compare in constant time. */
function verify(received: Received, secret: string, toleranceSeconds = 300): boolean {
  const timestamp = received.headers['x-honeyjar-timestamp'];
  const signature = received.headers['x-honeyjar-signature'];
  if (typeof timestamp !== 'string' || typeof signature !== 'string' || !signature.startsWith('sha256=')) return false;
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > toleranceSeconds) return false;
  const expected = Buffer.from(createHmac('sha256', secret).update(`${timestamp}.${received.body}`).digest('hex'));
  const given = Buffer.from(signature.slice('sha256='.length));
  return expected.length === given.length && timingSafeEqual(expected, given);
}

let t: TestApp;

beforeAll(async () => {
  t = await createTestApp({ ALERTS_QUEUE_BACKLOG: '2', ALERTS_INTERVAL_MS: '0' });
});

afterAll(async () => {
  await t?.close();
});

function depsFor(subject: string, webhook: { url: string; secret?: string }, overrides: Partial<AlertsServiceDeps> = {}): AlertsServiceDeps {
  return {
    repository: t.container.repositories.alerts,
    queues: queueNames(t.container.config.catalog),
    queueHealth: async () => ({
      [subject]: { counts: { waiting: 9 }, oldestWaitingAgeMs: 1_000, lastFetchAgeMs: 10, workersSeen: 1, paused: false, rateLimitTtlMs: 0 },
    }),
    coordination: t.container.coordination,
    stalled: createStalledJobs({ coordination: t.container.coordination, prefix: t.container.config.queue.prefix }),
    config: { ...t.container.config.alerts, webhookUrl: webhook.url, webhookSecret: webhook.secret, webhookTimeoutMs: 10_000 },
    prefix: t.container.config.queue.prefix,
    logger: createLogger('silent'),
    ...overrides,
  };
}

describe('alert webhook', () => {
  it('signs each delivery with HMAC-SHA256 over `<timestamp>.<body>` when a secret is set', async () => {
    const receiver = await startReceiver((_, res) => res.writeHead(204).end());
    try {
      const service = createAlertsService(depsFor('signed-queue', { url: receiver.url, secret: SECRET }));
      const result = await service.evaluate();
      const alert = result.raised.find((a) => a.subject === 'signed-queue');
      expect(alert).toBeDefined();
      await service.whenDelivered();
      const delivery = receiver.received.find((r) => JSON.parse(r.body).alert.id === alert!.id)!;
      expect(delivery.headers['x-honeyjar-signature']).toMatch(/^sha256=[0-9a-f]{64}$/);
      expect(verify(delivery, SECRET)).toBe(true);
      expect(verify(delivery, 'another-secret-0123456789')).toBe(false);
      expect(verify({ ...delivery, body: delivery.body.replace('"raised"', '"resolved"') }, SECRET)).toBe(false);
      await service.stop();

      // Without a secret: no signature headers.
      const unsigned = createAlertsService(depsFor('unsigned-queue', { url: receiver.url }));
      const raised = (await unsigned.evaluate()).raised.find((a) => a.subject === 'unsigned-queue');
      await unsigned.whenDelivered();
      const plain = receiver.received.find((r) => JSON.parse(r.body).alert.id === raised!.id)!;
      expect(plain.headers['x-honeyjar-signature']).toBeUndefined();
      expect(plain.headers['x-honeyjar-timestamp']).toBeUndefined();
    } finally {
      await receiver.close();
    }
  });

  it('does not follow a redirect, and counts it as a failure (not retried)', async () => {
    const target = await startReceiver((_, res) => res.writeHead(204).end());
    const redirecting = await startReceiver((_, res) => res.writeHead(302, { location: target.url }).end());
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, new Writable({ write: (chunk, _encoding, done) => { lines.push(String(chunk)); done(); } }));
    try {
      const service = createAlertsService(depsFor('redirect-queue', { url: redirecting.url, secret: SECRET }, { logger }));
      const result = await service.evaluate();
      const alert = result.raised.find((a) => a.subject === 'redirect-queue');
      expect(alert).toBeDefined();
      await service.whenDelivered();
      // Once (no retry), and nothing reached the address it redirected to.
      expect(redirecting.received.filter((r) => JSON.parse(r.body).alert.id === alert!.id)).toHaveLength(1);
      expect(target.received).toHaveLength(0);
      const failure = lines.map((line) => JSON.parse(line)).find((entry) => entry.alertId === alert!.id);
      expect(failure).toMatchObject({ failure: 'HTTP 302 redirect, not followed', webhookHost: new URL(redirecting.url).host });
      expect(lines.join('\n')).not.toContain(SECRET);
    } finally {
      await redirecting.close();
      await target.close();
    }
  });

  it('sends outside the evaluation lock: a receiver that does not answer holds up neither the pass nor the next one', async () => {
    let answer!: () => void;
    const held = new Promise<void>((resolve) => (answer = resolve));
    const slow = await startReceiver((_, res) => void held.then(() => res.writeHead(204).end()));
    const probe = new pg.Client({ connectionString: t.database.url });
    await probe.connect();
    try {
      const service = createAlertsService(depsFor('slow-queue', { url: slow.url }));
      const result = await service.evaluate();
      expect(result.status).toBe('evaluated');
      await slow.receivedAtLeast(1);
      // The receiver has the request and has not answered; the evaluation lock is free.
      const { rows } = await probe.query('select pg_try_advisory_lock(7240313) as locked');
      expect(rows[0].locked).toBe(true);
      await probe.query('select pg_advisory_unlock(7240313)');
      const next = await createAlertsService(depsFor('slow-queue', { url: slow.url })).evaluate();
      expect(next.status).toBe('evaluated');

      let delivered = false;
      const done = service.whenDelivered().then(() => (delivered = true));
      expect(delivered).toBe(false);
      answer();
      await done;
      expect(JSON.parse(slow.received[0]!.body)).toMatchObject({ event: 'raised', alert: { subject: 'slow-queue' } });
    } finally {
      answer();
      await probe.end();
      await slow.close();
    }
  });
});
