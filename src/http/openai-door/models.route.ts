import type { App } from '../types.js';
import { actorOf } from '../plugins/auth.js';
import { MODEL_ID, ModelList, openAiErrorResponses } from './schemas.js';

/** When the model list says the model was made: fixed, so that the answer never changes. */
const CREATED = 1_764_547_200;

/** GET /v1/models: the one model, the pipeline, so that a chat front end can offer it. */
export function registerListModels(app: App): void {
  app.get(
    '/models',
    {
      schema: {
        tags: ['openai'],
        summary: 'The models this OpenAI-compatible endpoint offers: one, the honeyjar pipeline',
        response: { 200: ModelList, ...openAiErrorResponses },
      },
    },
    async (request) => {
      actorOf(request);
      return { object: 'list' as const, data: [{ id: MODEL_ID, object: 'model' as const, created: CREATED, owned_by: 'honeyjar' }] };
    },
  );
}
