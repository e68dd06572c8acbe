/**
 * Checksums and plausibility checks for candidates found by the security detectors. Pure, no I/O,
 * and never logs: the inputs are secrets.
 */

/** Luhn (mod 10) check over a string of ASCII digits. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

interface CardRange {
  /** Inclusive prefix range, compared on the first `low.length` digits. */
  low: string;
  high: string;
  lengths: readonly number[];
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);

const CARD_RANGES: readonly CardRange[] = [
  { low: '4', high: '4', lengths: [13, 16, 19] }, // Visa
  { low: '51', high: '55', lengths: [16] }, // Mastercard
  { low: '2221', high: '2720', lengths: [16] }, // Mastercard 2-series
  { low: '34', high: '34', lengths: [15] }, // Amex
  { low: '37', high: '37', lengths: [15] },
  { low: '300', high: '305', lengths: range(14, 19) }, // Diners Club
  { low: '36', high: '36', lengths: range(14, 19) },
  { low: '38', high: '39', lengths: range(14, 19) },
  { low: '6011', high: '6011', lengths: range(16, 19) }, // Discover
  { low: '644', high: '649', lengths: range(16, 19) },
  { low: '65', high: '65', lengths: range(16, 19) },
  { low: '3528', high: '3589', lengths: range(16, 19) }, // JCB
  { low: '62', high: '62', lengths: range(16, 19) }, // UnionPay
  { low: '5018', high: '5018', lengths: range(13, 19) }, // Maestro
  { low: '5020', high: '5020', lengths: range(13, 19) },
  { low: '5038', high: '5038', lengths: range(13, 19) },
  { low: '5893', high: '5893', lengths: range(13, 19) },
  { low: '6304', high: '6304', lengths: range(13, 19) },
  { low: '6759', high: '6759', lengths: range(13, 19) },
  { low: '6761', high: '6763', lengths: range(13, 19) },
];

/** Whether the issuer prefix (IIN) and length are those of a known card scheme. */
export function cardIinPlausible(digits: string): boolean {
  for (const r of CARD_RANGES) {
    const prefix = digits.slice(0, r.low.length);
    if (prefix.length === r.low.length && prefix >= r.low && prefix <= r.high && r.lengths.includes(digits.length)) {
      return true;
    }
  }
  return false;
}

/** IBAN total lengths (country code and check digits included) by country. */
export const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BR: 29, CH: 21, CR: 22,
  CY: 28, CZ: 24, DE: 22, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FO: 18, FR: 27, GB: 22,
  GE: 22, GI: 23, GL: 18, GR: 27, GT: 28, HR: 21, HU: 28, IE: 22, IL: 23, IS: 26, IT: 27, JO: 30,
  KW: 30, KZ: 20, LB: 28, LI: 21, LT: 20, LU: 20, LV: 21, MC: 27, MD: 24, ME: 22, MK: 19, MR: 27,
  MT: 31, MU: 30, NL: 18, NO: 15, PK: 24, PL: 28, PS: 29, PT: 25, QA: 29, RO: 24, RS: 22, SA: 24,
  SE: 24, SI: 19, SK: 24, SM: 27, TN: 24, TR: 26, UA: 29, VG: 24, XK: 20,
};

/** ISO 13616 mod-97 check over a compact, upper-case IBAN. */
export function ibanValid(compact: string): boolean {
  const expected = IBAN_LENGTHS[compact.slice(0, 2)];
  if (expected === undefined || compact.length !== expected) return false;
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]+$/.test(compact)) return false;
  const rearranged = compact.slice(4) + compact.slice(0, 4);
  let rem = 0;
  for (let i = 0; i < rearranged.length; i++) {
    const c = rearranged.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      rem = (rem * 10 + (c - 48)) % 97;
    } else {
      // A=10 … Z=35: two digits.
      rem = (rem * 100 + (c - 55)) % 97;
    }
  }
  return rem === 1;
}

/** US SSN structure: area not 000, 666 or 900–999; group not 00; serial not 0000. */
export function ssnValid(area: string, group: string, serial: string): boolean {
  if (area === '000' || area === '666' || area.charAt(0) === '9') return false;
  if (group === '00') return false;
  if (serial === '0000') return false;
  return true;
}

/** Decodes a base64url segment and parses it as a JSON object, or returns undefined. */
export function decodeBase64UrlJson(segment: string): Record<string, unknown> | undefined {
  if (segment.length === 0 || segment.length > 4096) return undefined;
  try {
    const json = Buffer.from(segment, 'base64url').toString('utf8');
    const parsed: unknown = JSON.parse(json);
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
      return parsed as Record<string, unknown>;
    }
  } catch {
    // Not JSON: not a JWT header.
  }
  return undefined;
}
