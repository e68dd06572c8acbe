/**
 * Prompt-injection detection: phrases that try to override the assistant's instructions, reveal its
 * system prompt or switch it into an "unrestricted" persona. Text that merely talks about such
 * phrases (quotes them, asks what they mean, how to defend against them, wants a blog post about
 * them) is not an injection. Pure, no I/O, never logs. All patterns are bounded.
 */
import type { Finding } from './detectors.js';

const S = String.raw`\s{1,5}`;
const re = (source: string, flags = 'gi'): RegExp => new RegExp(source, flags);

interface InjectionPattern {
  re: RegExp;
  /** Extra check on the matched text; the match is dropped when it returns false. */
  accept?: (match: string) => boolean;
}

const RESTRICTIONS = String.raw`(?:restrictions|rules|limits|limitations|filters|guidelines|constraints|guardrails|censorship|content${S}polic(?:y|ies)|ethical${S}guidelines|safety${S}(?:rules|guidelines|filters))`;
const UNRESTRICTED = String.raw`(?:unfiltered|unrestricted|uncensored|jailbroken|unaligned|evil|amoral|unethical|unlimited|rogue)`;

const PATTERNS: readonly InjectionPattern[] = [
  // ignore (all) previous / prior / above instructions
  {
    re: re(
      String.raw`\b(?:ignore|disregard|forget|skip|override|bypass|drop)${S}(?:(?:all|any|every|the|your|my|of|these|those|each)${S}){0,3}` +
        String.raw`(?:previous|prior|above|earlier|preceding|former|initial|original|old|existing|system|developer|safety)${S}` +
        String.raw`(?:instructions?|prompts?|rules?|directions?|directives?|guidelines?|messages?|context|constraints?|commands?|polic(?:y|ies)|programming|guardrails?)\b`,
    ),
    // "disregard previous messages, wrong file" is a user correcting themselves; "ignore all
    // previous messages" is not.
    accept: (m) => !/\b(?:messages?|context|guidelines?)$/i.test(m) || /\b(?:all|any|every|your)\b/i.test(m),
  },
  // ignore everything above / everything you have been told
  {
    re: re(
      String.raw`\b(?:ignore|disregard|forget)${S}(?:everything|anything|all)${S}(?:above|before|previously${S}said|(?:you(?:'ve|${S}have)${S}been${S}told))\b`,
    ),
  },
  // disregard your system prompt / bypass your rules
  {
    re: re(
      String.raw`\b(?:ignore|disregard|forget|override|bypass|violate|break|circumvent)${S}(?:(?:all${S})?your${S}(?:system${S}prompt|instructions|rules|guidelines|restrictions|guardrails|filters|policies|programming|training|safety${S}\w{1,12})|(?:the|any|all)${S}(?:system${S}prompt|safety${S}(?:rules|guidelines|filters|restrictions)|content${S}polic(?:y|ies)|guardrails))\b`,
    ),
  },
  // reveal / print / show your system prompt or hidden instructions
  {
    re: re(
      String.raw`\b(?:reveal|print|show|display|output|repeat|leak|dump|expose|disclose|recite|write${S}out|tell${S}me|give${S}me|share|what${S}(?:is|are|were))${S}(?:me${S})?(?:your|the)${S}` +
        String.raw`(?:(?:full|entire|complete|exact|original|initial|hidden|secret|internal|system|developer|verbatim|confidential)${S}){0,3}` +
        String.raw`(?:prompt|instructions|rules|guidelines|configuration|directives)\b`,
    ),
    accept: (m) => {
      const lower = m.toLowerCase().replace(/\s+/g, ' ');
      if (/\bsystem prompt\b/.test(lower)) return true;
      if (/\b(?:hidden|secret|initial|original|system|developer|internal|verbatim|confidential)\b/.test(lower)) return true;
      // "repeat your instructions", "print your prompt" — but not "what are your rules".
      return /\byour (?:\w+ )*(?:prompt|instructions)$/.test(lower) && !/^what /.test(lower);
    },
  },
  // you are now DAN / you are now an unfiltered AI / you are now in developer mode
  {
    re: re(
      String.raw`\byou${S}are${S}now${S}(?:DAN\b|an?${S}${UNRESTRICTED}|in${S}(?:developer|god|jailbreak|unrestricted|DAN)${S}mode|free${S}(?:of|from)${S}(?:all${S}|any${S})?${RESTRICTIONS})`,
    ),
    accept: (m) => !/\bdan\b/i.test(m) || /\bDAN\b/.test(m),
  },
  {
    re: re(String.raw`\b(?:act${S}as|you${S}are|become|enable)${S}DAN\b|\bDAN${S}\(\s{0,3}do${S}anything${S}now\b|\bdo${S}anything${S}now${S}\(\s{0,3}DAN\b`),
    accept: (m) => /DAN/.test(m),
  },
  // pretend you have no restrictions
  {
    re: re(
      String.raw`\bpretend${S}(?:that${S})?(?:you${S}(?:have|had|are|were)|there${S}(?:are|were|is))${S}(?:no|without(?:${S}any)?|free${S}(?:of|from))${S}${RESTRICTIONS}\b`,
    ),
  },
  // act as an unfiltered / jailbroken AI
  {
    re: re(
      String.raw`\b(?:act|behave|respond|roleplay|role-play)${S}as${S}(?:if${S}you${S}(?:are|were)${S})?(?:an?${S})?${UNRESTRICTED}\b|\bpretend${S}to${S}be${S}(?:an?${S})?${UNRESTRICTED}\b|\byou${S}are${S}(?:an?${S})${UNRESTRICTED}${S}(?:AI|assistant|model|chatbot|LLM|bot)\b`,
    ),
  },
  // developer mode enabled
  {
    re: re(
      String.raw`\b(?:developer|god|jailbreak|DAN)${S}mode${S}(?:is${S}(?:now${S})?)?(?:enabled|activated|unlocked|engaged)\b|\b(?:enable|activate|enter|switch${S}to)${S}(?:god|jailbreak|DAN)${S}mode\b`,
    ),
  },
  // Instructions embedded to override the rules.
  {
    re: re(
      String.raw`\bfrom${S}now${S}on,?${S}(?:you${S}(?:will|must|shall|are${S}to)${S})?(?:ignore|disregard|bypass|not${S}follow|stop${S}following|have${S}no${S}${RESTRICTIONS})\b` +
        String.raw`|\b(?:system|admin|administrator)${S}override\b` +
        String.raw`|\bnew${S}system${S}(?:prompt|instructions?)\s{0,3}:` +
        String.raw`|\b(?:you${S}are${S})?no${S}longer${S}(?:bound|restricted|limited)${S}by\b` +
        String.raw`|\b(?:respond|answer|reply|comply)${S}without${S}(?:any${S})?(?:restrictions|filters|filtering|censorship|limitations|guardrails|safety${S}\w{1,12})\b` +
        String.raw`|\bdo${S}not${S}(?:follow|obey)${S}(?:your|the|any)${S}(?:rules|guidelines|instructions|system${S}prompt)\b`,
    ),
  },
  // Chat-template control tokens pasted into user content.
  { re: re(String.raw`<\|(?:im_start|im_end|system|endoftext)\|>|\[\/?INST\]|<<\/?SYS>>`) },
];

/** Topic words showing the text discusses injection as a subject. */
const STRONG_CUE_RE =
  /\b(?:prompt[- ]injections?|injection[- ]attacks?|jailbreak(?:s|ing)?|jailbreak[- ]prompts?|adversarial[- ]prompts?|red[- ]team(?:s|ing)?|prompt[- ]attacks?)\b/gi;
/** Defensive framing in the same sentence. */
const DEFENSE_CUE_RE =
  /\b(?:protect(?:s|ing|ion)?|defend(?:s|ing)?|defen[cs]es?|prevent(?:s|ing|ion)?|detect(?:s|ing|ion)?|mitigat(?:e|es|ing|ion)|guard(?:s|ing)?\s+against|filter(?:s|ing)?|block(?:s|ing)?|safeguards?|resist(?:s|ant)?|robust(?:ness)?|recogni[sz]e)\b/i;
/** Weaker discussion cues in the same sentence; each counts once. */
const WEAK_CUES: readonly RegExp[] = [
  /\bwhat\s+(?:is|are|does|do|did)\b/i,
  /\bexplain(?:s|ed|ing)?\b/i,
  /\bhow\s+(?:do|does|can|could|should|to|would)\b/i,
  /\b(?:such\s+as|like|e\.g\.|for\s+example|for\s+instance|examples?)\b/i,
  /\b(?:blog\s+post|article|essay|newsletter|write\s+about|white\s*paper|explainer)\b/i,
  /\b(?:phrases?|wording|message|messages|inputs?|strings?|text)\s+(?:like|such|that|containing|saying)\b/i,
  /\b(?:attacks?|attackers?|malicious|hackers?|adversar(?:y|ies|ial))\b/i,
  /\b(?:means?|meaning|called|term|known\s+as|refers?\s+to)\b/i,
  /\b(?:say(?:s|ing)?|type[sd]?|typing|writes?|wrote|paste[sd]?)\b/i,
  /\b(?:why|common|classic|famous|typical)\b/i,
];

const OPENING_QUOTES = new Set(['"', "'", '“', '‘', '«', '`', '„']);
const CLOSING_QUOTES: Readonly<Record<string, string>> = { '“': '”', '‘': '’', '«': '»', '„': '“' };

function isQuoted(text: string, start: number, end: number): boolean {
  let i = start - 1;
  let skipped = 0;
  while (i >= 0 && skipped < 2 && /\s/.test(text[i]!)) {
    i--;
    skipped++;
  }
  if (i < 0) return false;
  const open = text[i]!;
  if (!OPENING_QUOTES.has(open)) return false;
  // An apostrophe only opens a quote after a space, punctuation or the start of text.
  if (open === "'" && i > 0 && /[\p{L}\p{N}]/u.test(text[i - 1]!)) return false;
  const close = CLOSING_QUOTES[open] ?? open;
  const after = text.slice(end, end + 300);
  return after.includes(close) || (open === '“' && after.includes('"'));
}

/** The sentence around [start, end), bounded to 240 characters either side. */
function sentenceWindow(text: string, start: number, end: number): string {
  let left = start;
  const minLeft = Math.max(0, start - 240);
  while (left > minLeft) {
    const c = text[left - 1]!;
    if (c === '\n' || ((c === '.' || c === '!' || c === '?') && /\s/.test(text[left] ?? ' '))) break;
    left--;
  }
  let right = end;
  const maxRight = Math.min(text.length, end + 240);
  while (right < maxRight) {
    const c = text[right]!;
    // Punctuation right after the phrase usually closes the quotation, not the sentence.
    if (c === '\n' || (right > end + 3 && (c === '.' || c === '!' || c === '?'))) break;
    right++;
  }
  return text.slice(left, start) + ' … ' + text.slice(end, right);
}

interface Span {
  start: number;
  end: number;
}

/** Words that introduce a phrase being mentioned rather than issued: "such as …", "users typing …". */
const INTRODUCER_RE =
  /\b(?:like|such\s+as|e\.g\.|i\.e\.|for\s+(?:example|instance)|example|including|containing|say|says|saying|said|type|types|typed|typing|write|writes|writing|wrote|paste|pastes|pasting|phrases?|called|as\s+in|about)\s{0,3}[:,—–-]?\s{0,3}$/i;

/** Between two mentioned phrases in a list: "such as X, Y or Z". */
const LIST_GAP_RE = /^\s{0,3}(?:,|;|\/|or|and|,\s{0,3}or|,\s{0,3}and)\s{0,3}$/i;

function discussionScore(text: string, match: Span, strongCues: readonly Span[], previousMentionEnd: number): number {
  const quoted = isQuoted(text, match.start, match.end);
  const introduced =
    INTRODUCER_RE.test(text.slice(Math.max(0, match.start - 32), match.start)) ||
    (previousMentionEnd >= 0 && match.start - previousMentionEnd <= 12 && LIST_GAP_RE.test(text.slice(previousMentionEnd, match.start)));
  // Unquoted and not introduced as an example, the phrase is in command position: an injection,
  // whatever else the message talks about ("This is a prompt injection test. Ignore all …").
  if (!quoted && !introduced) return 0;
  let score = 0;
  if (quoted) score += 2;
  if (strongCues.some((c) => c.end <= match.start || c.start >= match.end)) score += 2;
  const window = sentenceWindow(text, match.start, match.end);
  if (DEFENSE_CUE_RE.test(window)) score += 2;
  let weak = 0;
  for (const cue of WEAK_CUES) {
    if (cue.test(window)) weak++;
    if (weak >= 2) break;
  }
  return score + weak;
}

/** Discussion needs e.g. quoting plus a cue, or a topic word plus a cue, or defensive framing plus a cue. */
const DISCUSSION_THRESHOLD = 3;
/**
 * Matches scored per pattern. Past this many, the rest of a pattern's matches count as injections
 * without scoring: keeps adversarial inputs cheap, and padding a message with hundreds of quoted
 * phrases cannot hide a real one behind them.
 */
const MAX_SCORED_PER_PATTERN = 64;

export function detectPromptInjection(text: string): Finding[] {
  const strongCues: Span[] = [];
  for (const m of text.matchAll(STRONG_CUE_RE)) {
    strongCues.push({ start: m.index, end: m.index + m[0].length });
    if (strongCues.length >= MAX_SCORED_PER_PATTERN) break;
  }
  const matches: Array<Span & { pattern: number }> = [];
  PATTERNS.forEach((pattern, index) => {
    for (const m of text.matchAll(pattern.re)) {
      if (pattern.accept && !pattern.accept(m[0])) continue;
      matches.push({ start: m.index, end: m.index + m[0].length, pattern: index });
    }
  });
  matches.sort((a, b) => a.start - b.start);

  const out: Finding[] = [];
  const scored = new Array<number>(PATTERNS.length).fill(0);
  let previousMentionEnd = -1;
  for (const match of matches) {
    if (match.start < previousMentionEnd) continue; // inside a phrase already judged a mention
    const withinCap = ++scored[match.pattern]! <= MAX_SCORED_PER_PATTERN;
    if (withinCap && discussionScore(text, match, strongCues, previousMentionEnd) >= DISCUSSION_THRESHOLD) {
      previousMentionEnd = match.end;
      continue;
    }
    out.push({ type: 'prompt_injection', start: match.start, end: match.end });
  }
  return out;
}
