/**
 * The openai stage: produces the assistant reply. The security result gates what may reach an external
 * provider:
 *  - the offline provider runs in-process, so it may always answer (on the redacted text when available);
 *  - an external provider gets only `security.redactedContent`, never the raw text;
 *  - no security result (the security stage failed) → fail closed, answer locally without calling out;
 *  - restricted or unsafe content → answer locally, naming the kinds of findings, never their values.
 */
import type { ChatTurn, IntentResult, LlmResult, RagResult, RocketReachResult, SecurityFinding, SecurityResult } from '../types.js';
import type { LlmProvider, LlmRequest } from './llm.provider.js';

export interface LlmStageInput {
  rawContent: string;
  security: SecurityResult | undefined;
  intent?: IntentResult;
  rag?: RagResult;
  rocketreach?: RocketReachResult;
  /** Already redacted by the caller. */
  history: ChatTurn[];
}

export interface LlmStage {
  /** `onDelta`: the reply's text as the provider streams it (a guarded reply is not streamed). */
  run(input: LlmStageInput, signal?: AbortSignal, onDelta?: (text: string) => void): Promise<LlmResult>;
}

export const LOCAL_GUARD = 'local-guard';

/** Human descriptions of finding types; unknown types fall back to their name. */
const FINDING_LABELS: Record<string, string> = {
  credit_card: 'a payment card number',
  iban: 'a bank account number (IBAN)',
  ssn: 'a social security number',
  openai_key: 'an API key',
  api_key: 'an API key',
  aws_access_key: 'an AWS access key',
  aws_secret_key: 'an AWS secret key',
  secret: 'a secret (a token, key or credential)',
  github_token: 'a GitHub token',
  slack_token: 'a Slack token',
  jwt: 'an access token (JWT)',
  private_key: 'a private key',
  password: 'a password',
  url_credentials: 'a URL with embedded credentials',
  email: 'an email address',
  phone: 'a phone number',
  confidential_marker: 'material marked as confidential',
};

/** Personal data that is normally redacted rather than blocking; named only when nothing else was found. */
const REDACTABLE_TYPES = new Set(['email', 'phone']);

function labelFor(type: string): string {
  return FINDING_LABELS[type] ?? `something that looks like ${type.replace(/_/g, ' ')}`;
}

function joinList(items: string[]): string {
  if (items.length <= 1) return items[0] ?? '';
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1] ?? ''}`;
}

/** Distinct finding labels in order of first appearance, leaving out prompt injection. */
export function describeFindings(findings: SecurityFinding[]): string[] {
  const types = [...new Set(findings.map((f) => f.type))].filter((t) => t !== 'prompt_injection');
  const blocking = types.filter((t) => !REDACTABLE_TYPES.has(t));
  const named = blocking.length > 0 ? blocking : types;
  return [...new Set(named.map(labelFor))];
}

function guardResult(content: string): LlmResult {
  return {
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    model: LOCAL_GUARD,
    usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    provider: LOCAL_GUARD,
  };
}

export function failClosedReply(): string {
  return (
    'Your message could not be security-checked, so it was not sent to the external language model. ' +
    'Nothing was shared outside this service. Please try sending it again in a moment.'
  );
}

/** Explains why the content was kept from the external model. Never includes any part of the content. */
export function blockedReply(security: SecurityResult): string {
  const reasons: string[] = [];
  const labels = describeFindings(security.findings);
  if (labels.length > 0) reasons.push(`it contains ${joinList(labels)}`);
  const injection = security.promptInjection || security.findings.some((f) => f.type === 'prompt_injection');
  if (injection) reasons.push('it looks like an attempt to override the assistant’s instructions');
  if (reasons.length === 0) {
    reasons.push(security.level === 'restricted' ? 'it was classified as restricted' : 'the security check flagged it as unsafe');
  }
  const advice: string[] = [];
  if (labels.length > 0) {
    advice.push(`Please remove ${labels.length === 1 ? 'it' : 'them'} (or replace ${labels.length === 1 ? 'it' : 'them'} with a placeholder)`);
  }
  if (injection) advice.push(`${advice.length > 0 ? 'r' : 'Please r'}ephrase the request without instructions aimed at the assistant itself`);
  if (advice.length === 0) advice.push('Please remove the sensitive material');
  return (
    `I did not send your message to the external language model because ${joinList(reasons)}. ` +
    `${advice.join(' and ')}, then send it again. Nothing was shared outside this service.`
  );
}

export function createLlmStage(deps: { provider: LlmProvider; offline: LlmProvider }): LlmStage {
  const { provider } = deps;
  return {
    async run(input: LlmStageInput, signal?: AbortSignal, onDelta?: (text: string) => void): Promise<LlmResult> {
      const base: Omit<LlmRequest, 'userContent'> = {
        history: input.history,
        documents: input.rag?.documents ?? [],
        contacts: input.rocketreach?.contacts ?? [],
        ...(input.intent ? { intent: input.intent } : {}),
        ...(input.rocketreach ? { contactLookupStatus: input.rocketreach.status } : {}),
      };
      const { security } = input;

      // In-process: the text never leaves the process, so it may answer even without a security result.
      if (provider.name === 'offline') {
        return provider.complete({ ...base, userContent: security ? security.redactedContent : input.rawContent }, signal, onDelta);
      }

      if (!security) return guardResult(failClosedReply());
      if (security.level === 'restricted' || !security.safe) return guardResult(blockedReply(security));

      return provider.complete({ ...base, userContent: security.redactedContent }, signal, onDelta);
    },
  };
}
