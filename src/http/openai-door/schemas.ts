import { Type, type Static } from '@sinclair/typebox';

/** The one model this door offers: the whole honeyjar pipeline. */
export const MODEL_ID = 'honeyjar';

/** At most this many messages in a request; only the newest turns can reach the model anyway. */
export const MAX_MESSAGES = 100;
/** At most this many content parts in one message. */
export const MAX_CONTENT_PARTS = 20;

export const OpenAiError = Type.Object(
  {
    error: Type.Object({
      message: Type.String(),
      type: Type.String({ description: 'invalid_request_error, authentication_error, permission_error, not_found_error, rate_limit_error, server_error' }),
      code: Type.Union([Type.String(), Type.Null()], { description: "the API's stable code (invalid_api_key for a bad token)" }),
      param: Type.Union([Type.String(), Type.Null()], { description: 'the request field at fault, if any' }),
    }),
  },
  { description: "OpenAI's error shape, on /v1 only" },
);

export const openAiErrorResponses = { 400: OpenAiError, 401: OpenAiError, 403: OpenAiError, 404: OpenAiError, 422: OpenAiError, 429: OpenAiError, 502: OpenAiError, 503: OpenAiError, 504: OpenAiError };

const ContentPart = Type.Object(
  { type: Type.String({ maxLength: 50 }), text: Type.Optional(Type.String()) },
  { additionalProperties: true, description: 'only `text` parts are supported' },
);

const Message = Type.Object(
  {
    role: Type.String({ maxLength: 50, description: 'user, assistant, system or developer (the last two are accepted and not sent to the model)' }),
    content: Type.Optional(Type.Union([Type.String(), Type.Array(ContentPart, { maxItems: MAX_CONTENT_PARTS }), Type.Null()])),
    name: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: true },
);

export const ChatCompletionRequest = Type.Object(
  {
    model: Type.String({ minLength: 1, maxLength: 200, description: `"${MODEL_ID}" (GET /v1/models)` }),
    messages: Type.Array(Message, { minItems: 1, maxItems: MAX_MESSAGES }),
    stream: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])),
    stream_options: Type.Optional(Type.Union([Type.Object({ include_usage: Type.Optional(Type.Boolean()) }, { additionalProperties: true }), Type.Null()])),
    n: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 1, description: 'only 1' }), Type.Null()])),
  },
  {
    additionalProperties: true,
    description:
      'Sampling parameters (temperature, top_p, max_tokens, stop, seed, penalties, user, metadata…) are accepted and ignored: the pipeline’s provider settings apply. ' +
      'tools, functions, audio, prediction, logprobs and a response_format other than text are refused (400 unsupported_parameter).',
  },
);
export type ChatCompletionRequest = Static<typeof ChatCompletionRequest>;

const Usage = Type.Object({ prompt_tokens: Type.Integer(), completion_tokens: Type.Integer(), total_tokens: Type.Integer() });

export const ChatCompletion = Type.Object(
  {
    id: Type.String({ description: '`chatcmpl-` and the batch id' }),
    object: Type.Literal('chat.completion'),
    created: Type.Integer(),
    model: Type.String(),
    choices: Type.Array(
      Type.Object({
        index: Type.Integer(),
        message: Type.Object({ role: Type.Literal('assistant'), content: Type.String(), refusal: Type.Null() }),
        logprobs: Type.Null(),
        finish_reason: Type.Union([Type.Literal('stop'), Type.Literal('content_filter')], { description: 'content_filter: the security gate kept the message from the model; the content is its reply' }),
      }),
    ),
    usage: Usage,
  },
  { description: 'With stream: true, text/event-stream of chat.completion.chunk objects instead, ending with data: [DONE]' },
);

export const ModelList = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(Type.Object({ id: Type.String(), object: Type.Literal('model'), created: Type.Integer(), owned_by: Type.String() })),
});

export const DoorHeaders = Type.Object({
  'x-honeyjar-thread-id': Type.Optional(Type.String({ maxLength: 100, description: 'a thread of the organization to continue (its stored history is the context; only the last message sent is used)' })),
  'idempotency-key': Type.Optional(Type.String({ description: 'replays answer the first request’s batch without running it again; another request with the same key is 422' })),
  'x-organization-id': Type.Optional(Type.String({ description: "optional: without it, the token user's only organization" })),
});
