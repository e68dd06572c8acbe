/**
 * A fake OpenAI-compatible server for tests and benchmarks. It speaks the documented REST protocol the
 * official `openai` SDK talks to, so the SDK is used unchanged against it (pass `url` as `baseURL`):
 *
 *   POST /v1/chat/completions   JSON `chat.completion`, or SSE `chat.completion.chunk` events + `data: [DONE]`
 *                               (streamed like the real API: the role chunk at once, the first content
 *                               chunk after `firstTokenMs`, one more every `tokenIntervalMs`, see `setStreaming`)
 *   GET  /v1/models             `{object:'list', data:[{id, object:'model', created, owned_by}]}`
 *
 * Every request needs `Authorization: Bearer <apiKey>`; otherwise a 401 with OpenAI's error shape
 * `{error:{message,type,param,code}}`. Failures can be queued with `failNext`. Requests are recorded, and
 * in-flight / max-concurrent / aborted (client disconnected before the answer) counts are tracked.
 * `waitFor` resolves when a condition on the fake becomes true, so tests need no fixed sleeps.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeChatMessage {
  role: string;
  content?: unknown;
  [key: string]: unknown;
}

export interface FakeChatBody {
  model?: string;
  messages?: FakeChatMessage[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean } | null;
  [key: string]: unknown;
}

export interface FakeOpenAiError {
  type?: string;
  code?: string | null;
  message?: string;
  param?: string | null;
}

export interface FailureSpec {
  /** Extra response headers, e.g. `retry-after`, `retry-after-ms`, `x-ratelimit-*`. */
  headers?: Record<string, string>;
  /** Overrides the default error body fields for the status. */
  error?: FakeOpenAiError;
  /** How many consecutive requests fail this way (default 1). */
  times?: number;
  /** Delay before this failure is answered (default: the server's latency). */
  latencyMs?: number;
}

export interface RecordedRequest {
  method: string;
  /** Path without query string, e.g. `/v1/chat/completions`. */
  path: string;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body (undefined when there is none or it is not JSON). */
  body: unknown;
  receivedAt: number;
}

export interface FakeOpenAiOptions {
  /** The key clients must present as `Authorization: Bearer <key>` (default `sk-fake-test-key`). */
  apiKey?: string;
  /** Delay before answering any request; abortable by the client disconnecting. */
  latencyMs?: number;
  /** The assistant reply for a chat completion (default: a deterministic echo of the last user message). */
  reply?: (body: FakeChatBody) => string;
  /** Model ids listed by GET /v1/models (default `['gpt-4o-mini', 'gpt-4o']`). */
  models?: string[];
  /** Value of the `created` field (default a fixed timestamp, so responses are deterministic). */
  created?: number;
}

export interface StreamingSpec {
  /** From the response's headers to the first content chunk (default 0). */
  firstTokenMs?: number;
  /** Between content chunks (default 0: all at once). */
  tokenIntervalMs?: number;
  /** Content words per chunk (default 1). */
  wordsPerChunk?: number;
}

/** When a streamed answer's chunks went out: for figures that subtract the fake's own time to first token. */
export interface StreamTiming {
  receivedAt: number;
  /** When the first content chunk was written (performance.timeOrigin-based ms, like `performance.now()` + origin). */
  firstTokenAt: number;
  /** Its text. */
  firstToken: string;
}

export interface FakeOpenAiServer {
  /** Base URL ending with `/v1`, for the SDK's `baseURL`. */
  readonly url: string;
  readonly apiKey: string;
  /** Every request received, in arrival order (including failed and aborted ones). */
  readonly requests: RecordedRequest[];
  /** Requests received but not yet answered or aborted. */
  readonly inFlight: number;
  /** The highest `inFlight` seen since start (or the last `reset`). */
  readonly maxConcurrent: number;
  /** Requests whose client disconnected before the answer was sent. */
  readonly aborted: number;
  /** Requests answered in full (any status). */
  readonly completed: number;
  /** Chat completion requests only. */
  chatRequests(): RecordedRequest[];
  /** Queues a failure for the next request(s) to a /v1 endpoint. */
  failNext(status: number, spec?: FailureSpec): void;
  setLatency(ms: number): void;
  setReply(reply: (body: FakeChatBody) => string): void;
  /** How streamed answers are paced. */
  setStreaming(spec: StreamingSpec): void;
  /** The next streamed answer stops after `chunks` content chunks: the connection is cut (a partial stream). */
  cutNextStreamAfter(chunks: number): void;
  /** Each streamed answer's timing, in order. */
  readonly streams: StreamTiming[];
  /** Clears recorded requests, counters and queued failures (not latency or reply). */
  reset(): void;
  /** Resolves once `predicate` holds (checked after every state change); rejects after `timeoutMs`. */
  waitFor(predicate: (fake: FakeOpenAiServer) => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

const DEFAULT_KEY = 'sk-fake-test-key';
const DEFAULT_CREATED = 1_700_000_000;

/** Deterministic token estimate, roughly what a tokenizer gives for English text. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part) => (part && typeof part === 'object' && typeof (part as { text?: unknown }).text === 'string' ? (part as { text: string }).text : ''))
      .join('');
  }
  return '';
}

export function defaultFakeReply(body: FakeChatBody): string {
  const messages = body.messages ?? [];
  const lastUser = [...messages].reverse().find((m) => m.role === 'user');
  const text = contentText(lastUser?.content).replace(/\s+/g, ' ').trim();
  const excerpt = text.length > 120 ? `${text.slice(0, 120)}…` : text;
  return `Fake reply from ${body.model ?? 'unknown-model'} to ${messages.length} message(s). Last user message: "${excerpt}"`;
}

function defaultError(status: number): Required<FakeOpenAiError> {
  switch (status) {
    case 400:
      return { type: 'invalid_request_error', code: null, param: null, message: 'Invalid request.' };
    case 401:
      return { type: 'invalid_request_error', code: 'invalid_api_key', param: null, message: 'Incorrect API key provided.' };
    case 403:
      return { type: 'invalid_request_error', code: 'unsupported_country_region_territory', param: null, message: 'Country, region, or territory not supported.' };
    case 404:
      return { type: 'invalid_request_error', code: 'model_not_found', param: 'model', message: 'The model does not exist or you do not have access to it.' };
    case 408:
      return { type: 'timeout', code: null, param: null, message: 'Request timed out.' };
    case 409:
      return { type: 'conflict', code: null, param: null, message: 'Conflict.' };
    case 422:
      return { type: 'invalid_request_error', code: null, param: null, message: 'Unprocessable entity.' };
    case 429:
      return { type: 'requests', code: 'rate_limit_exceeded', param: null, message: 'Rate limit reached for requests.' };
    case 503:
      return { type: 'server_error', code: null, param: null, message: 'The engine is currently overloaded, please try again later.' };
    default:
      return status >= 500
        ? { type: 'server_error', code: null, param: null, message: 'The server had an error while processing your request.' }
        : { type: 'invalid_request_error', code: null, param: null, message: `HTTP ${status}.` };
  }
}

/** Typical x-ratelimit-* headers OpenAI sends; merged under any headers a failure specifies. */
export function rateLimitHeaders(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    'x-ratelimit-limit-requests': '500',
    'x-ratelimit-limit-tokens': '200000',
    'x-ratelimit-remaining-requests': '0',
    'x-ratelimit-remaining-tokens': '199000',
    'x-ratelimit-reset-requests': '120ms',
    'x-ratelimit-reset-tokens': '300ms',
    ...overrides,
  };
}

export async function startFakeOpenAi(options: FakeOpenAiOptions = {}): Promise<FakeOpenAiServer> {
  const apiKey = options.apiKey ?? DEFAULT_KEY;
  const models = options.models ?? ['gpt-4o-mini', 'gpt-4o'];
  const created = options.created ?? DEFAULT_CREATED;
  let latencyMs = options.latencyMs ?? 0;
  let reply = options.reply ?? defaultFakeReply;
  let streaming: Required<StreamingSpec> = { firstTokenMs: 0, tokenIntervalMs: 0, wordsPerChunk: 1 };
  const cuts: number[] = [];
  const streams: StreamTiming[] = [];

  const requests: RecordedRequest[] = [];
  const failures: Array<{ status: number; spec: FailureSpec; remaining: number }> = [];
  let inFlight = 0;
  let maxConcurrent = 0;
  let aborted = 0;
  let completed = 0;
  let requestCounter = 0;
  const waiters = new Set<() => void>();

  const notify = (): void => {
    for (const check of [...waiters]) check();
  };

  const readBody = (req: IncomingMessage): Promise<string> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      const done = (): void => resolve(Buffer.concat(chunks).toString('utf8'));
      req.on('end', done);
      req.on('close', done);
      req.on('error', reject);
    });

  const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    if (res.destroyed || res.writableEnded) return;
    const payload = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(payload).toString(),
      ...headers,
    });
    res.end(payload);
  };

  const sendError = (res: ServerResponse, status: number, error: FakeOpenAiError = {}, headers: Record<string, string> = {}): void => {
    const base = defaultError(status);
    sendJson(res, status, { error: { ...base, ...error } }, headers);
  };

  /** Waits `ms`, resolving false early if the client disconnects. */
  const delay = (ms: number, res: ServerResponse, closed: () => boolean): Promise<boolean> =>
    new Promise((resolve) => {
      if (closed()) return resolve(false);
      if (ms <= 0) return resolve(true);
      const timer = setTimeout(() => {
        res.off('close', onClose);
        resolve(true);
      }, ms);
      const onClose = (): void => {
        clearTimeout(timer);
        resolve(false);
      };
      res.once('close', onClose);
    });

  const chatCompletion = (res: ServerResponse, body: FakeChatBody, headers: Record<string, string>): void => {
    if (typeof body.model !== 'string' || body.model === '') {
      return sendError(res, 400, { message: "you must provide a model parameter", param: 'model', code: null }, headers);
    }
    if (!Array.isArray(body.messages) || body.messages.length === 0) {
      return sendError(res, 400, { message: "'messages' must be a non-empty array", param: 'messages', code: null }, headers);
    }
    const content = reply(body);
    const id = `chatcmpl-fake${String(requestCounter).padStart(6, '0')}`;
    const promptTokens = estimateTokens(body.messages.map((m) => contentText(m.content)).join('\n'));
    const completionTokens = estimateTokens(content);
    const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };

    if (body.stream === true) {
      void streamChat(res, body, content, { id, usage, headers });
      return;
    }

    sendJson(
      res,
      200,
      {
        id,
        object: 'chat.completion',
        created,
        model: body.model,
        choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
        usage,
        system_fingerprint: 'fp_fake',
      },
      headers,
    );
  };

  /** The answer as SSE chunks, paced by `streaming`; a cut ends the connection part-way. */
  const streamChat = async (
    res: ServerResponse,
    body: FakeChatBody,
    content: string,
    meta: { id: string; usage: Record<string, number>; headers: Record<string, string> },
  ): Promise<void> => {
    if (res.destroyed) return;
    const receivedAt = requests.at(-1)?.receivedAt ?? Date.now();
    const pacing = streaming;
    const cutAfter = cuts.shift();
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...meta.headers });
    const base = { id: meta.id, object: 'chat.completion.chunk', created, model: body.model, system_fingerprint: 'fp_fake' };
    const event = (data: unknown): string => `data: ${JSON.stringify(data)}\n\n`;
    res.write(event({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] }));
    const words = content.match(/\S+\s*|\s+/g) ?? [];
    const pieces: string[] = [];
    for (let i = 0; i < words.length; i += pacing.wordsPerChunk) pieces.push(words.slice(i, i + pacing.wordsPerChunk).join(''));
    const closed = () => res.destroyed || res.writableEnded;
    for (const [i, piece] of pieces.entries()) {
      const wait = i === 0 ? pacing.firstTokenMs : pacing.tokenIntervalMs;
      if (wait > 0 && !(await delay(wait, res, closed))) return;
      if (closed()) return;
      if (cutAfter !== undefined && i >= cutAfter) {
        res.destroy();
        return;
      }
      res.write(event({ ...base, choices: [{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }] }));
      if (i === 0) streams.push({ receivedAt, firstTokenAt: performance.timeOrigin + performance.now(), firstToken: piece });
    }
    let out = event({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] });
    if (body.stream_options?.include_usage) out += event({ ...base, choices: [], usage: meta.usage });
    out += 'data: [DONE]\n\n';
    res.end(out);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    requestCounter += 1;
    inFlight += 1;
    maxConcurrent = Math.max(maxConcurrent, inFlight);
    let settled = false;
    const settle = (wasAborted: boolean): void => {
      if (settled) return;
      settled = true;
      inFlight -= 1;
      if (wasAborted) aborted += 1;
      else completed += 1;
      notify();
    };
    res.on('finish', () => settle(false));
    res.on('close', () => settle(!res.writableFinished));

    const rawBody = await readBody(req).catch(() => '');
    let body: unknown;
    let bodyIsValidJson = true;
    if (rawBody.length > 0) {
      try {
        body = JSON.parse(rawBody);
      } catch {
        bodyIsValidJson = false;
      }
    }
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    requests.push({ method: req.method ?? 'GET', path, headers: req.headers, body, receivedAt: Date.now() });
    notify();

    const responseHeaders = { 'x-request-id': `req_fake${String(requestCounter).padStart(6, '0')}`, 'openai-processing-ms': String(latencyMs) };

    // A queued failure belongs to the next request to arrive, even if that request is then aborted.
    const failure = failures[0];
    if (failure) {
      failure.remaining -= 1;
      if (failure.remaining <= 0) failures.shift();
    }
    if (!(await delay(failure?.spec.latencyMs ?? latencyMs, res, () => settled))) return;

    if (failure) {
      const extra = failure.status === 429 ? rateLimitHeaders(failure.spec.headers) : (failure.spec.headers ?? {});
      return sendError(res, failure.status, failure.spec.error, { ...responseHeaders, ...extra });
    }

    if (req.headers.authorization !== `Bearer ${apiKey}`) {
      return sendError(
        res,
        401,
        { type: 'invalid_request_error', code: 'invalid_api_key', param: null, message: 'Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.' },
        responseHeaders,
      );
    }
    if (!bodyIsValidJson) {
      return sendError(res, 400, { message: 'We could not parse the JSON body of your request.', code: null }, responseHeaders);
    }

    if (req.method === 'POST' && path === '/v1/chat/completions') {
      return chatCompletion(res, (body ?? {}) as FakeChatBody, responseHeaders);
    }
    if (req.method === 'GET' && path === '/v1/models') {
      return sendJson(res, 200, { object: 'list', data: models.map((id) => ({ id, object: 'model', created, owned_by: 'openai' })) }, responseHeaders);
    }
    const model = /^\/v1\/models\/([^/]+)$/.exec(path)?.[1];
    if (req.method === 'GET' && model !== undefined) {
      const id = decodeURIComponent(model);
      if (models.includes(id)) return sendJson(res, 200, { id, object: 'model', created, owned_by: 'openai' }, responseHeaders);
      return sendError(res, 404, { message: `The model '${id}' does not exist`, code: 'model_not_found', param: 'model' }, responseHeaders);
    }
    return sendError(res, 404, { message: `Invalid URL (${req.method ?? 'GET'} ${path})`, code: null, param: null }, responseHeaders);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) sendError(res, 500);
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  const fake: FakeOpenAiServer = {
    url: `http://127.0.0.1:${port}/v1`,
    apiKey,
    requests,
    get inFlight() {
      return inFlight;
    },
    get maxConcurrent() {
      return maxConcurrent;
    },
    get aborted() {
      return aborted;
    },
    get completed() {
      return completed;
    },
    chatRequests: () => requests.filter((r) => r.method === 'POST' && r.path === '/v1/chat/completions'),
    failNext(status, spec = {}) {
      failures.push({ status, spec, remaining: Math.max(1, spec.times ?? 1) });
    },
    setLatency(ms) {
      latencyMs = ms;
    },
    setReply(fn) {
      reply = fn;
    },
    setStreaming(spec) {
      streaming = { firstTokenMs: spec.firstTokenMs ?? 0, tokenIntervalMs: spec.tokenIntervalMs ?? 0, wordsPerChunk: Math.max(1, spec.wordsPerChunk ?? 1) };
    },
    cutNextStreamAfter(chunks) {
      cuts.push(chunks);
    },
    streams,
    reset() {
      requests.length = 0;
      streams.length = 0;
      cuts.length = 0;
      failures.length = 0;
      maxConcurrent = inFlight;
      aborted = 0;
      completed = 0;
    },
    waitFor(predicate, timeoutMs = 5_000) {
      return new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (predicate(fake)) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`fake OpenAI: condition not met within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close() {
      return new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
    },
  };
  return fake;
}
