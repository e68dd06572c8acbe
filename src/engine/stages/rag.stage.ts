import type { RagResult } from '../../domain/stages/types.js';
import { defineStage } from '../stage.js';

export const rag = defineStage<'rag', RagResult>({
  name: 'rag',
  queue: 'rag-processing',
  dependsOn: [],
  attempts: 3,
  backoff: { baseDelayMs: 500 },
  concurrency: { default: 8, max: 500 },
  optional: true,
  callsOut: false,
  includedWhen: (options) => options.includeRAG !== false,
  handle: (input, { services }) => services.rag.retrieve(input.run.orgId, input.content),
});
