/**
 * Time to first token at a streaming `/v1/chat/completions` client, less the fake LLM's own time
 * to first token. One client, one request at a time (low load), each a new conversation; the
 * fake LLM (in this process) records when each streamed answer's request arrived and when its
 * first content chunk went out (`fake.streams`). For each request:
 *
 *   client TTFT   request sent → first chunk with content text read by the client
 *   fake TTFT     the pipeline's LLM request arrived at the fake → the fake wrote its first content chunk
 *   overhead      client TTFT − fake TTFT
 *   before LLM    request sent → the fake received the pipeline's LLM request
 *   after LLM     the fake's first content chunk → the client's first content chunk
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { FakeOpenAiServer } from '../../test/fakes/openai.fake.js';
import { summarize, type Summary } from './stats.js';

export interface DoorTtftResult {
  requests: number;
  failed: number;
  failures: string[];
  fakeTtftMs: Summary;
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
            // Chunks made from the batch's events carry an `id:` line before their data.
            const data = /^data: (.*)$/m.exec(event)?.[1];
            if (data === undefined) continue;
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
  requests: number;
  warmup: number;
}): Promise<DoorTtftResult> {
  const { fake } = options;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const client: number[] = [];
  const fakeTtft: number[] = [];
  const overhead: number[] = [];
  const before: number[] = [];
  const after: number[] = [];
  const failures: string[] = [];
  let pieces = 0;
  try {
    for (let i = 0; i < options.warmup + options.requests; i++) {
      // Letters only: a run of digits can pass as a card or phone number, which the security
      // stage redacts before the text reaches the LLM, and the marker would not be found there.
      const marker = `door-ttft-${letters(i)}-${letters(Date.now())}`;
      try {
        const timing = await streamOnce(agent, options.port, options.headers, `Draft a two-line teaser for the autumn launch (${marker})`);
        // The fake's streamed answers are recorded in order, one per streamed request.
        const streamed = fake.chatRequests().filter((r) => (r.body as { stream?: unknown } | undefined)?.stream === true);
        const at = streamed.findIndex((r) => JSON.stringify(r.body).includes(marker));
        // The fake records a stream when it has written its end, which the client may see first.
        if (at >= 0 && !fake.streams[at]) await fake.waitFor((f) => f.streams.length > at, 2_000).catch(() => undefined);
        const llm = fake.streams[at];
        if (!timing.done || !timing.firstContentAt || !llm) throw new Error(`incomplete: done ${timing.done}, content ${timing.firstContentAt > 0}, llm stream ${!!llm}`);
        if (i < options.warmup) continue;
        const ttft = timing.firstContentAt - timing.sentAt;
        const own = llm.firstTokenAt - llm.receivedAt;
        client.push(ttft);
        fakeTtft.push(own);
        overhead.push(ttft - own);
        before.push(llm.receivedAt - timing.sentAt);
        after.push(timing.firstContentAt - llm.firstTokenAt);
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
    fakeTtftMs: summarize(ok(fakeTtft)),
    clientTtftMs: summarize(ok(client)),
    overheadMs: summarize(ok(overhead)),
    beforeLlmMs: summarize(ok(before)),
    afterLlmMs: summarize(ok(after)),
    streamedInPieces: pieces,
  };
}

/** `n` written in the letters a–z (base 26). */
function letters(n: number): string {
  let out = '';
  let rest = Math.floor(n);
  do {
    out = String.fromCharCode(97 + (rest % 26)) + out;
    rest = Math.floor(rest / 26);
  } while (rest > 0);
  return out;
}
