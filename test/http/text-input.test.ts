import { describe, expect, it } from 'vitest';
import { findBadText } from '../../src/http/plugins/text-input.js';
import { afterNewestCursor, encodeCursor, InvalidCursorError } from '../../src/adapters/postgres/repositories/cursor.js';
import { threads } from '../../src/adapters/postgres/schema.js';

describe('findBadText', () => {
  it('names the first string PostgreSQL could not store, at any depth', () => {
    expect(findBadText({ a: 'ok', b: [{ c: 'x\u0000' }] })).toEqual({ path: 'b.0.c', reason: 'contains a NUL byte' });
    expect(findBadText({ title: '\ud83c' })).toEqual({ path: 'title', reason: 'contains a lone UTF-16 surrogate' });
    expect(findBadText({ title: 'end\udfff' })).toEqual({ path: 'title', reason: 'contains a lone UTF-16 surrogate' });
    expect(findBadText('\u0000')).toEqual({ path: '', reason: 'contains a NUL byte' });
    expect(findBadText({ nested: { 'k\u0000': 1 } })).toEqual({ path: 'nested', reason: 'has a key that contains a NUL byte' });
  });

  it('passes ordinary text, astral characters and non-strings', () => {
    expect(findBadText({ a: 'héllo 🎉 𝔘', b: 1, c: null, d: true, e: ['x', { f: '\u0001 control' }] })).toBeUndefined();
    expect(findBadText(undefined)).toBeUndefined();
  });
});

describe('newest-first cursors', () => {
  const valid = { t: '2026-03-01T10:00:00.123Z', id: '5f0c2a4e-1d7a-4b55-9c4e-3f1b2a9d8e7c' };

  it('accept what the server writes', () => {
    expect(afterNewestCursor(threads.createdAt, threads.id, encodeCursor(valid))).toBeDefined();
    expect(afterNewestCursor(threads.createdAt, threads.id, undefined)).toBeUndefined();
  });

  it('refuse instants PostgreSQL cannot take and ids that are not uuids', () => {
    for (const forged of [
      { ...valid, t: '+275760-09-13T00:00:00.000Z' },
      { ...valid, t: '0000-06-01T00:00:00.000Z' },
      { ...valid, t: '2026-13-01T00:00:00.000Z' },
      { ...valid, t: '2026-02-30T00:00:00.000Z' },
      { ...valid, id: 'zzz' },
      { ...valid, id: 7 },
    ]) {
      expect(() => afterNewestCursor(threads.createdAt, threads.id, encodeCursor(forged as Record<string, string>)), JSON.stringify(forged)).toThrow(InvalidCursorError);
    }
  });
});
