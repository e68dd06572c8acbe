/**
 * The classification of a PostgreSQL error as the database being unreachable lives in the domain
 * (src/domain/errors.ts) so the HTTP edge can answer 503 without reaching into this adapter.
 */
export { isDatabaseUnavailable } from '../../domain/errors.js';
