import type { AlertCondition, AlertSeverity, ProviderSample, StageSample } from './alert-rules.js';

export type AlertStatus = 'open' | 'resolved';

export interface AlertRecord {
  id: string;
  rule: string;
  subject: string;
  severity: AlertSeverity;
  status: AlertStatus;
  message: string;
  value: number;
  threshold: number;
  firstSeenAt: Date;
  lastSeenAt: Date;
  resolvedAt: Date | null;
  acknowledgedAt: Date | null;
  acknowledgedBy: string | null;
  acknowledgedOrg: string | null;
}

/** One acknowledgement of an alert. */
export interface AlertAcknowledgement {
  alertId: string;
  userId: string | null;
  orgId: string | null;
  at: Date;
}

export interface AlertSummary {
  /** Open alerts, and how many of them are acknowledged, unacknowledged, critical, warning. */
  open: number;
  acknowledged: number;
  unacknowledged: number;
  critical: number;
  warning: number;
  /** Resolved alerts kept. */
  resolved: number;
}

/** A PostgreSQL outage observed while PostgreSQL was down, written once it is back. */
export interface OutageRecord {
  id: string;
  rule: string;
  subject: string;
  message: string;
  firstSeenAt: Date;
  lastSeenAt: Date;
}

/**
 * What alert evaluation and the system routes need of stored alerts (implemented over PostgreSQL in
 * src/adapters/postgres/repositories/alerts.repository.ts).
 */
export interface AlertsStore {
  /** A trivial query: the store answers (the caller bounds the wait). */
  ping(): Promise<void>;
  /** Runs `fn` holding the evaluation lock, if no other process holds it. */
  withEvaluationLock<T>(fn: () => Promise<T>): Promise<{ locked: true; value: T } | { locked: false }>;
  raise(condition: AlertCondition): Promise<{ alert: AlertRecord; inserted: boolean }>;
  resolve(id: string): Promise<AlertRecord | undefined>;
  open(): Promise<AlertRecord[]>;
  get(id: string): Promise<AlertRecord | undefined>;
  /** Newest activity first. */
  list(filter: { status?: AlertStatus; acknowledged?: boolean; limit: number }): Promise<AlertRecord[]>;
  summary(): Promise<AlertSummary>;
  /** Undefined for an unknown id; `changed` false when it was acknowledged before (kept as it was). */
  acknowledge(id: string, userId: string, orgId: string): Promise<{ alert: AlertRecord; changed: boolean } | undefined>;
  /** The acknowledgements of these alerts, oldest first. */
  acknowledgementsOf(alertIds: string[]): Promise<AlertAcknowledgement[]>;
  /** Stores an outage seen while the store was down, as a resolved alert, widening an overlapping one. */
  storeOutage(outage: OutageRecord, slackMs: number): Promise<{ alert: AlertRecord; merged: boolean }>;
  /** Claims the next evaluation pass: true when none ran within `minGapMs` (any process). */
  claimPass(minGapMs: number): Promise<boolean>;
  rocketreachState(): Promise<{ checkedAt: Date | null; credits: number | null }>;
  /** `credits` undefined keeps the last known balance (the check failed). */
  setRocketreachState(credits: number | null | undefined): Promise<void>;
  stageStats(windowMs: number): Promise<Record<string, StageSample>>;
  providerStats(windowMs: number): Promise<Record<string, ProviderSample>>;
}
