import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** A client slower than this many buffered bytes is cut off; it resumes from its last id. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/** What an EventSource waits before reconnecting after the stream drops. */
const RETRY_MS = 1_000;

export interface SseStream {
  /** One event: `id:`, `event:` and one `data:` line of JSON. */
  send(id: string | number, event: string, data: unknown): void;
  /** Ends the response (the client will not reconnect on its own after an `end` event it handles). */
  close(): void;
  /** Whether the client is gone or the stream was closed. */
  readonly closed: boolean;
  /** Called once, when the stream ends for any reason. */
  onClose(listener: () => void): void;
}

/**
 * Turns the reply into a Server-Sent Events stream: the headers at once, a comment every
 * `heartbeatMs` so that proxies keep an idle stream open, and events as JSON. The reply is
 * hijacked from Fastify (it is written to directly until it ends).
 */
export function openSse(request: FastifyRequest, reply: FastifyReply, options: { heartbeatMs: number }): SseStream {
  reply.hijack();
  const response = reply.raw;
  response.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    // nginx would otherwise buffer the stream.
    'x-accel-buffering': 'no',
  });
  response.write(`retry: ${RETRY_MS}\n\n`);
  // The request's own timeouts are for receiving it; an open stream is not a slow request.
  request.raw.socket?.setTimeout(0);
  request.raw.socket?.setNoDelay(true);

  let closed = false;
  const listeners: Array<() => void> = [];
  const heartbeat = setInterval(() => write(': keep-alive\n\n'), options.heartbeatMs);
  heartbeat.unref();

  function end(): void {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    if (!response.writableEnded) response.end();
    for (const listener of listeners.splice(0)) listener();
  }

  function write(chunk: string): void {
    if (closed) return;
    if (response.writableLength > MAX_BUFFERED_BYTES) {
      response.destroy();
      end();
      return;
    }
    response.write(chunk);
  }

  response.on('close', end);

  return {
    send(id, event, data) {
      write(`id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    },
    close: end,
    get closed() {
      return closed;
    },
    onClose(listener) {
      if (closed) listener();
      else listeners.push(listener);
    },
  };
}

/** The client's resume point: the `Last-Event-ID` header, else the `lastEventId` query parameter. */
export function lastEventId(request: FastifyRequest): string | undefined {
  const header = request.headers['last-event-id'];
  const value = typeof header === 'string' && header.trim() !== '' ? header.trim() : (request.query as { lastEventId?: string } | undefined)?.lastEventId;
  return value === undefined || value === '' ? undefined : value;
}

/**
 * The event streams of an app: each opened with the same heartbeat, and all ended when the app
 * closes (an open stream would otherwise hold the server's close until its client left).
 */
export function createSseHub(app: FastifyInstance, options: { heartbeatMs: number }) {
  const open = new Set<SseStream>();
  app.addHook('preClose', async () => {
    for (const stream of [...open]) stream.close();
  });
  return {
    open(request: FastifyRequest, reply: FastifyReply): SseStream {
      const stream = openSse(request, reply, options);
      open.add(stream);
      stream.onClose(() => open.delete(stream));
      return stream;
    },
    size: () => open.size,
  };
}

export type SseHub = ReturnType<typeof createSseHub>;
