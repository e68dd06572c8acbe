import type { LlmResult } from '../stages/types.js';
import type { BatchDocument } from './batch-view.js';
import type { Actor, Idempotency } from './chat.service.js';
import { HybridChatService, titleFrom, type HybridChatServiceDeps } from './hybrid-chat.service.js';
import type { WaitSlot } from './run-waits.js';

/** The run source (and Idempotency-Key namespace) of the OpenAI-compatible endpoint. */
export const CONVERSATION_SOURCE = 'chat-completions';

/** A turn a client sent as the conversation so far. */
export interface SentTurn {
  role: 'user' | 'assistant';
  content: string;
}

/** Where threads started from a sent conversation are kept (src/adapters/postgres/repositories/conversations.repository.ts). */
export interface ConversationStore {
  /** The thread and its earlier turns; turns alternate, starting with a question. */
  createThread(orgId: string, userId: string, title: string, turns: readonly SentTurn[]): Promise<{ id: string }>;
  /** Removes such a thread when no run was accepted in it. */
  discardThread(orgId: string, threadId: string): Promise<void>;
  /** The run's reply, and whether the local guard answered it. */
  reply(orgId: string, runId: string): Promise<{ id: string; content: string; guarded: boolean } | undefined>;
}

export interface ConversationChatServiceDeps extends HybridChatServiceDeps {
  conversations: ConversationStore;
}

/** A conversation as a client sends it: the turns so far and the new question. */
export interface Conversation {
  /** Earlier turns, oldest first; stored as a new thread's history. Ignored with `threadId`. */
  history: SentTurn[];
  message: string;
  /** A thread of the organization to continue: its own stored history is the context. */
  threadId?: string;
  idempotency?: Idempotency;
}

export interface AcceptedConversation {
  batchId: string;
  threadId: string;
  messageId: string;
  createdAt: Date;
}

export interface ConversationReply {
  content: string;
  /** Answered by the local guard: the message was kept from the external model. */
  guarded: boolean;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

/**
 * The pipeline for a client that sends the whole conversation each time (the OpenAI Chat
 * Completions protocol). Each request is one queued run, exactly like the queued endpoint's: in a
 * thread made for it, whose earlier turns are the conversation sent (gated like any thread's
 * history when the LLM stage reads them), or in an existing thread named by the client.
 */
export class ConversationChatService extends HybridChatService {
  constructor(protected override readonly deps: ConversationChatServiceDeps) {
    super(deps);
  }

  async acceptConversation(actor: Actor, input: Conversation): Promise<AcceptedConversation> {
    const how = { source: CONVERSATION_SOURCE, options: {}, ...(input.idempotency ? { idempotency: input.idempotency } : {}) };
    if (input.threadId) {
      await this.getThread(actor, input.threadId);
      return described(await this.accept(actor, input.threadId, input.message, how));
    }
    const title = titleFrom(input.history.find((turn) => turn.role === 'user')?.content ?? input.message);
    const thread = await this.deps.conversations.createThread(actor.orgId, actor.userId, title, input.history);
    try {
      const accepted = described(await this.accept(actor, thread.id, input.message, how));
      // A replayed key answers the first request's run, in the first request's thread.
      if (accepted.threadId !== thread.id) await this.deps.conversations.discardThread(actor.orgId, thread.id);
      return accepted;
    } catch (error) {
      await this.deps.conversations.discardThread(actor.orgId, thread.id).catch(() => undefined);
      throw error;
    }
  }

  /** A place among the organization's waiting requests for this long (429 `too_many_waits` beyond the cap). */
  reserveWait(actor: Actor, timeoutMs: number): WaitSlot {
    return this.deps.waits.reserve(actor.orgId, timeoutMs);
  }

  /** The stored reply of a finished batch, with the LLM's token counts; undefined when it has none. */
  async replyOf(actor: Actor, batch: BatchDocument): Promise<ConversationReply | undefined> {
    const reply = await this.deps.conversations.reply(actor.orgId, batch.batchId);
    if (!reply) return undefined;
    const llm = batch.results.openai as LlmResult | undefined;
    return {
      content: reply.content,
      guarded: reply.guarded,
      usage: llm?.usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    };
  }
}

function described(accepted: { data: { tracking: { batchId: string; threadId: string }; immediate: { messageId: string; timestamp: string } } }): AcceptedConversation {
  return {
    batchId: accepted.data.tracking.batchId,
    threadId: accepted.data.tracking.threadId,
    messageId: accepted.data.immediate.messageId,
    createdAt: new Date(accepted.data.immediate.timestamp),
  };
}
