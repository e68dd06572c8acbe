import { Type } from '@sinclair/typebox';
import type { App } from '../../types.js';
import type { EventsService } from '../../../domain/chat/events.service.js';
import { AppError, notFound } from '../../../domain/errors.js';
import { actorOf } from '../../plugins/auth.js';
import { errorResponses, IdParams, requireId } from '../../schemas/common.js';
import { lastEventId, type SseHub, type SseStream } from '../../sse.js';
import { EVENT_STREAM_DESCRIPTION, EventStreamHeaders, EventStreamQuery } from './events.schema.js';
import type { RunEvent } from '../../../engine/ports/run-events.js';

/** A batch stream's Last-Event-ID: the seq of the last event received. */
function parseSeq(value: string | undefined): number {
  if (value === undefined) return 0;
  if (!/^(0|[1-9][0-9]{0,9})$/.test(value)) throw new AppError('invalid_last_event_id', 400, 'Last-Event-ID must be the id of an event of this stream');
  return Number(value);
}

export function registerBatchEvents(app: App, events: EventsService, hub: SseHub): void {
  app.get(
    '/batch/:batchId/events',
    {
      config: { streamTicket: true },
      schema: {
        tags: ['chat'],
        summary: "A run's events as they happen (SSE), from the start or after Last-Event-ID; ends after the run's final status",
        description: `${EVENT_STREAM_DESCRIPTION} The \`id:\` is the event's \`seq\` (1, 2, 3, … without gaps).`,
        params: IdParams('batchId'),
        querystring: EventStreamQuery,
        headers: EventStreamHeaders,
        response: { 200: { description: 'text/event-stream', type: 'string' }, ...errorResponses, 410: Type.Ref('ErrorResponse') },
      },
    },
    async (request, reply) => {
      const actor = actorOf(request);
      const batchId = requireId((request.params as { batchId: string }).batchId, 'Batch');
      // A ticket opens the one stream it was issued for.
      if (request.streamGrant && request.streamGrant.runId !== batchId) throw notFound('Batch');
      const after = parseSeq(lastEventId(request));
      let stream: SseStream | undefined;
      const early: RunEvent[] = [];
      const send = (event: RunEvent) => {
        if (!stream) return void early.push(event);
        stream.send(event.seq, event.type, event);
        if (event.type === 'end') stream.close();
      };
      const unsubscribe = await events.followBatch(actor, batchId, after, send, (err) => request.log.warn({ err }, 'batch events: read failed'));
      stream = hub.open(request, reply);
      stream.onClose(unsubscribe);
      for (const event of early.splice(0)) send(event);
      return reply;
    },
  );
}
