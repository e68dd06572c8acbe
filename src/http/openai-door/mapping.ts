import type { ConversationReply, SentTurn } from '../../domain/chat/conversation.service.js';
import { OpenAiParamError } from './errors.js';
import { MODEL_ID, type ChatCompletionRequest } from './schemas.js';

/** Request fields this door cannot honour: refused, so a client never believes they were applied. */
const REFUSED = ['tools', 'functions', 'tool_choice', 'function_call', 'audio', 'prediction', 'logprobs', 'top_logprobs', 'modalities'] as const;

/** What a client sent, as the pipeline takes it. */
export interface SentConversation {
  /** Earlier turns, oldest first: alternating, starting with a question. */
  history: SentTurn[];
  /** The last user turn (consecutive user messages at the end joined): the run's message in a new thread. */
  message: string;
  /** The last message alone: the run's message in a thread named by the client, whose own turns are the history. */
  latest: string;
  stream: boolean;
  includeUsage: boolean;
}

/**
 * Reads a Chat Completions request. `system` and `developer` messages are accepted and not sent
 * to the model (the server's own instructions govern it); consecutive messages of one role are
 * joined; a reply before the first question is left out; the last message must be the user's.
 */
export function conversationOf(body: ChatCompletionRequest, limits: { maxContentBytes: number }): SentConversation {
  if (body.model !== MODEL_ID) throw new OpenAiParamError('model_not_found', `The model '${body.model}' does not exist; this server offers '${MODEL_ID}'`, 'model', 404);
  const raw = body as Record<string, unknown>;
  for (const field of REFUSED) {
    const value = raw[field];
    if (value === undefined || value === null || value === false || value === 'none' || (Array.isArray(value) && value.length === 0)) continue;
    throw new OpenAiParamError('unsupported_parameter', `'${field}' is not supported: this endpoint answers with text from the honeyjar pipeline`, field);
  }
  const format = raw.response_format as { type?: unknown } | null | undefined;
  if (format && format.type !== 'text') throw new OpenAiParamError('unsupported_parameter', "Only response_format {type: 'text'} is supported", 'response_format');

  const turns: SentTurn[] = [];
  let latest = '';
  body.messages.forEach((message, i) => {
    const param = `messages[${i}]`;
    const role = message.role;
    if (role === 'system' || role === 'developer') return;
    if (role !== 'user' && role !== 'assistant') {
      throw new OpenAiParamError('unsupported_parameter', `${param}.role '${role}' is not supported: use user, assistant, system or developer`, `${param}.role`);
    }
    const extra = message as Record<string, unknown>;
    if ((Array.isArray(extra.tool_calls) && extra.tool_calls.length > 0) || extra.function_call) {
      throw new OpenAiParamError('unsupported_parameter', `${param} carries tool calls, which this endpoint does not run`, `${param}.tool_calls`);
    }
    const content = textOf(message.content, `${param}.content`);
    if (Buffer.byteLength(content, 'utf8') > limits.maxContentBytes) {
      throw new OpenAiParamError('content_too_large', `${param}.content is larger than ${limits.maxContentBytes} bytes`, `${param}.content`);
    }
    if (!/\S/.test(content)) {
      if (role === 'user') throw new OpenAiParamError('invalid_request', `${param}.content is empty`, `${param}.content`);
      return;
    }
    latest = content;
    const last = turns[turns.length - 1];
    if (last?.role === role) last.content = `${last.content}\n\n${content}`;
    else if (role === 'user' || last) turns.push({ role, content });
  });
  const message = turns.pop();
  if (message?.role !== 'user') throw new OpenAiParamError('invalid_request', 'The last message (system and developer messages aside) must be the user’s', 'messages');
  if (Buffer.byteLength(message.content, 'utf8') > limits.maxContentBytes) {
    throw new OpenAiParamError('content_too_large', `The last user turn is larger than ${limits.maxContentBytes} bytes`, 'messages');
  }
  return { history: turns, message: message.content, latest, stream: body.stream === true, includeUsage: body.stream === true && body.stream_options?.include_usage === true };
}

function textOf(content: ChatCompletionRequest['messages'][number]['content'], param: string): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  return content
    .map((part, i) => {
      const refusal = (part as { refusal?: unknown }).refusal;
      if (part.type === 'text' && typeof part.text === 'string') return part.text;
      if (part.type === 'refusal' && typeof refusal === 'string') return refusal;
      throw new OpenAiParamError('unsupported_parameter', `${param}[${i}] of type '${part.type}' is not supported: only text`, `${param}[${i}]`);
    })
    .join('\n');
}

/** `chatcmpl-` and the batch id: a replayed request gets the same id. */
export function completionId(batchId: string): string {
  return `chatcmpl-${batchId}`;
}

/** `content_filter` when the security gate answered: the message never reached the model. */
export function finishReason(reply: Pick<ConversationReply, 'guarded'>): 'stop' | 'content_filter' {
  return reply.guarded ? 'content_filter' : 'stop';
}

export function completionOf(batchId: string, created: number, reply: ConversationReply) {
  return {
    id: completionId(batchId),
    object: 'chat.completion' as const,
    created,
    model: MODEL_ID,
    choices: [{ index: 0, message: { role: 'assistant' as const, content: reply.content, refusal: null }, logprobs: null, finish_reason: finishReason(reply) }],
    usage: reply.usage,
  };
}

/** One `chat.completion.chunk`; `delta` null for the usage chunk (no choices). */
export function chunkOf(
  batchId: string,
  created: number,
  delta: { role?: 'assistant'; content?: string } | null,
  finish: 'stop' | 'content_filter' | null = null,
  usage?: ConversationReply['usage'],
) {
  return {
    id: completionId(batchId),
    object: 'chat.completion.chunk' as const,
    created,
    model: MODEL_ID,
    choices: delta ? [{ index: 0, delta, logprobs: null, finish_reason: finish }] : [],
    ...(usage ? { usage } : {}),
  };
}
