import { Type } from '@sinclair/typebox';
import type { MessageRecord, ThreadRecord } from '../../../domain/chat/thread-store.js';

export const Thread = Type.Object({ id: Type.String(), title: Type.String(), createdAt: Type.String() });

export const Message = Type.Object({
  id: Type.String(),
  role: Type.Union([Type.Literal('user'), Type.Literal('assistant')]),
  content: Type.String(),
  createdAt: Type.String(),
  batchId: Type.Union([Type.String(), Type.Null()]),
});

export const toThread = (thread: ThreadRecord) => ({ id: thread.id, title: thread.title, createdAt: thread.createdAt.toISOString() });

export const toMessage = (message: MessageRecord) => ({
  id: message.id,
  role: message.role,
  content: message.content,
  createdAt: message.createdAt.toISOString(),
  batchId: message.runId,
});
