/**
 * The OpenAI-compatible door while its server closes: an open stream is answered at once with the
 * batch to read, rather than holding the close up until the batch ends.
 */
import OpenAI, { type APIError } from 'openai';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startFakeOpenAi, type FakeOpenAiServer } from '../fakes/openai.fake.js';
import { createTestApp, type TestApp } from '../support/app.js';

let slow: FakeOpenAiServer;
let t: TestApp;

beforeAll(async () => {
  // The model takes longer than the test: the batch is still open when the server closes.
  slow = await startFakeOpenAi({ latencyMs: 30_000 });
  t = await createTestApp({ OPENAI_API_KEY: slow.apiKey, OPENAI_BASE_URL: slow.url }, { workers: true });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
});
afterAll(async () => {
  await t?.close();
  await slow?.close();
});

it('a closing server answers its open streams at once, naming the batch, instead of holding the close up', async () => {
  const tenant = await t.tenant('Closing Door');
  const sdk = new OpenAI({ baseURL: `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}/v1`, apiKey: tenant.token, maxRetries: 0 });
  const { data: stream, response } = await sdk.chat.completions.create({ model: 'honeyjar', stream: true, messages: [{ role: 'user', content: 'Plan the gala' }] }).withResponse();
  const batchId = response.headers.get('x-honeyjar-batch-id')!;
  await slow.waitFor((fake) => fake.inFlight === 1, 15_000);
  const read = (async () => {
    for await (const _chunk of stream) {
      // the role chunk, then the closing server's error event
    }
  })().catch((e: unknown) => e);
  const started = Date.now();
  await t.app.close();
  const raised = await read;
  expect(Date.now() - started).toBeLessThan(10_000);
  expect(raised).toBeInstanceOf(OpenAI.APIError);
  expect((raised as APIError).error).toMatchObject({ code: 'server_closing' });
  expect((raised as APIError).message).toContain(batchId);
});
