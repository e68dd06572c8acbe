import type { App } from '../../types.js';
import type { EventsService } from '../../../domain/chat/events.service.js';
import { AppError, notFound } from '../../../domain/errors.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses, IdParams, requireId } from '../../schemas/common.js';
import { lastEventId, type SseHub, type SseStream } from '../../sse.js';
import { EVENT_STREAM_DESCRIPTION, EventStreamHeaders, EventStreamQuery } from './events.schema.js';
import { formatThreadCursor, parseThreadCursor } from '../../../engine/events/thread-cursor.js';
import type { ThreadCursor, ThreadRunEvent } from '../../../engine/ports/run-events.js';

export function registerThreadEvents(app: App, events: EventsService, hub: SseHub): void {
  app.get(
    '/threads/:threadId/events',
    {
      config: { streamTicket: true },
      schema: {
        tags: ['chat'],
        summary: "Every run's events of a thread as they happen (SSE); stays open",
        description: `${EVENT_STREAM_DESCRIPTION} Without Last-Event-ID the stream starts with the thread's open runs (from their first event) and follows every later run. The \`id:\` is the thread's cursor (\`t<floor>,<run>:<seq>…\`): give it back as Last-Event-ID to resume exactly after that event.`,
        params: IdParams('threadId'),
        querystring: EventStreamQuery,
        headers: EventStreamHeaders,
        response: { 200: { description: 'text/event-stream', type: 'string' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      const actor = actorOf(request);
      const threadId = requireId((request.params as { threadId: string }).threadId, 'Thread');
      if (request.streamGrant && request.streamGrant.threadId !== threadId) throw notFound('Thread');
      const text = lastEventId(request);
      const cursor = text === undefined ? undefined : parseThreadCursor(text);
      if (text !== undefined && !cursor) throw new AppError('invalid_last_event_id', 400, 'Last-Event-ID must be the id of an event of this stream');
      let stream: SseStream | undefined;
      const early: Array<[ThreadRunEvent, ThreadCursor]> = [];
      const send = (event: ThreadRunEvent, after: ThreadCursor) => {
        if (!stream) return void early.push([event, after]);
        const { runSeq: _runSeq, ...body } = event;
        stream.send(formatThreadCursor(after), event.type, body);
      };
      const { unsubscribe } = await events.followThread(actor, threadId, cursor, send, (err) => request.log.warn({ err }, 'thread events: read failed'));
      stream = hub.open(request, reply);
      stream.onClose(unsubscribe);
      for (const [event, after] of early.splice(0)) send(event, after);
      return reply;
    },
  );
}
