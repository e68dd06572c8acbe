import type { FastifyReply } from 'fastify';
import { StageError } from '../domain/errors.js';

/**
 * An AbortSignal that fires when the client goes away before its answer is sent. The response's
 * `close` is the event to watch: the request's own `close` fires as soon as its body has been read.
 * The reason is a StageError, so an aborted run records `client_disconnected`.
 */
export function disconnectSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  const abort = () => controller.abort(new StageError('client_disconnected', 'the client disconnected before the answer was sent'));
  const response = reply.raw;
  if (response.destroyed || response.socket?.destroyed) {
    abort();
    return controller.signal;
  }
  response.once('close', () => {
    if (!response.writableFinished) abort();
  });
  return controller.signal;
}
