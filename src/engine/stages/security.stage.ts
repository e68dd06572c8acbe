import type { SecurityResult } from '../../domain/stages/types.js';
import { defineStage } from '../stage.js';

/** Every run includes it: the LLM stage never sends unchecked text out. */
export const security = defineStage<'security', SecurityResult>({
  name: 'security',
  queue: 'security-classification',
  dependsOn: [],
  attempts: 3,
  backoff: { baseDelayMs: 500 },
  concurrency: { default: 10, max: 500 },
  optional: true,
  callsOut: false,
  handle: async (input, { services }) => services.classifySecurity(input.content),
});
