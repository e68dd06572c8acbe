import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { createTestApp, type TestApp } from '../support/app.js';

/** Opens a raw connection, writes `chunks`, and resolves with what the server sent when it closed. */
function rawExchange(port: number, chunks: string[]): Promise<{ text: string; elapsedMs: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (data: string) => (text += data));
    socket.on('error', reject);
    socket.on('close', () => resolve({ text, elapsedMs: Date.now() - started }));
    socket.on('connect', () => {
      for (const chunk of chunks) socket.write(chunk);
    });
  });
}

describe('HTTP server timeouts', () => {
  let t: TestApp;
  let port: number;

  beforeAll(async () => {
    t = await createTestApp({ HTTP_HEADERS_TIMEOUT_MS: '300', HTTP_REQUEST_TIMEOUT_MS: '600', HTTP_KEEP_ALIVE_TIMEOUT_MS: '200' });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    port = (t.app.server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await t?.close();
  });

  it('sets the configured values on the server, and a long idle timeout by default', () => {
    expect(t.app.server.headersTimeout).toBe(300);
    expect(t.app.server.requestTimeout).toBe(600);
    expect(t.app.server.keepAliveTimeout).toBe(200);
    // The LLM timeout times its attempts, plus a minute: the blocking endpoint is quiet that long.
    expect(t.app.server.timeout).toBe(60_000 * 4 + 60_000);
  });

  it('cuts off a client that sends its headers too slowly (408)', async () => {
    const { text, elapsedMs } = await rawExchange(port, ['GET /api/v1/chat/system/health HTTP/1.1\r\nHost: x\r\n']);
    expect(text).toMatch(/^HTTP\/1\.1 408/);
    expect(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))).toEqual({ error: { code: 'request_timeout', message: expect.any(String) } });
    expect(elapsedMs).toBeLessThan(5_000);
  });

  it('cuts off a client that sends its body too slowly (408)', async () => {
    const tenant = await t.tenant();
    const credentials = `Authorization: ${tenant.headers.authorization}\r\nx-organization-id: ${tenant.orgId}\r\n`;
    const head = `POST /api/v1/chat/threads HTTP/1.1\r\nHost: x\r\n${credentials}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n`;
    const { text, elapsedMs } = await rawExchange(port, [head, '{"title":']);
    expect(text).toMatch(/^HTTP\/1\.1 408/);
    expect(elapsedMs).toBeLessThan(5_000);
  });

  it('closes an idle keep-alive connection', async () => {
    const { text } = await rawExchange(port, ['GET /api/v1/chat/system/health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n']);
    expect(text).toMatch(/^HTTP\/1\.1 200/);
  });

  it('refuses a headers timeout above the request timeout', () => {
    expect(() => loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '5000', HTTP_REQUEST_TIMEOUT_MS: '1000' })).toThrow(ConfigError);
  });
});
