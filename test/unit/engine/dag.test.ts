import { describe, expect, it } from 'vitest';
import { CATALOG, type Catalog } from '../../../src/engine/catalog.js';
import { readyDependents, readyStages, stageOrder } from '../../../src/engine/dag.js';
import { defineStage, type AnyCatalog } from '../../../src/engine/stage.js';
import { stagesFor } from '../../../src/domain/chat/chat.service.js';

const stage = (name: string, dependsOn: string[]) =>
  defineStage({ name, queue: name, dependsOn, attempts: 1, backoff: { baseDelayMs: 1 }, concurrency: { default: 1, max: 1 }, optional: true, callsOut: false, handle: async () => null });

describe('stage order, derived from the dependencies', () => {
  it('puts each stage after what it depends on, keeping the catalog order among free stages', () => {
    expect(stageOrder(CATALOG)).toEqual(['intent', 'security', 'rag', 'rocketreach', 'openai']);
    const reordered: AnyCatalog = { openai: CATALOG.openai, rocketreach: CATALOG.rocketreach, rag: CATALOG.rag, security: CATALOG.security, intent: CATALOG.intent };
    expect(stageOrder(reordered)).toEqual(['rag', 'security', 'intent', 'rocketreach', 'openai']);
  });

  it('places a sixth stage before the stage that depends on it, wherever it is listed', () => {
    const catalog: AnyCatalog = { echo: stage('echo', ['security']), ...CATALOG, openai: { ...CATALOG.openai, dependsOn: [...CATALOG.openai.dependsOn, 'echo'] } };
    const order = stageOrder(catalog);
    expect(order.indexOf('echo')).toBeGreaterThan(order.indexOf('security'));
    expect(order.indexOf('echo')).toBeLessThan(order.indexOf('openai'));
  });

  it('refuses a cycle, an unknown dependency and a name that differs from its key', () => {
    expect(() => stageOrder({ a: stage('a', ['b']), b: stage('b', ['a']) })).toThrow(/cycle/);
    expect(() => stageOrder({ a: stage('a', ['nope']) })).toThrow(/unknown stage nope/);
    expect(() => stageOrder({ a: stage('b', []) })).toThrow(/defined as b/);
  });

  it('lets a step go once every dependency the run includes has finished, one way or the other', () => {
    expect(readyStages(CATALOG, { intent: 'pending', security: 'pending', rag: 'pending', rocketreach: 'pending', openai: 'pending' })).toEqual(['intent', 'security', 'rag']);
    expect(readyStages(CATALOG, { intent: 'failed', security: 'completed', rocketreach: 'pending', openai: 'pending' })).toEqual(['rocketreach']);
    // rag not included: the LLM does not wait for it.
    expect(readyStages(CATALOG, { intent: 'completed', security: 'completed', rocketreach: 'cancelled', openai: 'pending' })).toEqual(['openai']);
    // The contact lookup waits for the security verdict as well as for the intent.
    expect(readyDependents(CATALOG, { intent: 'completed', security: 'active', rag: 'pending', rocketreach: 'pending', openai: 'pending' }, ['intent'])).toEqual([]);
    expect(readyDependents(CATALOG, { intent: 'completed', security: 'completed', rag: 'active', rocketreach: 'pending', openai: 'pending' }, ['security'])).toEqual(['rocketreach']);
  });

  it('includes a stage by its own rule (includedWhen), not by its name', () => {
    expect(stagesFor(CATALOG, {})).toEqual(['intent', 'security', 'rag', 'rocketreach', 'openai']);
    expect(stagesFor(CATALOG, { includeRAG: false })).toEqual(['intent', 'security', 'rocketreach', 'openai']);
  });

  it('does not compile a catalog with a stage missing, or a stage without a handler', () => {
    const { rag: _rag, ...withoutRag } = CATALOG;
    // @ts-expect-error rag is in StageResults, so the catalog must have it
    const missing: Catalog = withoutRag;
    const { handle: _handle, ...noHandler } = CATALOG.rag;
    // @ts-expect-error a stage definition without its handler is not a stage
    const unhandled: Catalog = { ...CATALOG, rag: noHandler };
    expect(Object.keys(missing)).not.toContain('rag');
    expect(unhandled.rag).not.toHaveProperty('handle');
  });
});
