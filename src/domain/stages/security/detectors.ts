/**
 * Local detectors for secrets, payment data and personal data. Pure functions, no I/O, never log.
 *
 * Every pattern here is linear-time on adversarial input: quantifiers are bounded or run over a
 * class that cannot overlap what follows; the ones that can scan far are anchored by a lookbehind
 * so that they only start at the beginning of a run, and e-mail and URL credentials are anchored on
 * their rare character ('@', "://") and scanned in code. Candidates are validated in code (Luhn,
 * IIN, mod-97, SSN ranges, JWT header decoding, …).
 */
import parsePhoneNumber, { type CountryCode } from 'libphonenumber-js/max';
import phoneMetadata from 'libphonenumber-js/max/metadata';
import type { SecurityFinding } from '../types.js';
import { cardIinPlausible, decodeBase64UrlJson, IBAN_LENGTHS, ibanValid, luhnValid, ssnValid } from './validators.js';

export const RESTRICTED_TYPES = [
  'credit_card',
  'iban',
  'ssn',
  'openai_key',
  'aws_access_key',
  'aws_secret_key',
  'github_token',
  'slack_token',
  'jwt',
  'private_key',
  'password',
  'url_credentials',
  'secret',
  'api_key',
] as const;
export const CONFIDENTIAL_DATA_TYPES = ['email', 'phone'] as const;
export const MARKER_TYPES = ['confidential_marker', 'internal_marker'] as const;

export type RestrictedType = (typeof RESTRICTED_TYPES)[number];
export type FindingType =
  | RestrictedType
  | (typeof CONFIDENTIAL_DATA_TYPES)[number]
  | (typeof MARKER_TYPES)[number]
  | 'prompt_injection';

export interface Finding extends SecurityFinding {
  type: FindingType;
}

const f = (type: FindingType, start: number, end: number): Finding => ({ type, start, end });

const isDigit = (c: number): boolean => c >= 48 && c <= 57;
const isAlnum = (c: number): boolean => isDigit(c) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
const isWordChar = (c: number): boolean => isAlnum(c) || c === 95;
const isSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13) || c === 0xa0;

// ---------------------------------------------------------------------------------------------
// Payment cards
// ---------------------------------------------------------------------------------------------

/**
 * A run of 13–48 digits with single space/dash separators, not part of a larger number or a
 * decimal ("0.4111…"). Commas are allowed around it (CSV rows).
 */
const CARD_RUN_RE = /(?<![\w./+$€£]|\d[ -])\d(?:[ -]?\d){12,47}(?![ -]?\d|\.\d|\w)/g;

export function detectCreditCards(text: string): Finding[] {
  const out: Finding[] = [];
  for (const m of text.matchAll(CARD_RUN_RE)) {
    const base = m.index;
    // Split the run into digit groups with their offsets.
    const groups: Array<{ start: number; end: number; digits: string }> = [];
    const run = m[0];
    let gStart = 0;
    for (let i = 0; i <= run.length; i++) {
      if (i === run.length || run[i] === ' ' || run[i] === '-') {
        groups.push({ start: base + gStart, end: base + i, digits: run.slice(gStart, i) });
        gStart = i + 1;
      }
    }
    // Longest group-aligned span of 13–19 digits that is a plausible, Luhn-valid card.
    let i = 0;
    while (i < groups.length) {
      let found = -1;
      let acc = '';
      const spans: string[] = [];
      for (let j = i; j < groups.length; j++) {
        acc += groups[j]!.digits;
        spans.push(acc);
        if (acc.length > 19) break;
      }
      for (let k = spans.length - 1; k >= 0; k--) {
        const digits = spans[k]!;
        if (digits.length >= 13 && digits.length <= 19 && cardIinPlausible(digits) && luhnValid(digits)) {
          found = i + k;
          break;
        }
      }
      if (found >= 0) {
        out.push(f('credit_card', groups[i]!.start, groups[found]!.end));
        i = found + 1;
      } else {
        i++;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// IBAN
// ---------------------------------------------------------------------------------------------

const IBAN_START_RE = /(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?=[ ]?[A-Za-z0-9])/g;

export function detectIbans(text: string): Finding[] {
  const out: Finding[] = [];
  for (const m of text.matchAll(IBAN_START_RE)) {
    const start = m.index;
    const country = m[0].slice(0, 2).toUpperCase();
    const length = IBAN_LENGTHS[country];
    if (length === undefined) continue;
    const needed = length - 4;
    let i = start + 4;
    const spaced = text.charCodeAt(i) === 32;
    // Cheap reject before walking: the IBAN must end exactly where the country length says.
    const endPos = i + needed + (spaced ? Math.ceil(needed / 4) : 0);
    if (isAlnum(text.charCodeAt(endPos)) || !isAlnum(text.charCodeAt(endPos - 1))) continue;
    let count = 0;
    let ok = true;
    while (count < needed) {
      if (spaced && count % 4 === 0) {
        if (text.charCodeAt(i) !== 32) {
          ok = false;
          break;
        }
        i++;
      }
      if (!isAlnum(text.charCodeAt(i))) {
        ok = false;
        break;
      }
      count++;
      i++;
    }
    if (!ok || isAlnum(text.charCodeAt(i))) continue;
    const compact = text.slice(start, i).replace(/ /g, '').toUpperCase();
    if (ibanValid(compact)) out.push(f('iban', start, i));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// US SSN
// ---------------------------------------------------------------------------------------------

const SSN_DASHED_RE = /(?<![\w.\-/+])(\d{3})-(\d{2})-(\d{4})(?!\w|[-.]\d)/g;
const SSN_PLAIN_RE = /(?<![\w.\-/+])(\d{3})( ?)(\d{2})\2(\d{4})(?!\w|[-.]\d)/g;
const SSN_CONTEXT_RE = /\b(?:ssn|ss#|ss no|social security|soc\.? ?sec)/i;

export function detectSsns(text: string): Finding[] {
  const out: Finding[] = [];
  for (const m of text.matchAll(SSN_DASHED_RE)) {
    if (ssnValid(m[1]!, m[2]!, m[3]!)) out.push(f('ssn', m.index, m.index + m[0].length));
  }
  for (const m of text.matchAll(SSN_PLAIN_RE)) {
    if (!ssnValid(m[1]!, m[3]!, m[4]!)) continue;
    const before = text.slice(Math.max(0, m.index - 40), m.index);
    if (SSN_CONTEXT_RE.test(before)) out.push(f('ssn', m.index, m.index + m[0].length));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// API keys and tokens
// ---------------------------------------------------------------------------------------------

const OPENAI_RE = /(?<![A-Za-z0-9_-])sk-(?:(?:proj|svcacct|admin|None)-)?[A-Za-z0-9_-]{20,}/g;
const LONG_ALNUM_RUN_RE = /[A-Za-z0-9]{16}/;

export function detectOpenAiKeys(text: string): Finding[] {
  const out: Finding[] = [];
  for (const m of text.matchAll(OPENAI_RE)) {
    const key = m[0];
    // Real keys are random: a long unbroken alphanumeric run with letters and digits. This keeps
    // hyphenated slugs such as "sk-2024-quarterly-planning-document" out.
    if (!LONG_ALNUM_RUN_RE.test(key) || !/\d/.test(key) || !/[A-Za-z]/.test(key.slice(3))) continue;
    out.push(f('openai_key', m.index, m.index + key.length));
  }
  return out;
}

const AWS_ACCESS_RE = /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/g;
const AWS_SECRET_RE =
  /(?:aws[ _-]?secret(?:[ _-]?access)?[ _-]?key|secret[ _-]?access[ _-]?key)(?:[ _-]?id)?["']?\s{0,3}(?:[:=]|=>|\bis\b)\s{0,3}["']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])/dgi;

/** A bare 40-character base64 run, the shape of a secret access key. */
const AWS_SECRET_SHAPE_RE = /(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])/g;
/** How far (characters) from a key id a bare secret-shaped run is taken as its secret half. */
const AWS_PAIR_DISTANCE = 200;
/**
 * Random base64 has all three classes and about 4.8 bits per character over 40 characters; hex
 * digests (git SHAs, SHA-1) lack upper or lower case, base64 of prose repeats its letters.
 */
const AWS_SECRET_MIN_ENTROPY = 4.2;

export function detectAwsKeys(text: string): Finding[] {
  const out: Finding[] = [];
  const keyIds: number[] = [];
  for (const m of text.matchAll(AWS_ACCESS_RE)) {
    out.push(f('aws_access_key', m.index, m.index + m[0].length));
    keyIds.push(m.index);
  }
  for (const m of text.matchAll(AWS_SECRET_RE)) {
    const value = m[1]!;
    const classes = Number(/[A-Z]/.test(value)) + Number(/[a-z]/.test(value)) + Number(/[0-9]/.test(value));
    const span = m.indices?.[1];
    if (classes >= 2 && span) out.push(f('aws_secret_key', span[0], span[1]));
  }
  if (keyIds.length === 0) return out;
  // Unlabelled, the secret half is recognised by sitting next to its key id (CSV export, "id / secret").
  let k = 0;
  for (const m of text.matchAll(AWS_SECRET_SHAPE_RE)) {
    while (k < keyIds.length && keyIds[k]! + 20 + AWS_PAIR_DISTANCE < m.index) k++;
    const near = k < keyIds.length && keyIds[k]! - AWS_PAIR_DISTANCE <= m.index + 40;
    const value = m[0];
    if (near && /[A-Z]/.test(value) && /[a-z]/.test(value) && /[0-9]/.test(value) && shannonEntropy(value) >= AWS_SECRET_MIN_ENTROPY) {
      out.push(f('aws_secret_key', m.index, m.index + value.length));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Generic secrets after a secret word
// ---------------------------------------------------------------------------------------------

/** Words naming a secret; passwords have their own detector, which takes any value. */
const SECRET_WORD = String.raw`(?:client[_ -]?secret|secret(?:[_ -]?(?:access[_ -]?)?key)?|api[_ -]?(?:key|token|secret)|apikey|access[_ -]?(?:key|token)|auth(?:entication|orization)?[_ -]?(?:token|key)|(?:refresh|session|bearer|bot|id)[_ -]?token|token|credentials?|private[_ -]?key|signing[_ -]?(?:key|secret)|encryption[_ -]?key|webhook[_ -]?secret)`;
const GENERIC_SECRET_RE = new RegExp(
  String.raw`(?<![A-Za-z0-9])${SECRET_WORD}s?(?![A-Za-z0-9])["']?` +
    // Optional qualifier: "the API token for staging is …"
    String.raw`(?:\s{1,3}(?:for|to|of|on)(?:\s{1,3}[\w.-]{1,40}){1,4}?)?` +
    String.raw`(?:\s{0,3}(?:[:=]|=>|:=)\s{0,3}|\s{1,3}(?:is|was|=)\s{1,3}(?::\s{0,3})?)` +
    String.raw`(?:"([^"\s]{12,512})"|'([^'\s]{12,512})'|` + '`([^`\\s]{12,512})`' + String.raw`|([A-Za-z0-9+/=_\-.~!#$%^&*]{12,512}))`,
  'dgi',
);
/** "Authorization: Bearer <token>", "bearer <token>". */
const BEARER_RE = /(?<![A-Za-z0-9])bearer\s{1,3}([A-Za-z0-9\-._~+/]{12,512}=*)(?![A-Za-z0-9\-._~+/=])/dgi;
/**
 * Bits per character a value must carry to be taken for a secret. Random tokens of 12+ characters
 * carry 3.3 (hex) to 5 (base64); words, dates and version strings repeat their characters.
 */
const GENERIC_SECRET_MIN_ENTROPY = 3.0;
const SECRET_VALUE_CHAR_RE = /[A-Za-z0-9+/=_\-~]/;
const SEMVER_LIKE_RE = /^v?\d{1,6}(?:[.-]\d{1,6}){1,4}(?:[-+.][A-Za-z0-9.]{1,20})?$/i;
const PLACEHOLDER_WORD_RE = /your|example|sample|placeholder|changeme|redacted|dummy|xxxx|\*\*\*\*|<|>/i;

/** Shannon entropy in bits per character. */
function shannonEntropy(value: string): number {
  const counts = new Map<string, number>();
  for (const c of value) counts.set(c, (counts.get(c) ?? 0) + 1);
  let entropy = 0;
  for (const n of counts.values()) {
    const p = n / value.length;
    entropy -= p * Math.log2(p);
  }
  return entropy;
}

/**
 * Changes between letters and digits, and from lower to upper case, per alphanumeric character
 * (other characters skipped; upper to lower is how every capitalised word starts). Random tokens
 * change at about every other character; words with a number ("Collaboration2024",
 * "Summer2024Launch", "ERC20-compatible") change once or twice.
 */
function classChangeRate(value: string): number {
  let previous = -1;
  let changes = 0;
  let alnum = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const cls = isDigit(c) ? 0 : c >= 65 && c <= 90 ? 1 : c >= 97 && c <= 122 ? 2 : -1;
    if (cls < 0) continue;
    alnum++;
    if (previous >= 0 && cls !== previous && !(previous === 1 && cls === 2)) changes++;
    previous = cls;
  }
  return alnum === 0 ? 0 : changes / alnum;
}
const GENERIC_SECRET_MIN_CHANGE_RATE = 0.2;

function looksLikeSecret(value: string): boolean {
  if (value.length < 12 || !/[A-Za-z]/.test(value) || !/\d/.test(value)) return false;
  if (value.includes('@') || SEMVER_LIKE_RE.test(value) || PLACEHOLDER_WORD_RE.test(value)) return false;
  if (/^(?:\$|\{|%|<)/.test(value) || /^(?:process\.env|os\.environ|env\.)/i.test(value)) return false;
  return shannonEntropy(value) >= GENERIC_SECRET_MIN_ENTROPY && classChangeRate(value) >= GENERIC_SECRET_MIN_CHANGE_RATE;
}

export function detectGenericSecrets(text: string): Finding[] {
  const out: Finding[] = [];
  for (const m of text.matchAll(GENERIC_SECRET_RE)) {
    const groupIndex = [1, 2, 3, 4].find((g) => m[g] !== undefined);
    const span = groupIndex === undefined ? undefined : m.indices?.[groupIndex];
    if (groupIndex === undefined || !span) continue;
    let [start, end] = span;
    let value = m[groupIndex]!;
    if (groupIndex === 4) {
      // Unquoted: drop trailing sentence punctuation.
      const trimmed = value.replace(/[.,;:!?)\]}]+$/, '');
      end -= value.length - trimmed.length;
      value = trimmed;
    }
    if (!looksLikeSecret(value)) continue;
    // A value longer than the pattern's bound is redacted whole.
    while (end < text.length && !isSpace(text.charCodeAt(end)) && SECRET_VALUE_CHAR_RE.test(text.charAt(end))) end++;
    out.push(f('secret', start, end));
  }
  for (const m of text.matchAll(BEARER_RE)) {
    const span = m.indices?.[1];
    if (span && looksLikeSecret(m[1]!)) out.push(f('secret', span[0], span[1]));
  }
  return out;
}

/**
 * Provider keys recognised by their vendor prefix: Stripe secret and restricted keys (live and
 * test), Google API keys, GitLab tokens, npm tokens, Hugging Face tokens. Each body must look
 * random, so names such as "npm_modules", "hf_hub_download" or "glpat-rotation-guide" stay out.
 */
const VENDOR_KEY_RE =
  /(?<![A-Za-z0-9_-])(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,}|AIza[A-Za-z0-9_-]{35}|gl(?:pat|dt|rt|ptt|soat)-[A-Za-z0-9_-]{20,}|npm_[A-Za-z0-9]{36}|hf_[A-Za-z0-9]{34,})(?![A-Za-z0-9_-])/g;

export function detectVendorKeys(text: string): Finding[] {
  const out: Finding[] = [];
  for (const m of text.matchAll(VENDOR_KEY_RE)) {
    const key = m[0];
    const body = key.slice(key.startsWith('AIza') ? 4 : key.indexOf(key.startsWith('gl') ? '-' : '_', 3) + 1);
    // Random bodies mix classes: digits and letters, or (Hugging Face, GitLab) upper and lower case.
    const mixed = (/\d/.test(body) && /[A-Za-z]/.test(body)) || (/[A-Z]/.test(body) && /[a-z]/.test(body));
    // A GitLab body may hold dashes; a hyphenated slug has no long random run.
    if (!mixed || (key.startsWith('gl') && !LONG_ALNUM_RUN_RE.test(body))) continue;
    out.push(f('api_key', m.index, m.index + key.length));
  }
  return out;
}

const GITHUB_RE = /(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})/g;

export function detectGithubTokens(text: string): Finding[] {
  const out: Finding[] = [];
  for (const m of text.matchAll(GITHUB_RE)) out.push(f('github_token', m.index, m.index + m[0].length));
  return out;
}

const SLACK_TOKEN_RE = /(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{10,}/g;
const SLACK_WEBHOOK_RE = /https?:\/\/hooks\.slack\.com\/(?:services|workflows|triggers)\/[A-Za-z0-9_/-]{8,}/g;

export function detectSlackTokens(text: string): Finding[] {
  const out: Finding[] = [];
  for (const m of text.matchAll(SLACK_TOKEN_RE)) {
    if (/\d/.test(m[0].slice(5))) out.push(f('slack_token', m.index, m.index + m[0].length));
  }
  for (const m of text.matchAll(SLACK_WEBHOOK_RE)) out.push(f('slack_token', m.index, m.index + m[0].length));
  return out;
}

/** Three base64url segments; the header always starts with "e" (base64 of "{"). */
const JWT_RE = /(?<![A-Za-z0-9_.-])e[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*/g;

export function detectJwts(text: string): Finding[] {
  const out: Finding[] = [];
  for (const m of text.matchAll(JWT_RE)) {
    const header = decodeBase64UrlJson(m[0].slice(0, m[0].indexOf('.')));
    if (header && typeof header.alg === 'string') out.push(f('jwt', m.index, m.index + m[0].length));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// PEM private keys
// ---------------------------------------------------------------------------------------------

const PEM_BEGIN_RE = /-----BEGIN (?:[A-Z0-9]{1,20} ){0,4}PRIVATE KEY(?: BLOCK)?-----/g;
const PEM_END_RE = /-----END (?:[A-Z0-9]{1,20} ){0,4}PRIVATE KEY(?: BLOCK)?-----/g;
/** Whitespace, or a literal "\n" / "\r" escape as in keys pasted from JSON or .env files. */
function separatorLength(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (isSpace(c)) return 1;
  if (c === 92 /* \\ */) {
    const n = text.charCodeAt(i + 1);
    if (n === 110 || n === 114 || n === 116) return 2; // \n \r \t
  }
  return 0;
}
const PEM_BODY_RE = /[A-Za-z0-9+/]{16}/;
const BASE64_PREFIX_RE = /^[A-Za-z0-9+/=]+/;

export function detectPrivateKeys(text: string): Finding[] {
  const out: Finding[] = [];
  const ends: Array<{ start: number; end: number }> = [];
  for (const m of text.matchAll(PEM_END_RE)) ends.push({ start: m.index, end: m.index + m[0].length });
  let endIdx = 0;
  let coveredUntil = -1;
  for (const m of text.matchAll(PEM_BEGIN_RE)) {
    const start = m.index;
    if (start < coveredUntil) continue;
    const headerEnd = start + m[0].length;
    while (endIdx < ends.length && ends[endIdx]!.start < headerEnd) endIdx++;
    const endMarker = ends[endIdx];
    if (endMarker) {
      if (PEM_BODY_RE.test(text.slice(headerEnd, endMarker.start))) {
        out.push(f('private_key', start, endMarker.end));
        coveredUntil = endMarker.end;
      } else {
        // No key material before this END: later headers before it have none either.
        coveredUntil = endMarker.start;
      }
      continue;
    }
    // No END marker (truncated paste): take the base64 body that follows, token by token.
    let i = headerEnd;
    let bodyEnd = headerEnd;
    let sawBody = false;
    while (i < text.length) {
      let j = i;
      for (let w = separatorLength(text, j); w > 0; w = separatorLength(text, j)) j += w;
      let k = j;
      while (k < text.length && separatorLength(text, k) === 0) k++;
      if (k === j) break;
      const token = text.slice(j, k);
      if (token === 'Proc-Type:' || token === 'DEK-Info:' || token === 'Comment:') {
        let e = k;
        while (e < text.length && text.charCodeAt(e) !== 10) e++;
        bodyEnd = e;
        i = e;
        continue;
      }
      // A body line may run into a closing quote or bracket ("…Yrpq\"}"): keep its base64 prefix.
      const body = BASE64_PREFIX_RE.exec(token)?.[0] ?? '';
      if (body.length < 8 && !body.endsWith('=')) break;
      if (body.length >= 16) sawBody = true;
      bodyEnd = j + body.length;
      if (body.length < token.length) break;
      i = k;
    }
    if (sawBody) {
      out.push(f('private_key', start, bodyEnd));
      coveredUntil = bodyEnd;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Passwords in phrases
// ---------------------------------------------------------------------------------------------

const PASSWORD_RE = new RegExp(
  String.raw`\b(?:pass(?:word|wd|code|phrase)|pwd)s?["']?` +
    // Optional qualifier: "the password for the admin account is …"
    String.raw`(?:\s{1,3}(?:for|to|of|on)(?:\s{1,3}[\w.@-]{1,40}){1,4}?)?` +
    String.raw`(?:\s{0,3}(?:[:=]|=>)\s{0,3}|\s{1,3}(?:is|was|will be|=)\s{1,3}(?::\s{0,3})?)` +
    String.raw`(?:"([^"\r\n]{1,200})"|'([^'\r\n]{1,200})'|` + '`([^`\\r\\n]{1,200})`' + String.raw`|([^\s"'` + '`' + String.raw`<>&;,]{1,200}))`,
  'dgi',
);

const PASSWORD_STOPWORDS = new Set(
  (
    'the a an not too required incorrect invalid wrong expired correct set your my our their his her its this that ' +
    'these those being case stored changed reset weak strong missing empty secure hashed encrypted saved sent needed ' +
    'mandatory optional hidden masked protected blank null none undefined same different easy hard long short ' +
    'updated valid also still now only just very case-sensitive at in on for to of and or but must should will can ' +
    'could would may might be been provided given generated shown displayed visible known unknown compromised leaked ' +
    'here there below above attached following what which where how when why it something another used using please ' +
    'n/a na tbd enter type change create choose new old current password passwords passcode pwd secret ' +
    'managed rotated sensitive confidential private ok fine good bad'
  ).split(' '),
);
const PASSWORD_UNIT_AFTER_RE = /^\s{1,3}(?:characters?|chars?|digits?|letters?|symbols?|long|or\s+more|minimum|at\s+least)\b/i;

function isPlaceholderSecret(value: string): boolean {
  if (value.length < 4) return true;
  if (/^[*x•.#_-]+$/i.test(value)) return true; // already masked
  if (/^(?:\$|\{|%|<)/.test(value)) return true; // ${VAR}, {{var}}, %VAR%, <password>
  if (/^(?:process\.env|os\.environ|env\.)/i.test(value)) return true;
  return PASSWORD_STOPWORDS.has(value.toLowerCase());
}

export function detectPasswords(text: string): Finding[] {
  const out: Finding[] = [];
  for (const m of text.matchAll(PASSWORD_RE)) {
    const groupIndex = [1, 2, 3, 4].find((g) => m[g] !== undefined);
    if (groupIndex === undefined) continue;
    const span = m.indices?.[groupIndex];
    if (!span) continue;
    let [start, end] = span;
    let value = m[groupIndex]!;
    if (groupIndex === 4) {
      // Unquoted: drop trailing sentence punctuation.
      const trimmed = value.replace(/[.,;:?)\]}]+$/, '');
      if (trimmed.length > 0) {
        end -= value.length - trimmed.length;
        value = trimmed;
      }
      if (PASSWORD_UNIT_AFTER_RE.test(text.slice(end, end + 24))) continue;
    }
    if (isPlaceholderSecret(value.trim())) continue;
    out.push(f('password', start, end));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Credentials in URLs
// ---------------------------------------------------------------------------------------------

/** After "scheme://": user (may be empty), ':', password, '@', then a host. */
const URL_USERINFO_RE = /([^\s:/?#@"'<>]{0,128}):([^\s/?#@"'<>]{1,256})@(?=[A-Za-z0-9[._-])/y;
const URL_PLACEHOLDER_PASSWORDS = new Set(['password', 'pass', 'passwd', 'pwd', 'secret', 'xxx', 'xxxx', '****']);
const isSchemeChar = (c: number): boolean => isAlnum(c) || c === 43 || c === 45 || c === 46; // + - .

export function detectUrlCredentials(text: string): Finding[] {
  const out: Finding[] = [];
  // Anchored on "://" (rare in prose) rather than on every word that could be a scheme.
  for (let sep = text.indexOf('://'); sep >= 0; sep = text.indexOf('://', sep + 3)) {
    let schemeStart = sep;
    while (schemeStart > 0 && sep - schemeStart < 32 && isSchemeChar(text.charCodeAt(schemeStart - 1))) schemeStart--;
    const schemeLength = sep - schemeStart;
    if (schemeLength < 2 || schemeLength > 31 || (schemeStart > 0 && isSchemeChar(text.charCodeAt(schemeStart - 1)))) continue;
    const first = text.charCodeAt(schemeStart);
    if (!((first >= 65 && first <= 90) || (first >= 97 && first <= 122))) continue;
    URL_USERINFO_RE.lastIndex = sep + 3;
    const m = URL_USERINFO_RE.exec(text);
    if (!m) continue;
    const user = m[1]!;
    const password = m[2]!;
    if (URL_PLACEHOLDER_PASSWORDS.has(password.toLowerCase()) || /^(?:\$|\{|%|<|\*+$)/.test(password)) continue;
    const start = sep + 3;
    out.push(f('url_credentials', start, start + user.length + 1 + password.length));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Personal data: email and phone
// ---------------------------------------------------------------------------------------------

const EMAIL_DOMAIN_RE = /(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-]|\.[A-Za-z0-9])/y;
/** Local-part characters: A-Z a-z 0-9 . _ % + - */
const isLocalChar = (c: number): boolean => isAlnum(c) || c === 46 || c === 95 || c === 37 || c === 43 || c === 45;

/** Role and system mailboxes (press@, info@, …) are not personal data. */
const ROLE_MAILBOXES = new Set(
  (
    'press media info support contact hello hi noreply no-reply donotreply do-not-reply pr news newsroom sales help ' +
    'team admin webmaster careers jobs marketing investors ir privacy legal abuse postmaster security billing office ' +
    'enquiries inquiries communications comms'
  ).split(' '),
);

export function detectEmails(text: string): Finding[] {
  const out: Finding[] = [];
  // Anchored on '@' rather than on every word that could start a local part.
  for (let at = text.indexOf('@'); at >= 0; at = text.indexOf('@', at + 1)) {
    let start = at;
    while (start > 0 && at - start < 65 && isLocalChar(text.charCodeAt(start - 1))) start--;
    const localLength = at - start;
    if (localLength < 1 || localLength > 64) continue;
    // Preceded by '/' it is the user of a URL (https://user@host), not an address.
    if (start > 0 && (isLocalChar(text.charCodeAt(start - 1)) || text.charCodeAt(start - 1) === 47)) continue;
    EMAIL_DOMAIN_RE.lastIndex = at + 1;
    const domain = EMAIL_DOMAIN_RE.exec(text);
    if (!domain) continue;
    if (ROLE_MAILBOXES.has(text.slice(start, at).toLowerCase())) continue;
    out.push(f('email', start, at + 1 + domain[0].length));
  }
  return out;
}

/** US formats: (555) 123-4567, 555-123-4567, 555.123.4567, optionally with a leading 1 or +1. */
const US_PHONE_RE =
  /(?<![\w.\-+/#$€£%])(?:(?:\+?1[ .-]?)?\(\d{3}\)[ ]?\d{3}[ .-]\d{4}|(?:1[.-])?\d{3}([.-])\d{3}\1\d{4})(?!\w|[.\-/:]\d)/g;
const NUMBER_CONTEXT_RE =
  /\b(?:order|invoice|inv|ref|reference|tracking|sku|serial|part|ticket|case|po|account|acct|id|isbn|version|ver|build|v)\s{0,2}(?:no\.?|number|num|#)?\s{0,2}[:#]?\s{0,2}$/i;

function numberContextBefore(text: string, start: number): boolean {
  const before = text.slice(Math.max(0, start - 24), start);
  return /#\s?$/.test(before) || NUMBER_CONTEXT_RE.test(before);
}

/** "+CC…" or the "00CC…" international call prefix, not inside a word or a longer number. */
const INTL_PHONE_START_RE = /(?<![\w+])\+(?=\d)|(?<![\w+.,:/-])00(?=[1-9])/g;
/** A national number, trunk prefix 0 first: "020 7946 0958", "(02) 9374 4000", "03-1234-5678". */
const NATIONAL_PHONE_START_RE = /(?<![\w+.,:/-])\(?0(?=\d)/g;
/**
 * A word that says the next number is a telephone number, with at most a few linking words
 * between ("Call her on", "Tel.:", "mobile number is"). National numbers, and compact "00CC…"
 * runs that could be zero-padded ids, are only considered after one.
 */
const PHONE_WORD_BEFORE_RE =
  /\b(?:t[eé]l|t[eé]l[eé]phone|telephone|telefon|phone|ph|mobile|mob|mobil|handy|cell|cellphone|call|ring|dial|fax|whatsapp|signal|sms|text|landline|switchboard|hotline|line|reach)\.?(?:\s{0,3}(?:number|no\.?|nr\.?|is|on|at|via|me|him|her|them|us|:|-|–|=|#)){0,4}\s{0,3}$/i;
/**
 * Numbering plans tried, in order, for a national number after a phone word. Only plans whose
 * national numbers start with the trunk prefix 0 (or, for Italy, a leading 0 that is part of the
 * number); a number is flagged when it is valid in one of them.
 */
const NATIONAL_PLANS: readonly CountryCode[] = ['GB', 'DE', 'FR', 'NL', 'BE', 'AT', 'CH', 'IE', 'IT', 'AU', 'NZ', 'JP', 'IN'];
/**
 * Validations (one numbering-plan check each, tens of microseconds) allowed per text. Past it,
 * phone-shaped candidates are redacted without validation: a text stuffed with thousands of them
 * stays within the latency budget, and padding cannot sneak a real number through.
 */
const MAX_PHONE_VALIDATIONS = 100;

interface PhoneScan {
  /** Ends (exclusive) after each digit group, once at least `minDigits` digits were seen. */
  ends: number[];
  /** The digits up to each of those ends. */
  digits: string[];
}

/** Scans digit groups separated by one of " .-" or parentheses, at most 15 digits in all. */
function scanPhoneDigits(text: string, from: number, minDigits: number): PhoneScan {
  const scan: PhoneScan = { ends: [], digits: [] };
  let i = from;
  let digits = '';
  let sepRun = 0;
  let openParen = false;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (isDigit(c)) {
      let j = i;
      while (j < text.length && isDigit(text.charCodeAt(j))) j++;
      if (digits.length + (j - i) > 15) break;
      digits += text.slice(i, j);
      i = j;
      sepRun = 0;
      const next = text.charCodeAt(i);
      if (digits.length >= minDigits && !openParen && !(i < text.length && (isWordChar(next) || next === 37 /* % */))) {
        scan.ends.push(i);
        scan.digits.push(digits);
      }
      continue;
    }
    if (c === 40 /* ( */) {
      if (openParen) break;
      openParen = true;
    } else if (c === 41 /* ) */) {
      if (!openParen) break;
      openParen = false;
    } else if (c === 32 || c === 46 || c === 45) {
      // space, dot, dash
      sepRun++;
      if (sepRun > 1 && !(text.charCodeAt(i - 1) === 41 || text.charCodeAt(i + 1) === 40)) break;
    } else {
      break;
    }
    if (sepRun > 2) break;
    i++;
  }
  return scan;
}

/** Dotted runs such as "+10.0.19045.1234" read as versions, not numbers. */
const VERSION_LIKE_RE = /\.\d{5,}|\d{5,}\./;

const CALLING_CODES = new Set(Object.keys(phoneMetadata.country_calling_codes));

/** Whether "+…" starts with an assigned country calling code (1 to 3 digits, a prefix code). */
function hasCallingCode(number: string): boolean {
  for (let length = 1; length <= 3; length++) if (CALLING_CODES.has(number.slice(1, 1 + length))) return true;
  return false;
}

function phoneWordBefore(text: string, start: number): boolean {
  return PHONE_WORD_BEFORE_RE.test(text.slice(Math.max(0, start - 48), start));
}

class PhoneValidator {
  private remaining = MAX_PHONE_VALIDATIONS;
  private readonly cache = new Map<string, boolean>();

  /** Whether any budget is left; once spent, callers flag candidates unvalidated. */
  get exhausted(): boolean {
    return this.remaining <= 0;
  }

  valid(number: string, plan?: CountryCode): boolean {
    // An unassigned calling code is answered here: the library spends longest on those.
    if (!plan && !hasCallingCode(number)) return false;
    const key = plan ? `${plan}:${number}` : number;
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    this.remaining--;
    // The whole candidate is the number (extract: false): cheaper, and nothing around it counts.
    const valid = parsePhoneNumber(number, { defaultCountry: plan, extract: false })?.isValid() === true;
    this.cache.set(key, valid);
    return valid;
  }
}

/**
 * Phone numbers of every numbering plan: "+CC …" and "00CC …" are validated against the plan of
 * their country calling code (libphonenumber-js, full metadata); national numbers starting with a
 * trunk 0 only after a phone word, validated against NATIONAL_PLANS; US formats by pattern.
 */
export function detectPhones(text: string): Finding[] {
  const out: Finding[] = [];
  const validator = new PhoneValidator();
  for (const m of text.matchAll(INTL_PHONE_START_RE)) {
    const prefixLength = m[0].length;
    const scan = scanPhoneDigits(text, m.index + prefixLength, 7);
    if (scan.ends.length === 0) continue;
    const longest = text.slice(m.index, scan.ends[scan.ends.length - 1]);
    if (VERSION_LIKE_RE.test(longest) || numberContextBefore(text, m.index)) continue;
    if (prefixLength === 2 && /^\d+$/.test(longest) && !phoneWordBefore(text, m.index)) continue;
    const end = findValidEnd(text, scan, validator, (digits) => '+' + digits);
    if (end >= 0) out.push(f('phone', m.index, end));
  }
  for (const m of text.matchAll(NATIONAL_PHONE_START_RE)) {
    if (!phoneWordBefore(text, m.index)) continue;
    const scan = scanPhoneDigits(text, m.index, 9);
    if (scan.ends.length === 0) continue;
    const longest = text.slice(m.index, scan.ends[scan.ends.length - 1]);
    if (VERSION_LIKE_RE.test(longest) || numberContextBefore(text, m.index)) continue;
    let end = -1;
    for (const plan of NATIONAL_PLANS) {
      end = findValidEnd(text, scan, validator, (digits) => digits, plan);
      if (end >= 0) break;
    }
    if (end >= 0) out.push(f('phone', m.index, end));
  }
  for (const m of text.matchAll(US_PHONE_RE)) {
    if (numberContextBefore(text, m.index)) continue;
    out.push(f('phone', m.index, m.index + m[0].length));
  }
  return out;
}

/**
 * The longest group-aligned end whose digits are a valid number; the longest end unvalidated once
 * the budget is spent. A prefix of a longer dotted run ("010.020.030" of an address
 * "010.020.030.040") is not a number.
 */
function findValidEnd(
  text: string,
  scan: PhoneScan,
  validator: PhoneValidator,
  toNumber: (digits: string) => string,
  plan?: CountryCode,
): number {
  for (let k = scan.ends.length - 1; k >= 0; k--) {
    const end = scan.ends[k]!;
    if (text.charCodeAt(end) === 46 /* . */ && isDigit(text.charCodeAt(end + 1))) continue;
    if (validator.exhausted) return end;
    if (validator.valid(toNumber(scan.digits[k]!), plan)) return end;
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Classification markers
// ---------------------------------------------------------------------------------------------

const CONFIDENTIAL_MARKER_RE =
  /\b(?:(?:strictly |highly |company |privileged (?:and|&) )?confidential|under (?:an? |the )?(?:NDA|non-disclosure agreement)|embargoed|under (?:an? |the )?(?:press |news )?embargo|(?:do not|don't|please do not) (?:distribute|forward|share externally|share outside)|not for (?:external )?(?:distribution|publication))\b/gi;
const INTERNAL_MARKER_RE =
  /\b(?:draft\s{0,3}[—–-]{1,3}\s{0,3}not for (?:public )?release|(?:for )?internal(?: use)?(?: only)?|not for (?:public )?release|not yet (?:been )?(?:announced|public|released)|unannounced|pre-?announcement|need[- ]to[- ]know(?: basis)?|proprietary)\b/gi;
const DRAFT_MARKER_RE = /\bDRAFT\b/g;

export function detectMarkers(text: string): Finding[] {
  const out: Finding[] = [];
  for (const m of text.matchAll(CONFIDENTIAL_MARKER_RE)) {
    const before = text.slice(Math.max(0, m.index - 5), m.index).toLowerCase();
    if (/(?:non-?|not )$/.test(before)) continue; // "non-confidential", "not confidential"
    out.push(f('confidential_marker', m.index, m.index + m[0].length));
  }
  for (const m of text.matchAll(INTERNAL_MARKER_RE)) out.push(f('internal_marker', m.index, m.index + m[0].length));
  for (const m of text.matchAll(DRAFT_MARKER_RE)) out.push(f('internal_marker', m.index, m.index + m[0].length));
  return out;
}

/** All data and marker detectors (prompt injection lives in injection.ts). */
export const DETECTORS: ReadonlyArray<(text: string) => Finding[]> = [
  detectPrivateKeys,
  detectCreditCards,
  detectIbans,
  detectSsns,
  detectOpenAiKeys,
  detectAwsKeys,
  detectGithubTokens,
  detectSlackTokens,
  detectJwts,
  detectPasswords,
  detectGenericSecrets,
  detectVendorKeys,
  detectUrlCredentials,
  detectEmails,
  detectPhones,
  detectMarkers,
];
