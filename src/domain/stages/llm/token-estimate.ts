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

const TRUNCATION_MARK = ' […]';

/**
 * The longest start of `text` whose estimate, with a mark saying it was cut, is within
 * `maxTokens`; the text unchanged when it fits, and '' when not even the mark fits.
 */
export function truncateToTokens(text: string, maxTokens: number): string {
  if (estimateTokens(text) <= maxTokens) return text;
  const allowance = maxTokens - estimateTokens(TRUNCATION_MARK);
  if (allowance <= 0) return '';
  let ascii = 0;
  let other = 0;
  let end = 0;
  while (end < text.length) {
    const code = text.charCodeAt(end);
    const width = code >= 0xd800 && code <= 0xdbff && end + 1 < text.length ? 2 : 1;
    const nextAscii = code < 0x80 ? ascii + 1 : ascii;
    const nextOther = code < 0x80 ? other : other + 1;
    if (Math.ceil(nextAscii / 4) + nextOther > allowance) break;
    ascii = nextAscii;
    other = nextOther;
    end += width;
  }
  return `${text.slice(0, end).trimEnd()}${TRUNCATION_MARK}`;
}
