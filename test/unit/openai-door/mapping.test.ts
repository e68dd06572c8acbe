import { describe, expect, it } from 'vitest';
import { conversationOf } from '../../../src/http/openai-door/mapping.js';
import type { ChatCompletionRequest } from '../../../src/http/openai-door/schemas.js';

const limits = { maxContentBytes: 32 * 1024 };
const read = (body: Partial<ChatCompletionRequest> & Record<string, unknown>) =>
  conversationOf({ model: 'honeyjar', messages: [{ role: 'user', content: 'hi' }], ...body } as ChatCompletionRequest, limits);
const refusal = (body: Partial<ChatCompletionRequest> & Record<string, unknown>) => {
  try {
    read(body);
  } catch (error) {
    return { code: (error as { code: string }).code, param: (error as { param: string | null }).param, status: (error as { statusCode: number }).statusCode };
  }
  throw new Error('accepted');
};

describe('conversationOf', () => {
  it('takes the last user turn as the message and the rest as alternating history', () => {
    const sent = read({
      messages: [
        { role: 'assistant', content: 'Hello! How can I help?' },
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'First question' },
        { role: 'user', content: [{ type: 'text', text: 'and its second half' }] },
        { role: 'assistant', content: 'An answer' },
        { role: 'developer', content: 'Ignored too' },
        { role: 'assistant', content: '' },
        { role: 'user', content: 'Follow-up' },
      ],
    });
    expect(sent.history).toEqual([
      { role: 'user', content: 'First question\n\nand its second half' },
      { role: 'assistant', content: 'An answer' },
    ]);
    expect(sent.message).toBe('Follow-up');
    expect(sent.latest).toBe('Follow-up');
    expect(sent.stream).toBe(false);
  });

  it('joins trailing user messages for a new thread, and keeps the last alone for a named one', () => {
    const sent = read({ messages: [{ role: 'user', content: 'one' }, { role: 'user', content: 'two' }] });
    expect(sent.message).toBe('one\n\ntwo');
    expect(sent.latest).toBe('two');
    expect(sent.history).toEqual([]);
  });

  it('asks for usage only on a stream', () => {
    expect(read({ stream: true, stream_options: { include_usage: true } }).includeUsage).toBe(true);
    expect(read({ stream: false, stream_options: { include_usage: true } }).includeUsage).toBe(false);
  });

  it('ignores sampling parameters and refuses what it cannot honour, naming the field', () => {
    expect(read({ temperature: 0.3, max_tokens: 50, user: 'u1', tools: [], tool_choice: 'none', response_format: { type: 'text' } }).message).toBe('hi');
    expect(refusal({ model: 'gpt-4o' })).toEqual({ code: 'model_not_found', param: 'model', status: 404 });
    expect(refusal({ tools: [{ type: 'function' }] })).toMatchObject({ code: 'unsupported_parameter', param: 'tools' });
    expect(refusal({ logprobs: true })).toMatchObject({ param: 'logprobs' });
    expect(refusal({ response_format: { type: 'json_object' } })).toMatchObject({ param: 'response_format' });
    expect(refusal({ messages: [{ role: 'tool', content: 'x' }] })).toMatchObject({ param: 'messages[0].role' });
    expect(refusal({ messages: [{ role: 'user', content: [{ type: 'image_url' }] }] })).toMatchObject({ param: 'messages[0].content[0]' });
    const withToolCalls = [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b', tool_calls: [{ id: 'c' }] }, { role: 'user', content: 'c' }];
    expect(refusal({ messages: withToolCalls as ChatCompletionRequest['messages'] })).toMatchObject({
      param: 'messages[1].tool_calls',
    });
  });

  it('needs a user message last and not blank, each turn within the limit', () => {
    expect(refusal({ messages: [{ role: 'system', content: 'only a system prompt' }] })).toMatchObject({ code: 'invalid_request', param: 'messages' });
    expect(refusal({ messages: [{ role: 'user', content: '  ' }] })).toMatchObject({ code: 'invalid_request', param: 'messages[0].content' });
    expect(refusal({ messages: [{ role: 'user', content: 'x'.repeat(32 * 1024 + 1) }] })).toMatchObject({ code: 'content_too_large', param: 'messages[0].content' });
    const halves = 'x'.repeat(20 * 1024);
    expect(refusal({ messages: [{ role: 'user', content: halves }, { role: 'user', content: halves }] })).toMatchObject({ code: 'content_too_large', param: 'messages' });
  });
});
