/**
 * Time to first token at a streaming `/v1/chat/completions` client, less the fake LLM's own time
 * to first token. One client, one request at a time (low load), each a new conversation; the
 * fake LLM (in this process) waits `latencyMs` after a request arrives and then writes its first
 * chunk, so its own time to first token is that wait. For each request:
 *
 *   client TTFT   request sent → first chunk with content text read by the client
 *   overhead      client TTFT − the fake's wait
 *   before LLM    request sent → the fake received the pipeline's LLM request
 *   after LLM     the fake's first chunk → the client's first content chunk
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { FakeOpenAiServer } from '../../test/fakes/openai.fake.js';
import { summarize, type Summary } from './stats.js';

export interface DoorTtftResult {
  requests: number;
  failed: number;
  failures: string[];
  fakeTtftMs: number;
  clientTtftMs: Summary;
  overheadMs: Summary;
  beforeLlmMs: Summary;
  afterLlmMs: Summary;
  /** How many answers were streamed in more than one content chunk (tokens, not the whole reply at the end). */
  streamedInPieces: number;
}

interface StreamTiming {
  sentAt: number;
  firstContentAt: number;
  contentChunks: number;
  done: boolean;
}

/** One streaming completion over a keep-alive agent; times in Date.now() milliseconds (the fake's clock). */
function streamOnce(agent: http.Agent, port: number, headers: Record<string, string>, content: string): Promise<StreamTiming> {
  const body = Buffer.from(JSON.stringify({ model: 'honeyjar', stream: true, messages: [{ role: 'user', content }] }));
  return new Promise((resolve, reject) => {
    const startedAt = performance.now();
    const sentAt = Date.now();
    let firstContentAt = 0;
    let contentChunks = 0;
    let buffer = '';
    let done = false;
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions', agent, timeout: 60_000, headers: { ...headers, 'content-type': 'application/json', 'content-length': body.length } },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new Error(`status ${res.statusCode}`));
        }
        res.setEncoding('utf8');
        res.on('data', (text: string) => {
          buffer += text;
          for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
            const event = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            if (!event.startsWith('data: ')) continue;
            const data = event.slice(6);
            if (data === '[DONE]') {
              done = true;
              continue;
            }
            const chunk = JSON.parse(data) as { choices?: Array<{ delta?: { content?: string } }>; error?: unknown };
            if (chunk.error) return reject(new Error(`error event ${JSON.stringify(chunk.error)}`));
            if (chunk.choices?.some((c) => c.delta?.content)) {
              contentChunks++;
              // Measured on the monotonic clock, reported on the fake's.
              if (!firstContentAt) firstContentAt = sentAt + (performance.now() - startedAt);
            }
          }
        });
        res.on('end', () => resolve({ sentAt, firstContentAt, contentChunks, done }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

export async function measureDoorTtft(options: {
  port: number;
  headers: Record<string, string>;
  fake: FakeOpenAiServer;
  latencyMs: number;
  requests: number;
  warmup: number;
}): Promise<DoorTtftResult> {
  const { fake } = options;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const client: number[] = [];
  const overhead: number[] = [];
  const before: number[] = [];
  const after: number[] = [];
  const failures: string[] = [];
  let pieces = 0;
  try {
    for (let i = 0; i < options.warmup + options.requests; i++) {
      const marker = `door-ttft-${i}-${Date.now()}`;
      try {
        const timing = await streamOnce(agent, options.port, options.headers, `Draft a two-line teaser for the autumn launch (${marker})`);
        const llm = fake.chatRequests().find((r) => JSON.stringify(r.body).includes(marker));
        if (!timing.done || !timing.firstContentAt || !llm) throw new Error(`incomplete: done ${timing.done}, content ${timing.firstContentAt > 0}, llm request ${!!llm}`);
        if (i < options.warmup) continue;
        const ttft = timing.firstContentAt - timing.sentAt;
        client.push(ttft);
        overhead.push(ttft - options.latencyMs);
        before.push(llm.receivedAt - timing.sentAt);
        after.push(timing.firstContentAt - (llm.receivedAt + options.latencyMs));
        if (timing.contentChunks > 1) pieces++;
      } catch (error) {
        if (failures.length < 5) failures.push((error as Error).message);
        if (i >= options.warmup) client.push(Number.NaN);
      }
    }
  } finally {
    agent.destroy();
  }
  const ok = (values: number[]) => values.filter(Number.isFinite);
  return {
    requests: options.requests,
    failed: client.filter((v) => !Number.isFinite(v)).length,
    failures,
    fakeTtftMs: options.latencyMs,
    clientTtftMs: summarize(ok(client)),
    overheadMs: summarize(ok(overhead)),
    beforeLlmMs: summarize(ok(before)),
    afterLlmMs: summarize(ok(after)),
    streamedInPieces: pieces,
  };
}
