/**
 * How the health of the server is judged, from observations gathered elsewhere (PostgreSQL, Redis,
 * the queues and the workers' heartbeats). Plain functions: no I/O here.
 */

export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';

export interface ComponentCheck {
  status: HealthStatus;
  latencyMs: number;
  /** A short reason (e.g. `timeout`, `ECONNREFUSED`), never a message that could carry a secret. */
  error?: string;
}

/** What is known of one queue: its waiting jobs and when a worker last took a job from it. */
export interface QueueObservation {
  queue: string;
  /** Jobs ready to run and not yet taken (waiting, paused, prioritized). */
  waiting: number;
  /** Age of the oldest of them, from when it was added. Null when none wait. */
  oldestWaitingAgeMs: number | null;
  /** Time since any worker process last took a job from this queue. Null when none ever did (or long ago). */
  lastFetchAgeMs: number | null;
}

export interface QueueVerdict extends QueueObservation {
  status: 'healthy' | 'degraded';
  reason?: 'not_consuming';
}

export interface WorkersCheck {
  status: HealthStatus;
  /** Jobs older than this, with no fetch newer than this, mean a queue is not being consumed. */
  staleAfterMs: number;
  /** The queues not being consumed. */
  stale: string[];
  queues: Record<string, Omit<QueueVerdict, 'queue'>>;
  error?: string;
}

/**
 * A queue is not being consumed when its oldest waiting job has waited longer than `staleAfterMs`
 * and no worker, in any process, has taken a job from it within `staleAfterMs`. A worker whose
 * connection still answers PING but no longer fetches (a known BullMQ failure after reconnects),
 * a paused worker and a queue nobody serves all look the same here, which is the point.
 */
export function judgeQueue(observation: QueueObservation, staleAfterMs: number): QueueVerdict {
  const { waiting, oldestWaitingAgeMs, lastFetchAgeMs } = observation;
  const backlogIsOld = waiting > 0 && oldestWaitingAgeMs !== null && oldestWaitingAgeMs > staleAfterMs;
  const fetchedRecently = lastFetchAgeMs !== null && lastFetchAgeMs <= staleAfterMs;
  return backlogIsOld && !fetchedRecently ? { ...observation, status: 'degraded', reason: 'not_consuming' } : { ...observation, status: 'healthy' };
}

export function judgeWorkers(observations: readonly QueueObservation[], staleAfterMs: number): WorkersCheck {
  const verdicts = observations.map((o) => judgeQueue(o, staleAfterMs));
  const stale = verdicts.filter((v) => v.status === 'degraded').map((v) => v.queue);
  return {
    status: stale.length > 0 ? 'degraded' : 'healthy',
    staleAfterMs,
    stale,
    queues: Object.fromEntries(verdicts.map(({ queue, ...rest }) => [queue, rest])),
  };
}

/**
 * PostgreSQL is the system of record: without it nothing can be served (unhealthy, 503). Without
 * Redis the API still serves, processing in-process (degraded). Queues not consumed: degraded.
 */
export function overallStatus(checks: { database: { status: HealthStatus }; redis: { status: HealthStatus }; workers: { status: HealthStatus } }): HealthStatus {
  if (checks.database.status === 'unhealthy') return 'unhealthy';
  if (checks.database.status !== 'healthy' || checks.redis.status !== 'healthy' || checks.workers.status !== 'healthy') return 'degraded';
  return 'healthy';
}
