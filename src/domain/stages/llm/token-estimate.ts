/**
 * A local, deterministic token count for budgeting what goes into a prompt, without a tokenizer
 * download or a network call. It leans high rather than low, so a budget it enforces holds for the
 * real tokenizer too:
 *  - ASCII text: one token per four characters (what OpenAI's tokenizers give for English prose,
 *    and more than they give for common words);
 *  - any other character (accented letters, CJK, emoji): one token each, where the real tokenizers
 *    spend between a fraction and a few tokens;
 *  - each chat message: four tokens of framing (role and separators), as OpenAI documents.
 */
export const TOKENS_PER_MESSAGE = 4;

export function estimateTokens(text: string): number {
  let ascii = 0;
  let other = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) ascii++;
    // The second half of a surrogate pair belongs to a character already counted.
    else if (code < 0xdc00 || code > 0xdfff) other++;
  }
  return Math.ceil(ascii / 4) + other;
}

/** What one chat message costs in a prompt: its text and its framing. */
export function estimateMessageTokens(content: string): number {
  return estimateTokens(content) + TOKENS_PER_MESSAGE;
}
