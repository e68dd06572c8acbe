import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ConversationChatService, ConversationReply } from '../../domain/chat/conversation.service.js';
import type { BatchDocument } from '../../domain/chat/batch-view.js';
import type { Actor, Idempotency } from '../../domain/chat/chat.service.js';
import type { EventsService } from '../../domain/chat/events.service.js';
import type { RunEvent } from '../../engine/ports/run-events.js';
import type { App } from '../types.js';
import { actorOf } from '../plugins/auth.js';
import { disconnectSignal } from '../disconnect-signal.js';
import { canonicalJson, idempotencyOf } from '../schemas/accepted.js';
import { requireId } from '../schemas/common.js';
import { openAiError } from './errors.js';
import { chunkOf, completionOf, conversationOf, finishReason } from './mapping.js';
import { ReplyText } from './reply-text.js';
import { ChatCompletion, ChatCompletionRequest, DoorHeaders, openAiErrorResponses } from './schemas.js';

export interface ChatCompletionsOptions {
  /** The batches' event logs: a request follows its batch's events to their end. */
  events: Pick<EventsService, 'followBatch'>;
  maxContentBytes: number;
  /** How long a request waits for its batch to finish before answering 504 (the batch goes on). */
  waitMs: number;
  /** Between SSE comment lines while nothing else is sent, so proxies keep the stream open. */
  heartbeatMs?: number;
}

const HEARTBEAT_MS = 15_000;

/**
 * POST /v1/chat/completions: one queued run of the whole pipeline per request, answered in the
 * Chat Completions format once it has finished, or streamed as `chat.completion.chunk` events.
 * Every answer names its batch (`x-honeyjar-batch-id`): a client that lost the connection reads
 * the batch or its events instead of asking (and paying) again.
 */
export function registerChatCompletions(app: App, chat: ConversationChatService, options: ChatCompletionsOptions): void {
  const { events } = options;
  // A closing server answers its waiting requests at once, naming their batches, instead of
  // holding the close up until each batch ends.
  const closing = new AbortController();
  app.addHook('preClose', async () => closing.abort());
  app.post(
    '/chat/completions',
    {
      // Every message at its limit is more than anyone sends; the body limit bounds what is parsed.
      bodyLimit: 1024 * 1024,
      schema: {
        tags: ['openai'],
        summary: 'OpenAI-compatible chat completion through the whole pipeline (streaming with stream: true)',
        headers: DoorHeaders,
        body: ChatCompletionRequest,
        response: { 200: ChatCompletion, ...openAiErrorResponses },
      },
    },
    async (request, reply) => {
      const actor = actorOf(request);
      const sent = conversationOf(request.body, options);
      const threadHeader = request.headers['x-honeyjar-thread-id'];
      const threadId = typeof threadHeader === 'string' ? requireId(threadHeader.trim(), 'Thread') : undefined;
      const idempotency = idempotencyWithThread(request, threadId);
      // Counted among the organization's waiting requests until the answer has been sent.
      const slot = chat.reserveWait(actor, options.waitMs);
      let streaming = false;
      try {
        const accepted = await chat.acceptConversation(actor, {
          history: sent.history,
          message: threadId ? sent.latest : sent.message,
          ...(threadId ? { threadId } : {}),
          ...(idempotency ? { idempotency } : {}),
        });
        reply.header('x-honeyjar-batch-id', accepted.batchId).header('x-honeyjar-thread-id', accepted.threadId);
        const created = Math.floor(accepted.createdAt.getTime() / 1000);
        if (!sent.stream) {
          const ended = await followToEnd(events, actor, accepted.batchId, () => undefined, options.waitMs, AbortSignal.any([disconnectSignal(reply), closing.signal]));
          if (ended === 'aborted' && closing.signal.aborted) return reply.status(503).header('retry-after', '5').send(closingError(accepted.batchId));
          const outcome = await outcomeOf(chat, actor, await chat.getBatchResults(actor, accepted.batchId));
          if ('error' in outcome) return reply.status(outcome.status).send(outcome.error);
          return reply.send(completionOf(accepted.batchId, created, outcome.reply));
        }
        const stream = new PassThrough();
        streaming = true;
        void streamCompletion(stream, reply, { chat, actor, batchId: accepted.batchId, created, includeUsage: sent.includeUsage, closing: closing.signal, ...options }).finally(() => slot.release());
        reply.header('content-type', 'text/event-stream; charset=utf-8').header('cache-control', 'no-cache').header('x-accel-buffering', 'no');
        // Server-Sent Events: a stream, which the 200 schema (the JSON answer) does not describe.
        return reply.send(stream as unknown as never);
      } finally {
        if (!streaming) slot.release();
      }
    },
  );
}

/**
 * The key and a fingerprint of what makes the request: the body and the thread it names. The same
 * key with another body or thread is refused (422); with the same, it answers the first batch.
 */
function idempotencyWithThread(request: FastifyRequest, threadId: string | undefined): Idempotency | undefined {
  const idempotency = idempotencyOf(request);
  if (!idempotency) return undefined;
  const fingerprint = createHash('sha256')
    .update(canonicalJson({ route: 'POST /v1/chat/completions', thread: threadId ?? null, body: request.body ?? null }))
    .digest('hex');
  return { key: idempotency.key, fingerprint };
}

type Outcome = { reply: ConversationReply } | { status: number; error: ReturnType<typeof openAiError> };

/** A finished batch's reply, or the error a client is answered with. */
async function outcomeOf(chat: ConversationChatService, actor: Actor, batch: BatchDocument): Promise<Outcome> {
  if (!batch.finishedAt) {
    return {
      status: 504,
      error: openAiError(504, 'still_processing', `The batch ${batch.batchId} is still being processed; read it at GET /api/v1/chat/batch/${batch.batchId}/results`),
    };
  }
  const reply = batch.status === 'completed' || batch.status === 'partial' ? await chat.replyOf(actor, batch) : undefined;
  if (reply) return { reply };
  const cause = batch.errors?.[0];
  return {
    status: 502,
    error: openAiError(502, batch.status === 'cancelled' ? 'batch_cancelled' : 'batch_failed', cause ? `The pipeline did not answer: ${cause.code}: ${cause.message}` : `The pipeline did not answer (${batch.status})`),
  };
}

/**
 * Follows the batch's events from its first until its closing `end` event, the timeout or the
 * abort, whichever comes first (every event is handed to `onEvent`, in order, once).
 */
function followToEnd(
  events: ChatCompletionsOptions['events'],
  actor: Actor,
  batchId: string,
  onEvent: (event: RunEvent) => void,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<'ended' | 'timeout' | 'aborted'> {
  return new Promise((resolve, reject) => {
    let unsubscribe: (() => void) | undefined;
    let settled = false;
    const settle = (outcome: 'ended' | 'timeout' | 'aborted') => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      unsubscribe?.();
      resolve(outcome);
    };
    const onAbort = () => settle('aborted');
    const timer = setTimeout(() => settle('timeout'), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) return settle('aborted');
    events
      .followBatch(actor, batchId, 0, (event) => {
        if (settled) return;
        onEvent(event);
        if (event.type === 'end') settle('ended');
      })
      .then(
        (stop) => {
          unsubscribe = stop;
          if (settled) stop();
        },
        (error: unknown) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      );
  });
}

/** The answer of a request the closing server stops waiting for: its batch goes on elsewhere. */
function closingError(batchId: string) {
  return openAiError(503, 'server_closing', `The server is restarting; the batch ${batchId} goes on: read GET /api/v1/chat/batch/${batchId}/events or its results`);
}

interface StreamContext extends ChatCompletionsOptions {
  closing: AbortSignal;
  chat: ConversationChatService;
  actor: Actor;
  batchId: string;
  created: number;
  includeUsage: boolean;
}

/**
 * Writes the answer as Server-Sent Events from the batch's event log: the role chunk at once, each
 * `token` event's text as a content chunk as it arrives (see ReplyText for a retried attempt), then
 * at the batch's end whatever of the stored reply the tokens did not carry, the finish chunk, the
 * usage chunk when asked and `data: [DONE]`. A failed batch ends with an `error` event, which the
 * SDKs raise as an API error. A client that goes away stops only this stream, not the batch.
 */
async function streamCompletion(stream: PassThrough, reply: FastifyReply, context: StreamContext): Promise<void> {
  const { chat, actor, batchId, created } = context;
  const signal = AbortSignal.any([disconnectSignal(reply), context.closing]);
  // A chunk made from an event carries the event's seq as its SSE id: a client that loses the
  // connection resumes the batch's event stream from it (Last-Event-ID) and misses nothing.
  const write = (data: unknown, id?: number) => {
    if (!stream.writableEnded) stream.write(`${id === undefined ? '' : `id: ${id}\n`}data: ${JSON.stringify(data)}\n\n`);
  };
  let lastSeq: number | undefined;
  const heartbeat = setInterval(() => {
    if (!stream.writableEnded) stream.write(': keep-alive\n\n');
  }, context.heartbeatMs ?? HEARTBEAT_MS);
  heartbeat.unref();
  const text = new ReplyText();
  try {
    write(chunkOf(batchId, created, { role: 'assistant', content: '' }));
    const ended = await followToEnd(
      context.events,
      actor,
      batchId,
      (event) => {
        lastSeq = event.seq;
        if (event.type === 'reset') text.reset();
        else if (event.type === 'token') {
          const delta = text.token(event.text);
          if (delta !== '') write(chunkOf(batchId, created, { content: delta }), event.seq);
        }
      },
      context.waitMs,
      signal,
    );
    if (ended === 'aborted') {
      if (context.closing.aborted) write(closingError(batchId));
      return;
    }
    const outcome = await outcomeOf(chat, actor, await chat.getBatchResults(actor, batchId));
    if ('error' in outcome) {
      write(outcome.error);
      return;
    }
    const rest = text.rest(outcome.reply.content);
    if (rest === undefined) {
      write(openAiError(502, 'reply_restarted', `The reply was restarted after part of it was sent; the whole reply is in GET /api/v1/chat/batch/${batchId}/results`));
      return;
    }
    if (rest !== '') write(chunkOf(batchId, created, { content: rest }), lastSeq);
    write(chunkOf(batchId, created, {}, finishReason(outcome.reply)), lastSeq);
    if (context.includeUsage) write(chunkOf(batchId, created, null, null, outcome.reply.usage), lastSeq);
    stream.write('data: [DONE]\n\n');
  } catch (error) {
    reply.log.error({ err: error }, 'streamed completion failed');
    write(openAiError(500, 'internal_error', 'An internal error occurred'));
  } finally {
    clearInterval(heartbeat);
    stream.end();
  }
}
