/**
 * Splits a document into retrieval chunks of about `targetChars`, cutting at paragraph, then
 * sentence, then word boundaries, so that a passage shown as a snippet reads as prose.
 */
export function chunkText(text: string, targetChars = 1200): string[] {
  const normalised = text.replace(/\r\n?/g, '\n').trim();
  if (normalised === '') return [];
  const pieces = normalised
    .split(/\n\s*\n/)
    .flatMap((paragraph) => splitLong(paragraph.trim(), targetChars))
    .filter((piece) => piece.length > 0);
  const chunks: string[] = [];
  let current = '';
  for (const piece of pieces) {
    if (current && current.length + piece.length + 2 > targetChars) {
      chunks.push(current);
      current = piece;
    } else {
      current = current ? `${current}\n\n${piece}` : piece;
    }
  }
  if (current) chunks.push(current);
  return chunks;
}

function splitLong(paragraph: string, limit: number): string[] {
  if (paragraph.length <= limit) return [paragraph];
  const sentences = paragraph.match(/[^.!?]+(?:[.!?]+|$)\s*/g) ?? [paragraph];
  const out: string[] = [];
  let current = '';
  for (const sentence of sentences) {
    for (const part of sentence.length > limit ? splitWords(sentence, limit) : [sentence]) {
      if (current && current.length + part.length > limit) {
        out.push(current.trim());
        current = part;
      } else {
        current += part;
      }
    }
  }
  if (current.trim()) out.push(current.trim());
  return out;
}

function splitWords(text: string, limit: number): string[] {
  const out: string[] = [];
  let current = '';
  for (const word of text.split(/(\s+)/)) {
    if (current.length + word.length > limit && current) {
      out.push(current);
      current = '';
    }
    // A single "word" longer than the limit (a URL, base64) is cut hard.
    for (let i = 0; i < word.length; i += limit) {
      const slice = word.slice(i, i + limit);
      if (current.length + slice.length > limit && current) {
        out.push(current);
        current = '';
      }
      current += slice;
    }
  }
  if (current) out.push(current);
  return out;
}
