/**
 * Which directory keeps the embedded server's OS user out, when that user does not exist yet (a
 * root start on a machine without a `postgres` user, which initdb creates): a user made later owns
 * none of the directories and is in none of their groups, so each must be searchable by others.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { firstClosedDirectory } from '../../../src/adapters/embedded/cluster.js';

const root = mkdtempSync(join(tmpdir(), 'honeyjar-reachable-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('the first directory closed to a user not created yet', () => {
  it('is the highest directory others cannot search, and none once every one above is open', async () => {
    chmodSync(root, 0o700);
    expect(await firstClosedDirectory(join(root, 'data', 'postgres'), undefined)).toBe(root);
    chmodSync(root, 0o711);
    // Directories not made yet are made by honeyjar, open to all.
    expect(await firstClosedDirectory(join(root, 'data', 'postgres'), undefined)).toBeUndefined();
    mkdirSync(join(root, 'data'), { mode: 0o750 });
    chmodSync(join(root, 'data'), 0o750);
    expect(await firstClosedDirectory(join(root, 'data', 'postgres'), undefined)).toBe(join(root, 'data'));
    chmodSync(join(root, 'data'), 0o755);
    expect(await firstClosedDirectory(join(root, 'data'), undefined)).toBeUndefined();
  });
});
