import type { ChatTurn, Contact, IntentResult, LlmResult, RagDocument, RocketReachStatus } from '../types.js';

/** What the openai stage hands to a language-model provider. `userContent` is already redacted for external providers. */
export interface LlmRequest {
  userContent: string;
  history: ChatTurn[];
  documents: RagDocument[];
  contacts: Contact[];
  intent?: IntentResult;
  /** How the contact lookup went, so a reply can tell "none found" from "lookup not configured". */
  contactLookupStatus?: RocketReachStatus;
}

export interface LlmProvider {
  /** `offline` for the in-process provider; anything else is treated as an external service. */
  readonly name: string;
  /**
   * Produces the assistant reply. Rejects with a StageError (see `permanent` / `retryAfterMs`) on
   * provider failures, and with the abort error unchanged when `signal` fires. With `onDelta`,
   * the reply is streamed: each piece of text is given as it arrives, and the pieces add up to
   * the reply's content.
   */
  complete(request: LlmRequest, signal?: AbortSignal, onDelta?: (text: string) => void): Promise<LlmResult>;
}
