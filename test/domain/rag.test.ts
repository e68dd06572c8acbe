import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocumentsRepository } from '../../src/db/repositories/documents.repository.js';
import { createTenancyRepository } from '../../src/db/repositories/tenancy.repository.js';
import { chunkText } from '../../src/domain/documents/chunker.js';
import { createDocumentsService } from '../../src/domain/documents/documents.service.js';
import { createRagService } from '../../src/domain/stages/rag/rag.service.js';
import { LIBRARY, QUESTIONS } from '../fixtures/retrieval-set.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let database: TestDatabase;
let orgId: string;
let otherOrgId: string;
const idOf = new Map<string, string>();

beforeAll(async () => {
  database = await createTestDatabase();
  const tenancy = createTenancyRepository(database.db);
  orgId = (await tenancy.createOrganization('Library org')).id;
  otherOrgId = (await tenancy.createOrganization('Other org')).id;
  const documents = createDocumentsService({ documents: createDocumentsRepository(database.db, database.pool), quota: { count: 10_000, bytes: 1024 ** 3 } });
  for (const doc of LIBRARY) idOf.set(doc.key, (await documents.add(orgId, null, doc.title, doc.content)).id);
  await documents.add(otherOrgId, null, 'Secret crisis plan of another company', 'Who approves public statements during a crisis? Their CEO alone.');
});
afterAll(() => database.drop());

describe('retrieval', () => {
  it('finds the right document in the top 3 for most questions', async () => {
    const rag = createRagService({ search: createDocumentsRepository(database.db, database.pool) });
    let top1 = 0;
    let top3 = 0;
    const misses: string[] = [];
    for (const { question, expected } of QUESTIONS) {
      const { documents } = await rag.retrieve(orgId, question);
      const ids = documents.map((doc) => doc.id);
      if (ids[0] === idOf.get(expected)) top1++;
      if (ids.slice(0, 3).includes(idOf.get(expected)!)) top3++;
      else misses.push(question);
    }
    const n = QUESTIONS.length;
    console.log(`retrieval hit rate: top-1 ${(top1 / n).toFixed(2)}, top-3 ${(top3 / n).toFixed(2)} (n=${n})${misses.length ? `; misses: ${misses.join(' | ')}` : ''}`);
    expect(top3 / n).toBeGreaterThanOrEqual(0.9);
  });

  it("never returns another organization's documents", async () => {
    const rag = createRagService({ search: createDocumentsRepository(database.db, database.pool) });
    const { documents } = await rag.retrieve(orgId, 'Who approves public statements during a crisis?');
    expect(documents.length).toBeGreaterThan(0);
    expect(documents.every((doc) => [...idOf.values()].includes(doc.id))).toBe(true);
    const other = await rag.retrieve(otherOrgId, 'logo colour teal typography');
    expect(other.documents).toEqual([]);
  });

  it('answers nothing for stop words only or empty text, without error', async () => {
    const rag = createRagService({ search: createDocumentsRepository(database.db, database.pool) });
    expect((await rag.retrieve(orgId, 'the and of')).documents).toEqual([]);
    expect((await rag.retrieve(orgId, '!!! ???')).documents).toEqual([]);
  });

  it('gives snippets and scores', async () => {
    const rag = createRagService({ search: createDocumentsRepository(database.db, database.pool) });
    const [first] = (await rag.retrieve(orgId, 'net-zero emissions target')).documents;
    expect(first).toMatchObject({ title: 'Sustainability report summary 2025', score: expect.any(Number) });
    expect(first!.snippet.toLowerCase()).toContain('net-zero');
  });
});

describe('chunking', () => {
  it('keeps chunks near the target size, cut at boundaries, losing no text', () => {
    const paragraph = 'This sentence is about media relations and embargoes. '.repeat(40);
    const text = `${paragraph}\n\n${'x'.repeat(3000)}\n\nShort closing paragraph.`;
    const chunks = chunkText(text, 1200);
    expect(chunks.length).toBeGreaterThan(3);
    for (const chunk of chunks) expect(chunk.length).toBeLessThanOrEqual(1200);
    expect(chunks.join('').replace(/\s+/g, '')).toBe(text.replace(/\s+/g, ''));
    expect(chunkText('   ')).toEqual([]);
  });
});
