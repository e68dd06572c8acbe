/**
 * Text as the detectors read it: invisible format characters removed (a zero-width space inside a
 * key or inside "ignore all previous instructions" must not hide it) and compatibility forms folded
 * with NFKC (full-width digits of a card number, full-width letters). Every unit of the normalised
 * text remembers which characters of the original it came from, so findings are reported, and
 * redacted, in the original text. Pure, linear, no I/O.
 */

/** Zero-width and format characters that render as nothing: U+00AD, U+200B–U+200F, U+2060–U+2064, U+FEFF. */
const isInvisible = (c: number): boolean =>
  c === 0xad || (c >= 0x200b && c <= 0x200f) || (c >= 0x2060 && c <= 0x2064) || c === 0xfeff;

export interface NormalizedText {
  text: string;
  /** Maps a span [start, end) of `text` to the span of the original it was made from. */
  toOriginal(start: number, end: number): [number, number];
}

const IDENTITY = (start: number, end: number): [number, number] => [start, end];

export function normalizeForDetection(original: string): NormalizedText {
  // Fast path, the usual case: plain ASCII is NFKC-stable and holds no invisible characters.
  let plain = true;
  for (let i = 0; i < original.length; i++) {
    if (original.charCodeAt(i) >= 0x80) {
      plain = false;
      break;
    }
  }
  if (plain) return { text: original, toOriginal: IDENTITY };

  const parts: string[] = [];
  // Per unit of the normalised text: where its source character starts and ends in the original.
  const starts: number[] = [];
  const ends: number[] = [];
  let changed = false;
  let i = 0;
  while (i < original.length) {
    const c = original.charCodeAt(i);
    if (c < 0x80) {
      parts.push(original[i]!);
      starts.push(i);
      ends.push(i + 1);
      i++;
      continue;
    }
    const cp = original.codePointAt(i)!;
    const width = cp > 0xffff ? 2 : 1;
    if (isInvisible(cp)) {
      changed = true;
      i += width;
      continue;
    }
    const source = original.slice(i, i + width);
    const folded = source.normalize('NFKC');
    if (folded !== source) changed = true;
    parts.push(folded);
    for (let k = 0; k < folded.length; k++) {
      starts.push(i);
      ends.push(i + width);
    }
    i += width;
  }
  if (!changed) return { text: original, toOriginal: IDENTITY };
  const text = parts.join('');
  return {
    text,
    toOriginal(start, end) {
      if (end <= start) {
        const at = start < starts.length ? starts[start]! : original.length;
        return [at, at];
      }
      return [starts[start]!, ends[end - 1]!];
    },
  };
}
