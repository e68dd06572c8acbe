import http from 'node:http';

export interface SseMessage {
  id: string | undefined;
  event: string;
  data: string;
  /** `data` parsed as JSON. */
  json: any;
  /** When it was parsed, in epoch milliseconds with sub-millisecond precision. */
  receivedAt: number;
}

export interface SseConnection {
  status: number;
  headers: http.IncomingHttpHeaders;
  messages: SseMessage[];
  /** Comment lines received (heartbeats). */
  comments: number;
  /** Whether the server ended the stream. */
  readonly ended: boolean;
  /** Resolves once `predicate` holds for the messages so far (checked on each message); rejects after `timeoutMs`. */
  waitFor(predicate: (messages: SseMessage[]) => boolean, timeoutMs?: number): Promise<void>;
  /** Resolves when the server ends the stream. */
  closed: Promise<void>;
  /** Drops the connection from the client's side. */
  close(): void;
  /** The raw body for a non-200 answer. */
  body: string;
}

/** Opens an SSE stream with Node's http client and parses it as an EventSource would. */
export function openSse(url: string, headers: Record<string, string> = {}): Promise<SseConnection> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers: { accept: 'text/event-stream', ...headers } }, (response) => {
      let buffer = '';
      let ended = false;
      const checks = new Set<() => void>();
      let onEnd = () => {};
      const closed = new Promise<void>((done) => (onEnd = done));
      const connection: SseConnection = {
        status: response.statusCode ?? 0,
        headers: response.headers,
        messages: [],
        comments: 0,
        body: '',
        get ended() {
          return ended;
        },
        waitFor(predicate, timeoutMs = 15_000) {
          return new Promise<void>((ok, fail) => {
            const check = () => {
              if (predicate(connection.messages)) {
                checks.delete(check);
                clearTimeout(timer);
                ok();
              } else if (ended) {
                checks.delete(check);
                clearTimeout(timer);
                fail(new Error(`stream ended before the condition held (${connection.messages.length} messages)`));
              }
            };
            const timer = setTimeout(() => {
              checks.delete(check);
              fail(new Error(`condition not met within ${timeoutMs} ms (${connection.messages.length} messages)`));
            }, timeoutMs);
            checks.add(check);
            check();
          });
        },
        closed,
        close() {
          request.destroy();
        },
      };
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        if (connection.status !== 200) {
          connection.body += chunk;
          return;
        }
        buffer += chunk;
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let id: string | undefined;
          let event = 'message';
          const data: string[] = [];
          let fields = 0;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) {
              connection.comments++;
              continue;
            }
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'id') id = value;
            else if (field === 'event') event = value;
            else if (field === 'data') data.push(value);
            else continue;
            fields++;
          }
          if (fields === 0 || data.length === 0) continue;
          const text = data.join('\n');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          connection.messages.push({ id, event, data: text, json, receivedAt: performance.timeOrigin + performance.now() });
        }
        for (const check of [...checks]) check();
      });
      const finish = () => {
        if (ended) return;
        ended = true;
        for (const check of [...checks]) check();
        onEnd();
      };
      response.on('end', finish);
      response.on('close', finish);
      response.on('error', finish);
      resolve(connection);
    });
    request.on('error', reject);
  });
}
