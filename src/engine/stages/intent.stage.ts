import type { IntentResult } from '../../domain/stages/types.js';
import { defineStage } from '../stage.js';

export const intent = defineStage<'intent', IntentResult>({
  name: 'intent',
  queue: 'intent-classification',
  dependsOn: [],
  attempts: 3,
  backoff: { baseDelayMs: 500 },
  concurrency: { default: 10, max: 500 },
  optional: true,
  callsOut: false,
  handle: (input, { services, signal }) => services.intent.classify(input.content, signal),
});
