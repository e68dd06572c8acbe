import type { Worker } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';

export function cancelChannel(prefix: string): string {
  return `${prefix}:cancel`;
}

/**
 * Aborts active jobs on request from any process: the cancel endpoint publishes the job id, and
 * the worker that holds the job (in whichever process) aborts its AbortSignal, which reaches the
 * LLM or RocketReach call. For every other worker the message is a no-op.
 */
export async function subscribeToCancellations(subscriber: Redis | Cluster, channel: string, workers: Worker[], logger: Logger): Promise<void> {
  subscriber.on('message', (from: string, payload: string) => {
    if (from !== channel) return;
    let message: { jobId?: unknown; reason?: unknown };
    try {
      message = JSON.parse(payload) as { jobId?: unknown; reason?: unknown };
    } catch {
      return;
    }
    if (typeof message.jobId !== 'string') return;
    const reason = typeof message.reason === 'string' ? message.reason : 'cancelled';
    for (const worker of workers) {
      if (worker.cancelJob(message.jobId, reason)) logger.info({ jobId: message.jobId, queue: worker.name }, 'aborted an active job');
    }
  });
  await subscriber.subscribe(channel);
}
