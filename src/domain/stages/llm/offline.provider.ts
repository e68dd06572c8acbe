/**
 * The in-process provider used when no language model is configured. It never leaves the process and is
 * fully deterministic: the same request always yields the same reply and the same token estimate. The reply
 * is grounded in the retrieved passages and contacts and shaped by the intent category.
 */
import type { Contact, IntentCategory, LlmResult, RagDocument } from '../types.js';
import type { LlmProvider, LlmRequest } from './llm.provider.js';

export const OFFLINE_MODEL = 'honeyjar-offline-1';
export const OFFLINE_LABEL = '[Offline assistant — no language model is configured]';

const MAX_PASSAGES = 3;
const MAX_SNIPPET_CHARS = 400;

/** Deterministic token estimate (about four characters per token). */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

function clip(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1).trimEnd()}…` : flat;
}

/** Highest score first; ties keep their retrieval order, so the result is stable. */
function topDocuments(documents: RagDocument[], n: number): RagDocument[] {
  return documents
    .map((doc, i) => ({ doc, i }))
    .sort((a, b) => b.doc.score - a.doc.score || a.i - b.i)
    .slice(0, n)
    .map(({ doc }) => doc);
}

/** Used only when no intent was supplied: a small, deterministic guess. */
function guessCategory(request: LlmRequest): IntentCategory {
  const text = request.userContent.trim().toLowerCase();
  if (/^(hi|hello|hey|hiya|good (morning|afternoon|evening))\b[\s!.,]*\S{0,20}[\s!.]*$/.test(text)) return 'greeting';
  if (/\b(draft|write|compose|create)\b/.test(text)) return 'content_creation';
  if (request.contacts.length > 0 || /\b(contact|email address|phone number)\b/.test(text)) return 'contact_lookup';
  if (request.documents.length > 0) return 'question';
  return 'other';
}

const CONTENT_KINDS: Array<[RegExp, string]> = [
  [/press release|news release/, 'press release'],
  [/media pitch|\bpitch\b/, 'media pitch'],
  [/holding statement|\bstatement\b/, 'statement'],
  [/talking points|key messages/, 'talking points'],
  [/\bop-?ed\b/, 'op-ed'],
  [/blog/, 'blog post'],
  [/newsletter/, 'newsletter'],
  [/linkedin|tweet|social( media)? post|\bpost\b/, 'social media post'],
  [/\bemail\b/, 'email'],
];

function contentKind(text: string): string {
  const lower = text.toLowerCase();
  for (const [pattern, kind] of CONTENT_KINDS) if (pattern.test(lower)) return kind;
  return 'draft';
}

function describeContact(contact: Contact): string {
  const role = [contact.title, contact.employer].filter((v): v is string => Boolean(v)).join(', ');
  const lines = [`- ${contact.name}${role ? ` — ${role}` : ''}`];
  lines.push(`  Email: ${contact.emails.length > 0 ? contact.emails.join(', ') : 'not available'}`);
  lines.push(`  Phone: ${contact.phones.length > 0 ? contact.phones.join(', ') : 'not available'}`);
  if (contact.linkedinUrl) lines.push(`  LinkedIn: ${contact.linkedinUrl}`);
  return lines.join('\n');
}

function greetingReply(): string {
  return [
    'Hello! I can help your PR and communications team with:',
    '- answering questions from your organization’s documents,',
    '- finding media and business contacts,',
    '- drafting press releases, pitches, statements and social posts.',
    'What would you like to work on?',
  ].join('\n');
}

function contactReply(request: LlmRequest): string {
  if (request.contacts.length > 0) {
    const heading = request.contacts.length === 1 ? 'I found 1 contact:' : `I found ${request.contacts.length} contacts:`;
    return [heading, ...request.contacts.map(describeContact)].join('\n');
  }
  switch (request.contactLookupStatus) {
    case 'not_configured':
      return 'Contact lookup is not configured for this workspace, so I could not search for contacts. An administrator can enable it by adding a RocketReach API key.';
    case 'failed':
      return 'The contact lookup service did not respond, so I could not search for contacts. Please try again later.';
    default: {
      const who = request.intent?.entities?.person;
      const at = request.intent?.entities?.employer;
      const target = who ? ` for ${who}${at ? ` at ${at}` : ''}` : at ? ` at ${at}` : '';
      return `I could not find any contacts${target}. Try adding the person’s full name and their employer.`;
    }
  }
}

function documentReply(request: LlmRequest): string {
  const docs = topDocuments(request.documents, MAX_PASSAGES);
  if (docs.length === 0) {
    return 'No organization documents matched your request, so I cannot answer it from your materials. Try different keywords, or upload the relevant documents.';
  }
  const lines = ['Here is what your organization’s documents say:'];
  for (const doc of docs) lines.push(`- According to ${doc.title}: ${clip(doc.snippet, MAX_SNIPPET_CHARS)}`);
  if (request.documents.length > docs.length) {
    lines.push(`(${request.documents.length - docs.length} more matching passage(s) not shown.)`);
  }
  lines.push('These are excerpts, not a synthesized answer; please check the full documents before relying on them.');
  return lines.join('\n');
}

function draftReply(request: LlmRequest): string {
  const kind = contentKind(request.userContent);
  const topic = clip(request.userContent, 160);
  const docs = topDocuments(request.documents, MAX_PASSAGES);
  const lines = [
    `Here is a ${kind} skeleton to build on (request: "${topic}").`,
    '',
    'HEADLINE: [A concise, newsworthy headline]',
    'SUBHEADLINE: [One line adding the key supporting fact]',
    '',
    'LEDE: [CITY, Date] — [Who is announcing what, when, where and why it matters, in one or two sentences.]',
    '',
    'BODY:',
  ];
  if (docs.length > 0) {
    for (const doc of docs) lines.push(`- ${clip(doc.snippet, MAX_SNIPPET_CHARS)} (source: ${doc.title})`);
  } else {
    lines.push('- [Key fact or figure — no organization documents matched, so add your own supporting detail.]');
  }
  lines.push('- [Quote: "…," said [Name], [Title].]');
  lines.push('');
  lines.push('ABOUT [ORGANIZATION]: [Boilerplate placeholder — paste your standard company description.]');
  const contact = request.contacts[0];
  lines.push(
    contact
      ? `MEDIA CONTACT: ${contact.name}${contact.emails[0] ? `, ${contact.emails[0]}` : ''}${contact.phones[0] ? `, ${contact.phones[0]}` : ''}`
      : 'MEDIA CONTACT: [Name, email, phone]',
  );
  return lines.join('\n');
}

function scopeReply(): string {
  return [
    'I am an assistant for PR and communications work. I can answer questions from your organization’s documents,',
    'look up media and business contacts, and draft press releases, pitches, statements and social posts.',
    'Your request seems to be outside that scope; could you rephrase it in one of those terms?',
  ].join(' ');
}

function replyFor(request: LlmRequest): string {
  const category = request.intent?.category ?? guessCategory(request);
  switch (category) {
    case 'greeting':
      return greetingReply();
    case 'contact_lookup':
      return contactReply(request);
    case 'document_search':
    case 'question':
    case 'analysis':
      return documentReply(request);
    case 'content_creation':
      return draftReply(request);
    case 'other':
      return scopeReply();
  }
}

function promptChars(request: LlmRequest): number {
  let chars = request.userContent.length;
  for (const turn of request.history) chars += turn.content.length;
  for (const doc of request.documents) chars += doc.title.length + doc.snippet.length;
  for (const c of request.contacts) chars += JSON.stringify(c).length;
  return chars;
}

/** Words per streamed chunk of the offline reply. */
const WORDS_PER_CHUNK = 4;

/** The reply in chunks of a few words (whitespace kept), as a model would stream it. */
export function chunksOf(content: string): string[] {
  const words = content.match(/\S+\s*|\s+/g) ?? [];
  const chunks: string[] = [];
  for (let i = 0; i < words.length; i += WORDS_PER_CHUNK) chunks.push(words.slice(i, i + WORDS_PER_CHUNK).join(''));
  return chunks;
}

export function createOfflineProvider(): LlmProvider {
  return {
    name: 'offline',
    async complete(request: LlmRequest, signal?: AbortSignal, onDelta?: (text: string) => void): Promise<LlmResult> {
      if (signal?.aborted) throw signal.reason;
      const content = `${OFFLINE_LABEL}\n${replyFor(request)}`;
      const promptTokens = Math.ceil(promptChars(request) / 4);
      const completionTokens = estimateTokens(content);
      if (onDelta) {
        // Streamed a few words at a time, yielding between chunks like a network stream would.
        for (const chunk of chunksOf(content)) {
          signal?.throwIfAborted();
          onDelta(chunk);
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        signal?.throwIfAborted();
      }
      return {
        choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
        model: OFFLINE_MODEL,
        usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
        provider: 'offline',
      };
    },
  };
}
