/**
 * The security stage: classifies a message as public / internal / confidential / restricted,
 * flags suspected prompt injection and produces a redacted copy. Local detectors only: pure,
 * synchronous, no I/O, and nothing is ever logged (findings are secrets).
 */
import type { SecurityLevel, SecurityResult } from '../types.js';
import { DETECTORS, RESTRICTED_TYPES, type Finding, type FindingType } from './detectors.js';
import { detectPromptInjection } from './injection.js';
import { normalizeForDetection } from './normalize.js';

const RESTRICTED = new Set<FindingType>(RESTRICTED_TYPES);
const NOT_REDACTED = new Set<FindingType>(['confidential_marker', 'internal_marker', 'prompt_injection']);

const LEVEL_OF: Readonly<Record<FindingType, SecurityLevel | undefined>> = {
  credit_card: 'restricted',
  iban: 'restricted',
  ssn: 'restricted',
  openai_key: 'restricted',
  aws_access_key: 'restricted',
  aws_secret_key: 'restricted',
  github_token: 'restricted',
  slack_token: 'restricted',
  jwt: 'restricted',
  private_key: 'restricted',
  password: 'restricted',
  url_credentials: 'restricted',
  secret: 'restricted',
  api_key: 'restricted',
  email: 'confidential',
  phone: 'confidential',
  confidential_marker: 'confidential',
  internal_marker: 'internal',
  prompt_injection: undefined,
};

const LEVEL_RANK: Readonly<Record<SecurityLevel, number>> = { public: 0, internal: 1, confidential: 2, restricted: 3 };

/** Overlap priority: anything redacted beats anything that is not (so no secret escapes redaction), then severity. */
function priority(type: FindingType): number {
  if (RESTRICTED.has(type)) return 5;
  if (type === 'email' || type === 'phone') return 4;
  if (type === 'prompt_injection') return 3;
  if (type === 'confidential_marker') return 2;
  return 1;
}

/** Keeps the higher-priority, then longer, then earlier of overlapping findings. Result sorted by start. */
export function resolveOverlaps(candidates: readonly Finding[]): Finding[] {
  const valid = candidates.filter((c) => c.end > c.start);
  // Fast path, the usual case: nothing overlaps.
  const byStart = [...valid].sort((a, b) => a.start - b.start || b.end - a.end);
  let overlapping = false;
  for (let i = 1; i < byStart.length; i++) {
    if (byStart[i]!.start < byStart[i - 1]!.end) {
      overlapping = true;
      break;
    }
  }
  if (!overlapping) return byStart;

  const ranked = valid
    .map((c) => ({ c, p: priority(c.type), len: c.end - c.start }))
    .sort((a, b) => b.p - a.p || b.len - a.len || a.c.start - b.c.start);
  const kept: Finding[] = [];
  for (const { c } of ranked) {
    // Binary search for the first kept finding that starts at or after c.start.
    let lo = 0;
    let hi = kept.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (kept[mid]!.start < c.start) lo = mid + 1;
      else hi = mid;
    }
    const prev = kept[lo - 1];
    const next = kept[lo];
    if ((prev && prev.end > c.start) || (next && next.start < c.end)) continue;
    kept.splice(lo, 0, c);
  }
  return kept;
}

function placeholder(type: FindingType): string {
  return `[${type.toUpperCase()}]`;
}

function redact(text: string, findings: readonly Finding[]): string {
  let out = '';
  let pos = 0;
  for (const finding of findings) {
    if (NOT_REDACTED.has(finding.type)) continue;
    out += text.slice(pos, finding.start) + placeholder(finding.type);
    pos = finding.end;
  }
  return out + text.slice(pos);
}

export function classifySecurity(text: string): SecurityResult {
  const input = typeof text === 'string' ? text : '';
  // Detectors read the normalised text; findings are mapped back to the original, which is what
  // is redacted and whose offsets are reported.
  const normalized = normalizeForDetection(input);
  const toOriginal = (finding: Finding): Finding => {
    const [start, end] = normalized.toOriginal(finding.start, finding.end);
    return { type: finding.type, start, end };
  };
  const candidates: Finding[] = [];
  for (const detect of DETECTORS) {
    for (const finding of detect(normalized.text)) candidates.push(toOriginal(finding));
  }
  const injections = detectPromptInjection(normalized.text);
  for (const finding of injections) candidates.push(toOriginal(finding));

  const findings = resolveOverlaps(candidates);

  let level: SecurityLevel = 'public';
  for (const finding of findings) {
    const l = LEVEL_OF[finding.type];
    if (l !== undefined && LEVEL_RANK[l] > LEVEL_RANK[level]) level = l;
  }
  // A suspected injection makes the message unsafe even if an overlapping secret won its span.
  const promptInjection = injections.length > 0;
  return {
    level,
    safe: level !== 'restricted' && !promptInjection,
    findings: findings.map(({ type, start, end }) => ({ type, start, end })),
    redactedContent: redact(input, findings),
    promptInjection,
  };
}
