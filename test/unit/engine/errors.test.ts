import { describe, expect, it } from 'vitest';
import { StageError } from '../../../src/domain/errors.js';
import { describeError } from '../../../src/engine/errors.js';

describe('describeError', () => {
  it('scrubs a stage error message, which may quote what a provider answered', () => {
    const error = new StageError('upstream_error', 'RocketReach answered 500: employer=sk-proj-AbCdEf1234567890GhIjKlMnOpQrStUvWx card 4111 1111 1111 1111');
    const described = describeError(error);
    expect(described.code).toBe('upstream_error');
    expect(described.message).toContain('RocketReach answered 500');
    expect(described.message).not.toContain('4111');
    expect(described.message).not.toContain('sk-proj-AbCdEf');
  });
});
