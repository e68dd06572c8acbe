/**
 * Counts replies the way a client sees them: a few poller clients read
 * `GET /api/v1/chat/threads/:threadId/messages` while the load runs and note when each accepted
 * message's assistant reply (same batchId) first appears. One request returns every new message of
 * a thread, so this costs far fewer requests than reading each batch. Each poller owns a share of
 * the threads, has one request in flight, reads a thread at most every `minIntervalMs` and only
 * while the thread still owes a reply, and sleeps until the next thread is due: bounded load on the
 * server being measured, no hot loop.
 */
import type http from 'node:http';
import { performance } from 'node:perf_hooks';
import { httpRequest, Outcomes } from './http.js';
import { sleep } from './stats.js';

interface WireMessage {
  id: string;
  role: string;
  batchId: string | null;
}

interface ThreadState {
  /** Cursor of the last full page read: later reads start there (the API gives no cursor past the end). */
  cursor: string | undefined;
  /** Accepted batches of this thread whose reply has not been seen yet. */
  owed: number;
  nextDueAt: number;
}

export interface ReplySeen {
  firstSeenAt: number;
  /** Distinct assistant message ids carrying this batchId (more than one is a duplicate reply). */
  messageIds: Set<string>;
}

export interface ReplyAudit {
  threadsRead: number;
  requests: number;
  accepted: number;
  withOneReply: number;
  withoutReply: number;
  withSeveralReplies: number;
  /** Assistant messages whose batchId was never accepted by this client. */
  unexpectedReplies: number;
  /** Accepted batches whose user message is missing from the thread, or listed more than once. */
  userMessageAnomalies: number;
  outcomes: ReturnType<Outcomes['toJSON']>;
}

const PAGE_LIMIT = 200;

export class ReplyWatcher {
  readonly outcomes = new Outcomes();
  requests = 0;
  private readonly threads = new Map<string, ThreadState>();
  private readonly expected = new Map<string, { threadId: string; acceptedAt: number }>();
  private readonly seen = new Map<string, ReplySeen>();
  private running = false;
  private loops: Array<Promise<void>> = [];

  constructor(
    private readonly options: {
      agent: http.Agent;
      port: number;
      headers: Record<string, string>;
      threadIds: readonly string[];
      pollers: number;
      minIntervalMs: number;
    },
  ) {
    for (const id of options.threadIds) this.threads.set(id, { cursor: undefined, owed: 0, nextDueAt: 0 });
  }

  /** Registers an accepted message (its 202 carried `batchId`); `acceptedAt` is performance.now(). */
  expect(batchId: string, threadId: string, acceptedAt: number): void {
    this.expected.set(batchId, { threadId, acceptedAt });
    if (!this.seen.has(batchId)) this.threads.get(threadId)!.owed++;
  }

  get acceptedCount(): number {
    return this.expected.size;
  }

  /** Accepted messages whose reply has been seen. */
  get repliedCount(): number {
    let n = 0;
    for (const id of this.expected.keys()) if (this.seen.has(id)) n++;
    return n;
  }

  /** Batches for which the pollers saw more than one assistant message while the load ran. */
  get duplicatesSeen(): number {
    let n = 0;
    for (const seen of this.seen.values()) if (seen.messageIds.size > 1) n++;
    return n;
  }

  /** First-seen times (performance.now()) of the replies to accepted messages. */
  replyTimes(): number[] {
    const times: number[] = [];
    for (const id of this.expected.keys()) {
      const seen = this.seen.get(id);
      if (seen) times.push(seen.firstSeenAt);
    }
    return times;
  }

  /** Accept → reply first seen, in ms, for one accepted message; undefined until seen. */
  lagOf(batchId: string): number | undefined {
    const expected = this.expected.get(batchId);
    const seen = this.seen.get(batchId);
    return expected && seen ? seen.firstSeenAt - expected.acceptedAt : undefined;
  }

  /** Accept → reply first seen, in ms, for each accepted message answered so far. */
  lags(): number[] {
    const lags: number[] = [];
    for (const [id, { acceptedAt }] of this.expected) {
      const seen = this.seen.get(id);
      if (seen) lags.push(seen.firstSeenAt - acceptedAt);
    }
    return lags;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const ids = [...this.threads.keys()];
    const pollers = Math.max(1, Math.min(this.options.pollers, ids.length));
    this.loops = Array.from({ length: pollers }, (_, p) => this.poll(ids.filter((_, i) => i % pollers === p)));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.loops = [];
  }

  /**
   * Resolves true when every accepted message has a reply seen; false at `deadline`
   * (performance.now()) or when no new reply has been seen for `stallMs` (nothing is moving).
   */
  async waitForAll(deadline: number, stallMs = Number.POSITIVE_INFINITY): Promise<boolean> {
    let replied = this.repliedCount;
    let progressAt = performance.now();
    while (replied < this.expected.size) {
      const now = performance.now();
      if (now >= deadline || now - progressAt >= stallMs) return false;
      await sleep(100);
      const next = this.repliedCount;
      if (next > replied) progressAt = performance.now();
      replied = next;
    }
    return true;
  }

  /**
   * Reads every thread from its first message (no cursor, so nothing skipped by a commit that
   * landed behind a page boundary) and checks that each accepted message has its user message once
   * and exactly one reply. Call after stop().
   */
  async audit(concurrency: number): Promise<ReplyAudit> {
    const outcomes = new Outcomes();
    const replies = new Map<string, Set<string>>();
    const userMessages = new Map<string, number>();
    let requests = 0;
    const ids = [...this.threads.keys()];
    let next = 0;
    const reader = async (): Promise<void> => {
      while (next < ids.length) {
        const threadId = ids[next++]!;
        let cursor: string | undefined;
        do {
          requests++;
          const page = await this.readPage(threadId, cursor, outcomes);
          if (!page) break;
          for (const m of page.messages) {
            if (!m.batchId) continue;
            if (m.role === 'assistant') {
              const set = replies.get(m.batchId) ?? new Set<string>();
              set.add(m.id);
              replies.set(m.batchId, set);
            } else if (m.role === 'user') userMessages.set(m.batchId, (userMessages.get(m.batchId) ?? 0) + 1);
          }
          cursor = page.nextCursor ?? undefined;
        } while (cursor);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, ids.length)) }, reader));
    let withOneReply = 0;
    let withoutReply = 0;
    let withSeveralReplies = 0;
    let userMessageAnomalies = 0;
    for (const id of this.expected.keys()) {
      const n = replies.get(id)?.size ?? 0;
      if (n === 0) withoutReply++;
      else if (n === 1) withOneReply++;
      else withSeveralReplies++;
      if (userMessages.get(id) !== 1) userMessageAnomalies++;
    }
    let unexpectedReplies = 0;
    for (const [id, set] of replies) if (!this.expected.has(id)) unexpectedReplies += set.size;
    return {
      threadsRead: ids.length,
      requests,
      accepted: this.expected.size,
      withOneReply,
      withoutReply,
      withSeveralReplies,
      unexpectedReplies,
      userMessageAnomalies,
      outcomes: outcomes.toJSON(),
    };
  }

  private async poll(ids: string[]): Promise<void> {
    while (this.running) {
      let earliest = Number.POSITIVE_INFINITY;
      for (const threadId of ids) {
        if (!this.running) return;
        const state = this.threads.get(threadId)!;
        if (state.owed <= 0) continue;
        const now = performance.now();
        if (now < state.nextDueAt) {
          earliest = Math.min(earliest, state.nextDueAt);
          continue;
        }
        state.nextDueAt = now + this.options.minIntervalMs;
        await this.readNew(threadId, state);
        earliest = Math.min(earliest, state.nextDueAt);
      }
      // Nothing owed yet (or everything answered): look again shortly; otherwise sleep until the next thread is due.
      const wait = Number.isFinite(earliest) ? earliest - performance.now() : this.options.minIntervalMs;
      await sleep(Math.max(5, Math.min(wait, this.options.minIntervalMs)));
    }
  }

  /** Reads a thread from its cursor to the end and notes the replies it shows. */
  private async readNew(threadId: string, state: ThreadState): Promise<void> {
    let cursor = state.cursor;
    while (this.running) {
      this.requests++;
      const page = await this.readPage(threadId, cursor, this.outcomes);
      if (!page) return;
      const at = performance.now();
      for (const m of page.messages) {
        if (m.role !== 'assistant' || !m.batchId) continue;
        let seen = this.seen.get(m.batchId);
        if (!seen) {
          seen = { firstSeenAt: at, messageIds: new Set() };
          this.seen.set(m.batchId, seen);
          const expected = this.expected.get(m.batchId);
          if (expected) this.threads.get(expected.threadId)!.owed--;
        }
        seen.messageIds.add(m.id);
      }
      if (!page.nextCursor) return;
      cursor = page.nextCursor;
      state.cursor = cursor;
    }
  }

  private async readPage(threadId: string, cursor: string | undefined, outcomes: Outcomes): Promise<{ messages: WireMessage[]; nextCursor: string | null } | undefined> {
    const query = `?limit=${PAGE_LIMIT}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    try {
      const res = await httpRequest(this.options.agent, this.options.port, {
        method: 'GET',
        path: `/api/v1/chat/threads/${threadId}/messages${query}`,
        headers: this.options.headers,
      });
      if (!outcomes.record(200, res)) return undefined;
      const body = JSON.parse(res.body) as { messages?: WireMessage[]; nextCursor?: string | null };
      return { messages: body.messages ?? [], nextCursor: body.nextCursor ?? null };
    } catch (error) {
      outcomes.record(200, error as Error);
      return undefined;
    }
  }
}

/** Events (performance.now() times) per second inside [from, to). */
export function ratePerSecond(times: readonly number[], from: number, to: number): number {
  if (to <= from) return Number.NaN;
  let n = 0;
  for (const t of times) if (t >= from && t < to) n++;
  return n / ((to - from) / 1000);
}
