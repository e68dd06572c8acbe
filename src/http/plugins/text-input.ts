import type { FastifyInstance } from 'fastify';
import { AppError } from '../../domain/errors.js';

/**
 * PostgreSQL stores neither NUL characters (text) nor unpaired UTF-16 surrogates (jsonb), and no
 * client means to send them: every string of a request's body, query string and path parameters
 * — at any depth, keys too — is checked once here, before any route sees it, and refused with a
 * 400 naming the field.
 */
export function registerTextInputCheck(app: FastifyInstance): void {
  app.addHook('preValidation', async (request) => {
    for (const [where, value] of [['body', request.body], ['querystring', request.query], ['params', request.params]] as const) {
      const problem = findBadText(value);
      if (problem) throw new AppError('invalid_request', 400, `${where}${problem.path ? `.${problem.path}` : ''} ${problem.reason}`);
    }
  });
}

export interface BadText {
  /** Dotted path of the field, '' for the value itself. */
  path: string;
  reason: string;
}

const MAX_DEPTH = 32;

/** String.prototype.isWellFormed (Node 20; not in TypeScript's ES2023 lib): native, several times faster than a /\p{Cs}/u scan. */
const isWellFormed = (value: string): boolean => (value as string & { isWellFormed(): boolean }).isWellFormed();

/** The first string in `value` that PostgreSQL could not store, if any. */
export function findBadText(value: unknown, path = '', depth = 0): BadText | undefined {
  if (typeof value === 'string') {
    if (value.includes('\u0000')) return { path, reason: 'contains a NUL byte' };
    if (!isWellFormed(value)) return { path, reason: 'contains a lone UTF-16 surrogate' };
    return undefined;
  }
  if (typeof value !== 'object' || value === null || depth >= MAX_DEPTH) return undefined;
  const entries: Array<[string, unknown]> = Array.isArray(value) ? value.map((item, i) => [String(i), item]) : Object.entries(value);
  for (const [key, item] of entries) {
    // A bad key is not echoed back: the field named is the object holding it.
    const inKey = Array.isArray(value) ? undefined : findBadText(key, path, depth + 1);
    if (inKey) return { path, reason: `has a key that ${inKey.reason}` };
    const at = path ? `${path}.${key}` : key;
    const found = findBadText(item, at, depth + 1);
    if (found) return found;
  }
  return undefined;
}
