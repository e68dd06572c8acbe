import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  customType,
  date,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgEnum,
  pgTable,
  primaryKey,
  smallint,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import type { RunOptions, StepError } from '../../engine/run.js';

const tsvector = customType<{ data: string }>({ dataType: () => 'tsvector' });

const createdAt = () => timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();

export const membershipRole = pgEnum('membership_role', ['admin', 'member']);
export const messageRole = pgEnum('message_role', ['user', 'assistant']);
export const runStatus = pgEnum('run_status', ['processing', 'partial', 'completed', 'failed', 'cancelled']);
export const stepStatus = pgEnum('step_status', ['pending', 'active', 'retrying', 'completed', 'failed', 'cancelled']);

export const organizations = pgTable(
  'organizations',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    name: text('name').notNull(),
    /** Double texting: what a new message does while one of its thread is answered (enqueue, reject, interrupt). */
    multitaskStrategy: text('multitask_strategy').$type<'enqueue' | 'reject' | 'interrupt'>().notNull().default('enqueue'),
    createdAt: createdAt(),
  },
  (t) => [check('organizations_multitask_strategy_check', sql`${t.multitaskStrategy} in ('enqueue', 'reject', 'interrupt')`)],
);

export const users = pgTable(
  'users',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    email: text('email').notNull(),
    /** A system operator runs the whole installation (Bull Board, process details, system alerts); separate from organization roles. */
    isOperator: boolean('is_operator').notNull().default(false),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('users_email_key').on(sql`lower(${t.email})`)],
);

export const memberships = pgTable(
  'memberships',
  {
    orgId: uuid('org_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    role: membershipRole('role').notNull().default('member'),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.userId] }), index('memberships_user_idx').on(t.userId)],
);

/** Only a SHA-256 of each token is kept; the token itself is shown once when created. */
export const apiTokens = pgTable(
  'api_tokens',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    tokenHash: text('token_hash').notNull(),
    prefix: text('prefix').notNull(),
    name: text('name'),
    createdAt: createdAt(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true, mode: 'date' }),
    revokedAt: timestamp('revoked_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [uniqueIndex('api_tokens_hash_key').on(t.tokenHash), index('api_tokens_user_idx').on(t.userId)],
);

export const threads = pgTable(
  'threads',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    orgId: uuid('org_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    createdBy: uuid('created_by').references(() => users.id, { onDelete: 'set null' }),
    title: text('title').notNull(),
    createdAt: createdAt(),
  },
  (t) => [index('threads_org_created_idx').on(t.orgId, t.createdAt, t.id)],
);

/** A run is a batch: one processing of one user message through the stage pipeline. */
export const runs = pgTable(
  'runs',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    // No foreign keys on the accept path's rows: each reference check locks the row it points to
    // (the organization and user rows are shared by every accept). The accept statement writes a
    // run and its message only for a thread of the caller's organization; threads, organizations
    // and users are never deleted.
    orgId: uuid('org_id').notNull(),
    threadId: uuid('thread_id').notNull(),
    userId: uuid('user_id'),
    /** The user message this run answers, and its place in the total order of messages. */
    messageId: uuid('message_id').notNull(),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    status: runStatus('status').notNull().default('processing'),
    /** blocking, queued or comprehensive: which endpoint accepted it. */
    source: text('source').notNull(),
    /** Which driver runs it: inline (in-process) or queue (BullMQ). */
    driver: text('driver').notNull(),
    /** Stages requested and their inputs (e.g. explicit contacts to enrich). */
    options: jsonb('options').$type<RunOptions>().notNull().default({}),
    idempotencyKey: text('idempotency_key'),
    /** A digest of the request that used the idempotency key: the same key with another request is refused. */
    idempotencyFingerprint: text('idempotency_fingerprint'),
    /**
     * The backlog model's estimate of the run's wait at accept, before its measured correction
     * (src/domain/chat/backlog.ts); null when there was nothing to learn from (nothing ahead, no
     * measured rate, or a run driven at once rather than queued). The backlog reading
     * compares it with the actual wait of the runs that finished, to correct the next estimates.
     */
    modelWaitMs: integer('model_wait_ms'),
    /**
     * Each included stage's progress as the DAG sees it (pending, completed, failed). Kept on the
     * run row so that concurrent step completions serialise on it and the last one sees all.
     */
    stepStates: jsonb('step_states').$type<Record<string, string>>().notNull().default({}),
    error: jsonb('error').$type<StepError>(),
    /**
     * The process that took the run over when the queue transport was lost, and until when: only
     * it may run the run's steps to completion and store its reply (see run-store/takeover.ts).
     */
    leaseOwner: text('lease_owner'),
    leaseExpiresAt: timestamp('lease_expires_at', { withTimezone: true, mode: 'date' }),
    createdAt: createdAt(),
    finishedAt: timestamp('finished_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [
    index('runs_org_created_idx').on(t.orgId, t.createdAt),
    // The open runs of a thread in message order: whose reply is next. Only open runs are in it.
    index('runs_open_thread_idx').on(t.threadId, t.seq).where(sql`${t.finishedAt} is null`),
    uniqueIndex('runs_idempotency_key').on(t.orgId, t.idempotencyKey).where(sql`${t.idempotencyKey} is not null`),
  ],
);

export const messages = pgTable(
  'messages',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    /** Total order of messages, used for history and cursors (timestamps can tie). */
    seq: bigint('seq', { mode: 'number' }).generatedAlwaysAsIdentity().notNull(),
    orgId: uuid('org_id').notNull(),
    threadId: uuid('thread_id').notNull(),
    /** The run a message belongs to: the run it started (user) or the run's reply (assistant). */
    runId: uuid('run_id'),
    role: messageRole('role').notNull(),
    content: text('content').notNull(),
    /**
     * Set on both turns of an exchange the local guard answered (unsafe or restricted content):
     * such turns never re-enter the history sent to a model.
     */
    guarded: boolean('guarded').notNull().default(false),
    createdAt: createdAt(),
  },
  (t) => [
    index('messages_thread_seq_idx').on(t.threadId, t.seq),
    // A run produces at most one reply, whatever retries happen. (Its user message is found
    // through runs.message_id.)
    uniqueIndex('messages_one_reply_per_run').on(t.runId).where(sql`${t.role} = 'assistant' and ${t.runId} is not null`),
  ],
);

export const runSteps = pgTable(
  'run_steps',
  {
    // A step's row is written when the step is first claimed (the claim reads the run row); until
    // then runs.step_states alone says it is pending.
    runId: uuid('run_id').notNull(),
    stage: text('stage').notNull(),
    orgId: uuid('org_id').notNull(),
    /** Globally unique job id: `<runId>.<stage>`. */
    jobId: text('job_id').notNull(),
    queue: text('queue').notNull(),
    status: stepStatus('status').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    maxAttempts: integer('max_attempts').notNull(),
    result: jsonb('result'),
    error: jsonb('error').$type<StepError>(),
    createdAt: createdAt(),
    startedAt: timestamp('started_at', { withTimezone: true, mode: 'date' }),
    finishedAt: timestamp('finished_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [
    primaryKey({ columns: [t.runId, t.stage] }),
    // Windowed statistics (alerts, metrics) read the steps finished in the last minutes.
    index('run_steps_finished_idx').on(t.finishedAt),
  ],
);

export const documents = pgTable(
  'documents',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    orgId: uuid('org_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    title: text('title').notNull(),
    content: text('content').notNull(),
    createdBy: uuid('created_by').references(() => users.id, { onDelete: 'set null' }),
    createdAt: createdAt(),
  },
  (t) => [index('documents_org_created_idx').on(t.orgId, t.createdAt, t.id)],
);

export const documentChunks = pgTable(
  'document_chunks',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    documentId: uuid('document_id')
      .notNull()
      .references(() => documents.id, { onDelete: 'cascade' }),
    orgId: uuid('org_id').notNull(),
    position: integer('position').notNull(),
    title: text('title').notNull(),
    content: text('content').notNull(),
    tsv: tsvector('tsv').notNull().generatedAlwaysAs(sql`setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', content), 'B')`),
  },
  (t) => [
    index('document_chunks_tsv_idx').using('gin', t.tsv),
    index('document_chunks_org_idx').on(t.orgId),
    index('document_chunks_document_idx').on(t.documentId),
  ],
);

/** RocketReach answers per organization, so one lookup costs one API call. */
export const contactCache = pgTable(
  'contact_cache',
  {
    orgId: uuid('org_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    key: text('key').notNull(),
    result: jsonb('result').notNull(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.key] })],
);

export const alertSeverity = pgEnum('alert_severity', ['warning', 'critical']);
export const alertStatus = pgEnum('alert_status', ['open', 'resolved']);

/**
 * Operational alerts raised by the evaluator (src/domain/monitoring/alerts.service.ts). System-wide:
 * no tenant content. At most one open alert per rule and subject (e.g. `queue_backlog` on
 * `rag-processing`); it is updated while the condition persists and resolved when it clears.
 */
export const alerts = pgTable(
  'alerts',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    rule: text('rule').notNull(),
    /** What the alert is about: a queue name, `postgres`, `redis`, a provider. */
    subject: text('subject').notNull(),
    severity: alertSeverity('severity').notNull(),
    status: alertStatus('status').notNull().default('open'),
    message: text('message').notNull(),
    value: doublePrecision('value').notNull(),
    threshold: doublePrecision('threshold').notNull(),
    firstSeenAt: timestamp('first_seen_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    lastSeenAt: timestamp('last_seen_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    resolvedAt: timestamp('resolved_at', { withTimezone: true, mode: 'date' }),
    acknowledgedAt: timestamp('acknowledged_at', { withTimezone: true, mode: 'date' }),
    acknowledgedBy: uuid('acknowledged_by').references(() => users.id, { onDelete: 'set null' }),
    acknowledgedOrg: uuid('acknowledged_org').references(() => organizations.id, { onDelete: 'set null' }),
  },
  (t) => [
    uniqueIndex('alerts_one_open_per_rule_subject').on(t.rule, t.subject).where(sql`${t.status} = 'open'`),
    index('alerts_status_last_seen_idx').on(t.status, t.lastSeenAt),
  ],
);

/** Every acknowledgement of an alert: who, from which organization, when (the alert row keeps the first). */
export const alertAcknowledgements = pgTable(
  'alert_acknowledgements',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    alertId: uuid('alert_id')
      .notNull()
      .references(() => alerts.id, { onDelete: 'cascade' }),
    userId: uuid('user_id').references(() => users.id, { onDelete: 'set null' }),
    orgId: uuid('org_id').references(() => organizations.id, { onDelete: 'set null' }),
    acknowledgedAt: timestamp('acknowledged_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [index('alert_acknowledgements_alert_idx').on(t.alertId, t.acknowledgedAt)],
);

/** One row (id 1): when the last evaluation pass ran, whichever process ran it, and what it cached. */
export const alertEvaluatorState = pgTable('alert_evaluator_state', {
  id: smallint('id').primaryKey(),
  lastPassAt: timestamp('last_pass_at', { withTimezone: true, mode: 'date' }),
  rocketreachCheckedAt: timestamp('rocketreach_checked_at', { withTimezone: true, mode: 'date' }),
  /** Remaining RocketReach lookup credits at the last check; null when unknown. */
  rocketreachCredits: doublePrecision('rocketreach_credits'),
});

/** Settings of the whole system (e.g. `queue_backend`), shared by every process (migration 0007). */
export const systemSettings = pgTable('system_settings', {
  name: text('name').primaryKey(),
  value: text('value').notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});

// The coordination port on PostgreSQL (src/adapters/postgres/coordination.ts); unlogged tables.
export const coordinationValues = pgTable('coordination_values', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
});

export const coordinationCounters = pgTable('coordination_counters', {
  key: text('key').primaryKey(),
  value: bigint('value', { mode: 'number' }).notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
});

export const coordinationMarks = pgTable(
  'coordination_marks',
  {
    key: text('key').notNull(),
    member: text('member').notNull(),
    at: bigint('at', { mode: 'number' }).notNull(),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.key, t.member] }), index('coordination_marks_key_at_idx').on(t.key, t.at)],
);

export const coordinationFields = pgTable(
  'coordination_fields',
  {
    key: text('key').notNull(),
    field: text('field').notNull(),
    value: text('value').notNull(),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.key, t.field] })],
);

/** What an organization used of the metered providers on a UTC day (only kept when a daily budget is set). */
export const orgUsage = pgTable(
  'org_usage',
  {
    orgId: uuid('org_id').notNull(),
    day: date('day', { mode: 'string' }).notNull(),
    llmTokens: bigint('llm_tokens', { mode: 'number' }).notNull().default(0),
    rocketreachLookups: bigint('rocketreach_lookups', { mode: 'number' }).notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.day] })],
);

/** A run's event-log head: the run's last event seq (its row lock orders the run's appends). */
export const runEventHeads = pgTable(
  'run_event_heads',
  {
    runId: uuid('run_id').primaryKey(),
    orgId: uuid('org_id').notNull(),
    threadId: uuid('thread_id').notNull(),
    /** The run's message seq: its place in the thread. */
    runSeq: bigint('run_seq', { mode: 'number' }).notNull(),
    lastSeq: integer('last_seq').notNull(),
    createdAt: createdAt(),
  },
  (t) => [index('run_event_heads_created_idx').on(t.createdAt)],
);

/** The events of runs (src/engine/ports/run-events.ts): one gap-free seq per run. */
export const runEvents = pgTable(
  'run_events',
  {
    runId: uuid('run_id').notNull(),
    seq: integer('seq').notNull(),
    orgId: uuid('org_id').notNull(),
    threadId: uuid('thread_id').notNull(),
    runSeq: bigint('run_seq', { mode: 'number' }).notNull(),
    type: text('type').notNull(),
    data: jsonb('data').notNull(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.runId, t.seq] }), index('run_events_thread_idx').on(t.threadId, t.runSeq, t.seq)],
);

/** Short-lived, single-use tickets that let a browser open an event stream without its API token in the URL. */
export const streamTickets = pgTable(
  'stream_tickets',
  {
    /** SHA-256 of the ticket; the ticket itself is shown once. */
    tokenHash: text('token_hash').primaryKey(),
    orgId: uuid('org_id').notNull(),
    userId: uuid('user_id').notNull(),
    runId: uuid('run_id'),
    threadId: uuid('thread_id'),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
    usedAt: timestamp('used_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [index('stream_tickets_expires_idx').on(t.expiresAt)],
);
