import type { Page } from '../page.js';

export interface ThreadRecord {
  id: string;
  title: string;
  createdAt: Date;
}

export interface MessageRecord {
  id: string;
  seq: number;
  role: 'user' | 'assistant';
  content: string;
  createdAt: Date;
  runId: string | null;
}

/** What the chat services need of threads and their messages (implemented over PostgreSQL in src/adapters/postgres/repositories/threads.repository.ts). */
export interface ThreadStore {
  create(orgId: string, userId: string, title: string): Promise<ThreadRecord>;
  get(orgId: string, threadId: string): Promise<ThreadRecord | undefined>;
  /** Newest first. */
  list(orgId: string, limit: number, cursor?: string): Promise<Page<ThreadRecord>>;
  /** Oldest first; undefined when the thread is not the organization's. */
  listMessages(orgId: string, threadId: string, limit: number, cursor?: string): Promise<Page<MessageRecord> | undefined>;
}
