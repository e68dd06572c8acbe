/**
 * The results each of the five stages produces. These shapes are stored as run-step results in
 * PostgreSQL and returned by the batch results endpoint, so change them with care.
 */

export const INTENT_CATEGORIES = [
  'greeting',
  'question',
  'analysis',
  'content_creation',
  'contact_lookup',
  'document_search',
  'other',
] as const;
export type IntentCategory = (typeof INTENT_CATEGORIES)[number];

export interface IntentEntities {
  person?: string;
  employer?: string;
  title?: string;
}

export interface IntentResult {
  category: IntentCategory;
  confidence: number;
  entities?: IntentEntities;
  /** Which classifier produced the result: the local model or an LLM. */
  classifier: 'local' | 'llm';
}

export const SECURITY_LEVELS = ['public', 'internal', 'confidential', 'restricted'] as const;
export type SecurityLevel = (typeof SECURITY_LEVELS)[number];

export interface SecurityFinding {
  /** e.g. credit_card, iban, ssn, openai_key, aws_access_key, github_token, slack_token, jwt,
   *  private_key, password, url_credentials, email, phone, confidential_marker, prompt_injection */
  type: string;
  start: number;
  end: number;
}

export interface SecurityResult {
  level: SecurityLevel;
  safe: boolean;
  findings: SecurityFinding[];
  /** The text with every secret or personal datum replaced by a typed placeholder such as [CREDIT_CARD]. */
  redactedContent: string;
  promptInjection: boolean;
}

export interface RagDocument {
  id: string;
  title: string;
  snippet: string;
  score: number;
}

/** A retrieved passage kept out of the prompt, named by its document; its text is never repeated. */
export interface RagDroppedPassage {
  documentId: string;
  title: string;
  reason: 'prompt_injection';
}

export interface RagResult {
  /** Passages for the prompt, with secrets and personal data already redacted. */
  documents: RagDocument[];
  /** Present when a retrieved passage was withheld from the prompt. */
  dropped?: RagDroppedPassage[];
}

export interface Contact {
  name: string;
  title?: string;
  employer?: string;
  emails: string[];
  phones: string[];
  linkedinUrl?: string;
}

export type RocketReachStatus = 'skipped' | 'not_configured' | 'completed' | 'not_found' | 'failed';

export interface RocketReachResult {
  status: RocketReachStatus;
  contacts: Contact[];
  /** Present when served from the per-organization cache. */
  cached?: boolean;
  error?: string;
  /** Why nothing was looked up (`skipped`): the message or a requested contact is kept from external services. */
  reason?: 'message_blocked' | 'security_unavailable' | 'contact_blocked';
  /** Contacts withheld because a field carried instructions aimed at the assistant; their text is never repeated. */
  dropped?: number;
}

export interface ChatTurn {
  role: 'user' | 'assistant';
  content: string;
}

export interface LlmResult {
  choices: Array<{ index: number; message: { role: 'assistant'; content: string }; finish_reason: string }>;
  model: string;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  /** offline, openai, or local-guard when the content was kept from an external provider. */
  provider: string;
  /** Set once the reply is stored as an assistant message. */
  assistantMessageId?: string;
}
