import { and, eq, lt, or, type SQL } from 'drizzle-orm';
import type { PgColumn } from 'drizzle-orm/pg-core';

import { InvalidCursorError } from '../../../domain/errors.js';
import type { Page } from '../../../domain/page.js';

export { InvalidCursorError, type Page };

/**
 * Opaque page cursors: base64url JSON, validated on the way back in — shape and range, so that a
 * forged cursor is a 400 (invalid_cursor) and never reaches PostgreSQL as a value it refuses.
 */
export function encodeCursor(value: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

export function decodeCursor<T extends Record<string, string | number>>(
  cursor: string | undefined,
  check: (value: Record<string, unknown>) => value is T,
): T | undefined | 'invalid' {
  if (cursor === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (value && typeof value === 'object' && check(value as Record<string, unknown>)) return value as T;
  } catch {
    // fall through
  }
  return 'invalid';
}

type NewestCursor = { t: string; id: string };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// What newestFirstPage writes: toISOString() of a stored timestamp. Four-digit years only, from
// year 1: JavaScript dates reach years PostgreSQL refuses (and year 0, which it has no name for).
const ISO_INSTANT = /^(\d{4})-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const isNewestCursor = (v: Record<string, unknown>): v is NewestCursor =>
  typeof v.t === 'string' && typeof v.id === 'string' && UUID.test(v.id) && isStorableInstant(v.t);

function isStorableInstant(text: string): boolean {
  const match = ISO_INSTANT.exec(text);
  if (!match || Number(match[1]) < 1) return false;
  const at = new Date(text);
  // Rejects calendar overflow (2024-02-31) that Date would roll into March.
  return !Number.isNaN(at.getTime()) && at.toISOString() === text;
}

/**
 * Newest-first keyset paging over (created_at, id): the condition for the rows after `cursor`
 * (undefined for the first page). Fetch `limit + 1` rows ordered by both columns descending and
 * pass them to `newestFirstPage`.
 */
export function afterNewestCursor(createdAt: PgColumn, id: PgColumn, cursor: string | undefined): SQL | undefined {
  const after = decodeCursor(cursor, isNewestCursor);
  if (after === 'invalid') throw new InvalidCursorError();
  if (!after) return undefined;
  const at = new Date(after.t);
  return or(lt(createdAt, at), and(eq(createdAt, at), lt(id, after.id)));
}

export function newestFirstPage<T extends { createdAt: Date; id: string }>(rows: T[], limit: number): Page<T> {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return { items, nextCursor: rows.length > limit && last ? encodeCursor({ t: last.createdAt.toISOString(), id: last.id }) : null };
}
