import type { ThreadCursor } from '../ports/run-events.js';

/** The most runs a cursor may name: a thread has only a few runs open at once. */
const MAX_RUNS = 64;
const NUMBER = /^(0|[1-9][0-9]{0,15})$/;

/**
 * A thread cursor as text, the SSE `id:` of a thread's stream: `t<floor>` followed by
 * `,<run seq>:<event seq>` for each run after the floor that has delivered events.
 */
export function formatThreadCursor(cursor: ThreadCursor): string {
  const runs = Object.entries(cursor.runs)
    .filter(([runSeq, seq]) => Number(runSeq) > cursor.floor && seq > 0)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([runSeq, seq]) => `,${runSeq}:${seq}`);
  return `t${cursor.floor}${runs.join('')}`;
}

/** The cursor a text names; undefined when it is not one (a client's Last-Event-ID is untrusted input). */
export function parseThreadCursor(text: string): ThreadCursor | undefined {
  if (!text.startsWith('t') || text.length > 2048) return undefined;
  const [floorText, ...entries] = text.slice(1).split(',');
  if (!floorText || !NUMBER.test(floorText) || entries.length > MAX_RUNS) return undefined;
  const floor = Number(floorText);
  const runs: Record<string, number> = {};
  for (const entry of entries) {
    const [runSeq, seq, extra] = entry.split(':');
    if (extra !== undefined || !runSeq || !seq || !NUMBER.test(runSeq) || !NUMBER.test(seq)) return undefined;
    if (Number(runSeq) <= floor || runs[runSeq] !== undefined) return undefined;
    runs[runSeq] = Number(seq);
  }
  if (!Number.isSafeInteger(floor)) return undefined;
  return { floor, runs };
}

/** How far a run of the thread has been delivered under the cursor (Infinity: entirely, it is under the floor). */
export function deliveredOf(cursor: ThreadCursor, runSeq: number): number {
  if (runSeq <= cursor.floor) return Number.POSITIVE_INFINITY;
  return cursor.runs[String(runSeq)] ?? 0;
}
