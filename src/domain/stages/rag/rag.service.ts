import type { RagDocument, RagDroppedPassage, RagResult, SecurityFinding, SecurityResult } from '../types.js';

/** A search hit: the document's best chunk (`passage`) and the snippet cut from it. */
export interface RetrievedPassage extends RagDocument {
  passage: string;
}

export interface DocumentSearch {
  search(orgId: string, text: string, limit: number): Promise<RetrievedPassage[]>;
}

export interface RagService {
  retrieve(orgId: string, text: string): Promise<RagResult>;
}

export interface RagServiceDeps {
  search: DocumentSearch;
  /** The security stage's detectors, applied to every retrieved passage and title. */
  scan(text: string): SecurityResult;
  limit?: number;
}

/** How the search joins the fragments of a snippet (ts_headline's FragmentDelimiter). */
const FRAGMENT_DELIMITER = ' … ';

/**
 * Retrieval over the organization's own documents; never another organization's. Any member can
 * add a document, and its passages go into every colleague's prompt, so they are gated here,
 * before the result is stored or shown: secrets and personal data are redacted, and a passage
 * carrying instructions aimed at the assistant is dropped and listed (document and reason, never
 * its text) in `dropped`.
 */
export function createRagService(deps: RagServiceDeps): RagService {
  const limit = deps.limit ?? 5;
  return {
    async retrieve(orgId, text) {
      // Very long inputs are mostly pasted material; the start says what is being asked.
      const query = text.length > 4000 ? text.slice(0, 4000) : text;
      const documents: RagDocument[] = [];
      const dropped: RagDroppedPassage[] = [];
      for (const { passage, ...found } of await deps.search.search(orgId, query, limit)) {
        const title = deps.scan(found.title);
        const chunk = deps.scan(passage);
        if (title.promptInjection || chunk.promptInjection || deps.scan(found.snippet).promptInjection) {
          dropped.push({ documentId: found.id, title: title.promptInjection ? '[WITHHELD]' : title.redactedContent, reason: 'prompt_injection' });
          continue;
        }
        documents.push({ ...found, title: title.redactedContent, snippet: redactSnippet(passage, chunk, found.snippet) });
      }
      return { documents, dropped };
    },
  };
}

/**
 * The snippet with what the scan of its whole chunk redacted. The chunk is scanned rather than the
 * snippet because a snippet's fragments are cut at word boundaries and may cut a card number or a
 * key in two, leaving halves that no detector recognises. Each fragment is found in the chunk,
 * widened to cover any redacted span it touches, and taken from the redacted chunk; a snippet that
 * cannot be traced back to its chunk is replaced by the whole redacted chunk.
 */
export function redactSnippet(passage: string, scanned: SecurityResult, snippet: string): string {
  const spans = redactedSpans(passage, scanned);
  if (spans.length === 0) return snippet;
  const toRedacted = (offset: number): number => {
    let shift = 0;
    for (const span of spans) {
      if (span.end > offset) break;
      shift += span.placeholder - (span.end - span.start);
    }
    return offset + shift;
  };
  const pieces: string[] = [];
  let from = 0;
  for (const fragment of snippet.split(FRAGMENT_DELIMITER)) {
    const at = passage.indexOf(fragment, from);
    if (at < 0) return scanned.redactedContent;
    let start = at;
    let end = at + fragment.length;
    for (const span of spans) {
      if (span.start < end && span.end > start) {
        start = Math.min(start, span.start);
        end = Math.max(end, span.end);
      }
    }
    pieces.push(scanned.redactedContent.slice(toRedacted(start), toRedacted(end)));
    from = at + fragment.length;
  }
  return pieces.join(FRAGMENT_DELIMITER);
}

/**
 * The findings the scan replaced by a typed placeholder (`[TYPE]`, see SecurityResult), with the
 * placeholder's length, read off the redacted text itself: markers and injections stay as written.
 */
function redactedSpans(passage: string, scanned: SecurityResult): Array<{ start: number; end: number; placeholder: number }> {
  const spans: Array<{ start: number; end: number; placeholder: number }> = [];
  let shift = 0;
  const findings = [...scanned.findings].sort((a: SecurityFinding, b: SecurityFinding) => a.start - b.start);
  for (const finding of findings) {
    const placeholder = `[${finding.type.toUpperCase()}]`;
    const original = passage.slice(finding.start, finding.end);
    if (original !== placeholder && scanned.redactedContent.startsWith(placeholder, finding.start + shift)) {
      spans.push({ start: finding.start, end: finding.end, placeholder: placeholder.length });
      shift += placeholder.length - original.length;
    }
  }
  return spans;
}
