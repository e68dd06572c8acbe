import type { SecurityResult } from '../types.js';

/**
 * The detectors' verdicts remembered by text, for text that comes back again and again: every
 * message of a thread sends the same earlier turns, and the same document passages answer many
 * questions; scanning twenty turns anew cost more than the rest of the LLM step's own work. Stored
 * text never changes, so a verdict cannot go stale within a process. Bounded by the characters
 * held (the least recently used dropped first).
 */
export function rememberVerdicts(classify: (text: string) => SecurityResult, maxChars: number): (text: string) => SecurityResult {
  const verdicts = new Map<string, SecurityResult>();
  let held = 0;
  return (text) => {
    const known = verdicts.get(text);
    if (known) {
      // Map keeps insertion order: re-inserting marks it as the newest use.
      verdicts.delete(text);
      verdicts.set(text, known);
      return known;
    }
    const verdict = classify(text);
    if (text.length > maxChars) return verdict;
    verdicts.set(text, verdict);
    held += text.length;
    for (const [oldest] of verdicts) {
      if (held <= maxChars) break;
      verdicts.delete(oldest);
      held -= oldest.length;
    }
    return verdict;
  };
}
