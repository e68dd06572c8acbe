import type { Coordination } from '../../engine/ports/coordination.js';
import type { ConversationChatService } from '../../domain/chat/conversation.service.js';
import type { EventsService } from '../../domain/chat/events.service.js';
import { registerAuth } from '../plugins/auth.js';
import { registerRateLimit } from '../plugins/rate-limit.js';
import type { App } from '../types.js';
import { registerChatCompletions } from './chat-completions.route.js';
import { registerOpenAiErrors } from './errors.js';
import { registerListModels } from './models.route.js';

export interface OpenAiDoorDeps {
  chat: ConversationChatService;
  events: Pick<EventsService, 'followBatch'>;
  tenancy: Parameters<typeof registerAuth>[1];
  /** Where the per-organization request counter is shared (Redis or PostgreSQL). */
  coordination: Coordination;
  rateLimit: { max: number; windowMs: number; prefix: string };
  maxContentBytes: number;
  /** How long a completion waits for its batch (below the socket idle timeout). */
  waitMs: number;
}

/**
 * The OpenAI-compatible door under /v1: honeyjar tokens as the API key (the organization from
 * `x-organization-id`, or the user's only one), the per-organization rate limit shared with the
 * rest of the API (through the same shared counter), and every error in OpenAI's shape.
 */
export async function registerOpenAiDoor(app: App, deps: OpenAiDoorDeps): Promise<void> {
  await app.register(
    async (door) => {
      const scoped = door as unknown as App;
      registerOpenAiErrors(scoped);
      registerAuth(scoped, deps.tenancy, { onlyOrganizationByDefault: true });
      registerRateLimit(scoped, deps.coordination, deps.rateLimit);
      registerListModels(scoped);
      registerChatCompletions(scoped, deps.chat, { events: deps.events, maxContentBytes: deps.maxContentBytes, waitMs: deps.waitMs });
    },
    { prefix: '/v1' },
  );
}

/** The longest a completion waits: up to ten minutes, and a few seconds inside the socket's idle timeout. */
export function doorWaitMs(idleTimeoutMs: number): number {
  const cap = 600_000;
  return idleTimeoutMs > 0 ? Math.max(1_000, Math.min(cap, idleTimeoutMs - 5_000)) : cap;
}
