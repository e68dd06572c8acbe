import { Type } from '@sinclair/typebox';

export const EventStreamQuery = Type.Object(
  {
    lastEventId: Type.Optional(Type.String({ maxLength: 2048, description: 'Resume after this event id, for clients that cannot send the Last-Event-ID header' })),
    ticket: Type.Optional(Type.String({ maxLength: 200, description: 'A stream ticket (POST /chat/stream-tickets) instead of the Authorization header' })),
  },
  { additionalProperties: false },
);

export const EventStreamHeaders = Type.Object({
  'last-event-id': Type.Optional(Type.String({ maxLength: 2048, description: 'The id of the last event received: the stream resumes just after it' })),
});

export const EVENT_STREAM_DESCRIPTION = [
  'Server-Sent Events (`text/event-stream`). Each event has `id:` (see below), `event:` (its type) and one `data:` line of JSON:',
  '`{runId, seq, at, type, …}`. Types: `run` (`status` accepted, then completed | failed | cancelled with `messageId` or `error`),',
  '`step` (`stage`, `status` started | retrying | completed | failed, with `attempt`, `delayMs`, `result` or `error`),',
  '`token` (`stage`, `attempt`, `text`: the reply as it is produced), `reset` (a retried attempt begins: drop the text received so far), `end` (`status`).',
  'A comment line is sent every EVENTS_HEARTBEAT_MS when nothing else is.',
  'Reconnect with the last id received as Last-Event-ID (header, or `?lastEventId=`) to get exactly the events after it.',
  'A browser opens it with `?ticket=` (POST /chat/stream-tickets) instead of the Authorization header.',
].join(' ');
