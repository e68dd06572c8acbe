import type { Coordination } from '../engine/ports/coordination.js';
import type { ScalingDecision } from '../domain/monitoring/autoscaler.js';
import type { StageName } from '../engine/catalog.js';

/** How many of a queue's last decisions a process publishes. */
export const PUBLISHED_DECISIONS = 10;

/**
 * The autoscaler's fleet state: what each worker process publishes about its workers (concurrency,
 * range, recent decisions), so that every process scales its share of a backlog and any API
 * process can show them all (GET /api/v1/chat/system/queue-status). Kept in the coordination store
 * (Redis or PostgreSQL): one set of fields, `<prefix>:autoscale:workers` (a hash on Redis), one
 * field per process (its id), the value JSON with an `expiresAt`; the key's expiry is refreshed on
 * every publish, and readers ignore (and delete) fields whose process stopped publishing.
 */

export interface PublishedQueueState {
  stage: StageName;
  autoscale: boolean;
  current: number;
  min: number;
  max: number;
  cap?: { value: number; reason: string };
  processing?: { meanMs: number; p95Ms: number; count: number };
  throughputPerSec?: number;
  lastDecision?: ScalingDecision;
  decisions: ScalingDecision[];
}

export interface PublishedProcessState {
  processId: string;
  host: string;
  pid: number;
  updatedAt: number;
  expiresAt: number;
  intervalMs: number;
  queues: Record<string, PublishedQueueState>;
}

export function autoscaleKey(prefix: string): string {
  return `${prefix}:autoscale:workers`;
}

export interface FleetState {
  /** Publishes this process's state, kept for `ttlMs`. */
  publish(state: PublishedProcessState, ttlMs: number): Promise<void>;
  /** The live states of every process, by process id; drops those that expired. */
  read(now: number): Promise<Map<string, PublishedProcessState>>;
  /** Removes this process's state (a clean stop). */
  remove(processId: string): Promise<void>;
  available(): boolean;
}

export function createFleetState(coordination: Coordination, prefix: string): FleetState {
  const key = autoscaleKey(prefix);
  return {
    publish: (state, ttlMs) => coordination.setField(key, state.processId, JSON.stringify(state), ttlMs),
    async read(now) {
      const raw = await coordination.getFields(key);
      const states = parseStates(raw, now);
      const stale = Object.keys(raw).filter((id) => !states.has(id));
      if (stale.length) await coordination.deleteFields(key, stale).catch(() => undefined);
      return states;
    },
    async remove(processId) {
      if (coordination.available()) await coordination.deleteFields(key, [processId]).catch(() => undefined);
    },
    available: () => coordination.available(),
  };
}

function parseStates(raw: Record<string, string>, now: number): Map<string, PublishedProcessState> {
  const states = new Map<string, PublishedProcessState>();
  for (const [id, json] of Object.entries(raw)) {
    try {
      const parsed = JSON.parse(json) as PublishedProcessState;
      if (parsed.expiresAt >= now) states.set(id, parsed);
    } catch {
      // A field this version does not understand: ignored.
    }
  }
  return states;
}
