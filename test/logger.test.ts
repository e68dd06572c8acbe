import { Writable } from 'node:stream';
import { DrizzleQueryError } from 'drizzle-orm/errors';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createLogger, safeErrorMessage, serializeError, serializeRequest } from '../src/logger.js';

const CARD = '4111 1111 1111 1111';
const KEY = 'sk-proj-Zx8Qm2Lr7Tn4Vb6Hc1Jd9Kf3Gs5Pw0Ay';
const MARKER = 'zebra-quartz-marker';

/** A pg error as node-postgres builds it from the server's ErrorResponse (fields as PostgreSQL 15 sends them). */
function pgError(message: string, fields: Partial<pg.DatabaseError>): pg.DatabaseError {
  const error = new pg.DatabaseError(message, message.length, 'error');
  Object.assign(error, { severity: 'ERROR', ...fields });
  return error;
}

function captureLogger(): { logger: ReturnType<typeof createLogger>; lines: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  return { logger: createLogger('trace', stream), lines: () => chunks.join('') };
}

describe('the error serializer', () => {
  it('keeps a Drizzle failure by type, statement and cause, without its params', () => {
    const cause = pgError(`invalid input syntax for type uuid: "${MARKER}"`, { code: '22P02', where: `unnamed portal parameter $1 = '${MARKER}'`, routine: 'string_to_uuid' });
    const error = new DrizzleQueryError('insert into "threads" ("org_id", "title") values ($1, $2)', [MARKER, `${CARD} ${KEY}`], cause);
    const out = serializeError(error);
    expect(out.type).toBe('DrizzleQueryError');
    expect(out.message).toBe('Failed query: insert into "threads" ("org_id", "title") values ($1, $2)');
    expect(out.cause).toMatchObject({ type: 'DatabaseError', code: '22P02', routine: 'string_to_uuid', message: 'invalid input syntax for type uuid: "…"' });
    expect(out.stack).toMatch(/^DrizzleQueryError: Failed query: insert into "threads"[^\n]*\n\s+at /);
    const text = JSON.stringify(out);
    for (const secret of [MARKER, CARD, KEY, 'params']) expect(text).not.toContain(secret);
  });

  it('drops what pg errors carry about the row and the parameters: detail, where, hint, internal query', () => {
    const error = pgError('new row for relation "messages" violates check constraint "no_secrets"', {
      code: '23514',
      detail: `Failing row contains (1, ${MARKER}, ${CARD}).`,
      where: `unnamed portal parameter $9 = '${KEY}'`,
      hint: MARKER,
      internalQuery: `select '${MARKER}'`,
      schema: 'public',
      table: 'messages',
      constraint: 'no_secrets',
    });
    const out = serializeError(error);
    expect(out).toMatchObject({ code: '23514', table: 'messages', constraint: 'no_secrets', schema: 'public', severity: 'ERROR' });
    expect(out).not.toHaveProperty('detail');
    expect(out).not.toHaveProperty('where');
    const text = JSON.stringify(out);
    for (const secret of [MARKER, CARD, KEY]) expect(text).not.toContain(secret);
  });

  it('keeps the quoted names of errors that quote no values', () => {
    expect(safeErrorMessage(pgError('relation "document_chunks" does not exist', { code: '42P01' }))).toBe('relation "document_chunks" does not exist');
    expect(safeErrorMessage(pgError('date/time field value out of range: "+294277-01-01"', { code: '22008' }))).toBe('date/time field value out of range: "…"');
  });

  it('redacts secrets in any other message and keeps connection details', () => {
    expect(safeErrorMessage(new Error(`provider said: bad input ${CARD} ${KEY}`))).not.toMatch(/4111|sk-proj/);
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED', errno: -111, syscall: 'connect', address: '127.0.0.1', port: 5432 });
    expect(serializeError(refused)).toMatchObject({ message: 'connect ECONNREFUSED 127.0.0.1:5432', code: 'ECONNREFUSED', syscall: 'connect', port: 5432 });
    // Whatever else an error holds (an HTTP client's response body, headers) is not copied.
    const http = Object.assign(new Error('400 bad request'), { status: 400, error: { message: MARKER }, headers: { authorization: KEY } });
    expect(JSON.stringify(serializeError(http))).not.toMatch(new RegExp(`${MARKER}|${KEY}`));
    expect(serializeError(http).status).toBe(400);
  });

  it('serializes plain objects and non-errors passed as err', () => {
    expect(serializeError({ message: `oops ${CARD}` }).message).not.toContain(CARD);
    expect(serializeError(`thrown string ${KEY}`).message).not.toContain(KEY);
    expect(serializeError(undefined)).toEqual({ type: 'undefined', message: 'undefined' });
  });
});

describe('a logger from createLogger', () => {
  it('applies the serializer to err fields, errors logged alone and messages taken from the error', () => {
    const { logger, lines } = captureLogger();
    const error = new DrizzleQueryError('select 1', [MARKER], pgError(`bad "${MARKER}"`, { code: '22P02' }));
    logger.error({ err: error }, 'request failed');
    logger.error(error);
    logger.warn({ err: error }, error.message);
    logger.info({ reason: { content: MARKER, token: KEY, title: CARD } }, 'nested fields by name');
    const out = lines();
    expect(out.split('\n').filter(Boolean)).toHaveLength(4);
    for (const secret of [MARKER, CARD, KEY]) expect(out).not.toContain(secret);
    expect(out).toContain('"msg":"Failed query: select 1"');
  });

  it('logs requests by method and route, never the query string, headers or what a path carries', () => {
    const threadId = crypto.randomUUID();
    expect(serializeRequest({ method: 'GET', url: `/api/v1/chat/threads/${threadId}?cursor=${MARKER}`, ip: '127.0.0.1', routeOptions: { url: '/api/v1/chat/threads/:threadId' } })).toEqual({
      method: 'GET',
      url: '/api/v1/chat/threads/:threadId',
      remoteAddress: '127.0.0.1',
    });
    // No route matched: only plain words survive.
    expect(serializeRequest({ method: 'GET', url: `/api/v1/nowhere/${KEY}/${CARD.replace(/ /g, '')}/${crypto.randomUUID()}/Secret?q=${MARKER}`, ip: '127.0.0.1' })).toEqual({
      method: 'GET',
      url: '/api/v1/nowhere/:param/:param/:param/:param',
      remoteAddress: '127.0.0.1',
    });
  });
});
