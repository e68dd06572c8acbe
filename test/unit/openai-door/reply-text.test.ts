import { describe, expect, it } from 'vitest';
import { ReplyText } from '../../../src/http/openai-door/reply-text.js';

describe('ReplyText', () => {
  it('sends each token as it comes, then nothing more when the stored reply is what was sent', () => {
    const text = new ReplyText();
    expect(['Hel', 'lo', ' there'].map((t) => text.token(t))).toEqual(['Hel', 'lo', ' there']);
    expect(text.rest('Hello there')).toBe('');
  });

  it('sends the rest of a stored reply the tokens did not carry (compacted, or a guard reply)', () => {
    const text = new ReplyText();
    expect(text.rest('The guard reply')).toBe('The guard reply');
    text.token('The ');
    expect(text.rest('The guard reply')).toBe('guard reply');
  });

  it('after a reset, holds the new attempt until it passes what was sent, then sends only what is new', () => {
    const text = new ReplyText();
    text.token('Draft: Spring ');
    text.reset();
    expect(text.token('Draft: ')).toBe('');
    expect(text.token('Spring ')).toBe('');
    expect(text.token('is here')).toBe('is here');
    expect(text.rest('Draft: Spring is here')).toBe('');
  });

  it('after a reset that says something else, stops streaming, and the stored reply cannot be continued', () => {
    const text = new ReplyText();
    text.token('Dear editor, ');
    text.reset();
    expect(text.token('Hello ')).toBe('');
    expect(text.token('editor, and more')).toBe('');
    expect(text.rest('Hello editor, and more')).toBeUndefined();
  });
});
