/**
 * The live-results figures of `npm run bench` (BENCH_ONLY=ttft,streams):
 *
 *   6 ttft      time to first token at a streaming client (POST …/messages/queued, then the batch's
 *               SSE stream) minus the fake LLM's own time to first token (its request received →
 *               its first content chunk written), one message at a time on the queued path (an
 *               API process and a worker process): p50 ≤ 30 ms
 *   7 streams   one API process holding 1,000 open thread event streams (4 per thread) while
 *               messages run through a worker: every event delivered to every stream of its
 *               thread, in order, without a gap; delivery lag (event stored → parsed by the
 *               client) p99 ≤ 100 ms; the API process's resident memory before and with the streams
 */
import { readFileSync } from 'node:fs';
import { startFakeOpenAi } from '../test/fakes/openai.fake.js';
import { openSse, type SseConnection } from '../test/support/sse-client.js';
import { round, sleep, summarize } from './lib/stats.js';

export interface StreamBenchServer {
  label: string;
  port: number;
  child: { pid: number };
}

/** What the bench harness (run.ts) lends these scenarios. */
export interface StreamBenchDeps<Server extends StreamBenchServer, Tenant> {
  quick: boolean;
  startApiAndWorker(label: string, env: Record<string, string>): Promise<{ api: Server; worker: Server; tenant: Tenant; close(): Promise<void> }>;
  createThreads(server: Server, tenant: Tenant, count: number, title: string): Promise<string[]>;
  headers(tenant: Tenant): Record<string, string>;
  postQueued(server: Server, tenant: Tenant, threadId: string, content: string): Promise<{ status: number; batchId: string | undefined }>;
  log(message: string): void;
}

export const STREAM_TARGETS = { ttftOverheadP50Ms: 30, deliveryLagP99Ms: 100, streams: 1_000 };

const now = () => performance.timeOrigin + performance.now();

function rssMb(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? round(Number(match[1]) / 1000, 1) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Scenario 6: time to first token at the client, minus the fake LLM's own. */
export async function scenarioTtft<Server extends StreamBenchServer, Tenant>(deps: StreamBenchDeps<Server, Tenant>): Promise<Record<string, unknown>> {
  const fakeFirstTokenMs = 200;
  const fake = await startFakeOpenAi({ apiKey: 'test', reply: () => 'A short statement, streamed word by word to the client as it is produced.' });
  fake.setStreaming({ firstTokenMs: fakeFirstTokenMs, tokenIntervalMs: 5 });
  const system = await deps.startApiAndWorker('server-ttft', { OPENAI_API_KEY: 'test', OPENAI_BASE_URL: fake.url });
  try {
    const messages = deps.quick ? 10 : 40;
    const threads = await deps.createThreads(system.api, system.tenant, messages + 3, 'TTFT');
    const base = `http://127.0.0.1:${system.api.port}/api/v1/chat`;
    const overhead: number[] = [];
    /** Where the overhead goes, from the events' stored times: accept → the LLM step's start, its start → the fake's request, the first token's append → the client. */
    const parts = { acceptToLlmStart: [] as number[], llmStartToFakeRequest: [] as number[], fakeTokenToStored: [] as number[], storedToClient: [] as number[], postToAccepted: [] as number[] };
    const clientTtft: number[] = [];
    const fakeOwn: number[] = [];
    let failures = 0;
    // Three warm-up messages first: the first requests of a process pay for cold code and connections.
    for (let i = 0; i < messages + 3; i++) {
      const streamsBefore = fake.streams.length;
      const sentAt = now();
      const sent = await deps.postQueued(system.api, system.tenant, threads[i]!, `Draft a statement about the launch (${i})`);
      if (sent.status !== 202 || !sent.batchId) {
        failures++;
        continue;
      }
      const stream: SseConnection = await openSse(`${base}/batch/${sent.batchId}/events`, deps.headers(system.tenant));
      try {
        await stream.waitFor((list) => list.some((m) => m.event === 'token'), 30_000);
      } catch {
        failures++;
        stream.close();
        continue;
      }
      const firstToken = stream.messages.find((m) => m.event === 'token')!;
      await stream.closed;
      const timing = fake.streams[streamsBefore];
      if (i < 3 || !timing) continue;
      const own = timing.firstTokenAt - timing.receivedAt;
      const client = firstToken.receivedAt - sentAt;
      fakeOwn.push(own);
      clientTtft.push(client);
      overhead.push(client - own);
      const at = (predicate: (m: (typeof stream.messages)[number]) => boolean) => Date.parse(stream.messages.find(predicate)?.json.at ?? '');
      const accepted = at((m) => m.event === 'run' && m.json.status === 'accepted');
      const llmStart = at((m) => m.event === 'step' && m.json.stage === 'openai' && m.json.status === 'started');
      const tokenStored = Date.parse(firstToken.json.at);
      parts.postToAccepted.push(accepted - sentAt);
      parts.acceptToLlmStart.push(llmStart - accepted);
      parts.llmStartToFakeRequest.push(timing.receivedAt - llmStart);
      parts.fakeTokenToStored.push(tokenStored - timing.firstTokenAt);
      parts.storedToClient.push(firstToken.receivedAt - tokenStored);
      await sleep(50);
    }
    return {
      messages,
      failures,
      fakeFirstTokenMs,
      overheadMs: summarize(overhead),
      overheadPartsP50Ms: Object.fromEntries(Object.entries(parts).map(([name, values]) => [name, summarize(values).p50])),
      clientTtftMs: summarize(clientTtft),
      fakeOwnTtftMs: summarize(fakeOwn),
    };
  } finally {
    await system.close();
    await fake.close();
  }
}

/** Scenario 7: 1,000 open streams on one API process, every event delivered, and the lag. */
export async function scenarioStreams<Server extends StreamBenchServer, Tenant>(deps: StreamBenchDeps<Server, Tenant>): Promise<Record<string, unknown>> {
  const perThread = 4;
  const total = deps.quick ? 200 : STREAM_TARGETS.streams;
  const threadCount = total / perThread;
  const system = await deps.startApiAndWorker('server-streams', {});
  const streams: Array<{ threadId: string; connection: SseConnection }> = [];
  try {
    const threads = await deps.createThreads(system.api, system.tenant, threadCount, 'Streams');
    const base = `http://127.0.0.1:${system.api.port}/api/v1/chat`;
    await sleep(500);
    const rssBefore = rssMb(system.api.child.pid);
    const openStart = now();
    for (let i = 0; i < total; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, total - i) }, (_, j) => {
          const threadId = threads[(i + j) % threadCount]!;
          return openSse(`${base}/threads/${threadId}/events`, deps.headers(system.tenant)).then((connection) => ({ threadId, connection }));
        }),
      );
      streams.push(...batch);
    }
    const openMs = now() - openStart;
    const refused = streams.filter((s) => s.connection.status !== 200).length;
    await sleep(1_000);
    const rssOpen = rssMb(system.api.child.pid);

    // One message per thread, spread over the send window.
    const sendMs = deps.quick ? 4_000 : 10_000;
    const batches = new Map<string, string>();
    const sendStart = now();
    for (const [i, threadId] of threads.entries()) {
      const due = sendStart + (i * sendMs) / threadCount;
      const wait = due - now();
      if (wait > 0) await sleep(wait);
      const sent = await deps.postQueued(system.api, system.tenant, threadId, `Draft a short post (${i})`);
      if (sent.batchId) batches.set(threadId, sent.batchId);
    }
    const rssPeakLoad = rssMb(system.api.child.pid);
    // Every stream sees its thread's run end.
    const deadline = now() + 60_000;
    const ended = (s: (typeof streams)[number]) => s.connection.messages.some((m) => m.event === 'end' && m.json.runId === batches.get(s.threadId));
    while (now() < deadline && !streams.every(ended)) await sleep(100);

    let delivered = 0;
    let incomplete = 0;
    const lags: number[] = [];
    for (const s of streams) {
      const runId = batches.get(s.threadId);
      const mine = s.connection.messages.filter((m) => m.json?.runId === runId);
      const seqs = mine.map((m) => m.json.seq as number);
      const complete = seqs.length > 0 && seqs.every((seq, i) => seq === i + 1) && mine.at(-1)?.event === 'end';
      if (!complete) incomplete++;
      delivered += mine.length;
      for (const m of mine) lags.push(m.receivedAt - Date.parse(m.json.at));
    }
    const stillOpen = streams.filter((s) => !s.connection.ended).length;
    return {
      streams: total,
      refused,
      openMs: round(openMs, 0),
      runs: batches.size,
      delivered,
      incompleteStreams: incomplete,
      stillOpen,
      deliveryLagMs: summarize(lags),
      rssMb: { before: rssBefore, withStreams: rssOpen, underLoad: rssPeakLoad, perStreamKb: round(((rssOpen - rssBefore) * 1000) / total, 1) },
    };
  } finally {
    for (const s of streams) s.connection.close();
    await system.close();
  }
}

export interface StreamCheck {
  scenario: string;
  figure: string;
  value: number | string;
  unit: string;
  target?: string;
  pass?: boolean;
}

/** The table rows of scenarios 6 and 7. */
export function streamChecks(scenarios: Record<string, unknown>): StreamCheck[] {
  const ttft = scenarios.ttft as { overheadMs?: { p50: number; p99: number }; clientTtftMs?: { p50: number }; fakeOwnTtftMs?: { p50: number }; failures?: number } | undefined;
  const streams = scenarios.streams as
    | { streams?: number; refused?: number; incompleteStreams?: number; delivered?: number; deliveryLagMs?: { p50: number; p99: number }; rssMb?: { before: number; withStreams: number; perStreamKb: number } }
    | undefined;
  const rows: StreamCheck[] = [];
  if (ttft) {
    const p50 = ttft.overheadMs?.p50 ?? Number.NaN;
    rows.push(
      { scenario: '6 ttft', figure: 'client TTFT − fake LLM TTFT p50', value: p50, unit: 'ms', target: `≤ ${STREAM_TARGETS.ttftOverheadP50Ms} ms`, pass: p50 <= STREAM_TARGETS.ttftOverheadP50Ms && ttft.failures === 0 },
      { scenario: '6 ttft', figure: 'p99 / client TTFT p50 / fake TTFT p50', value: `${ttft.overheadMs?.p99} / ${ttft.clientTtftMs?.p50} / ${ttft.fakeOwnTtftMs?.p50}`, unit: 'ms' },
    );
  }
  if (streams) {
    const p99 = streams.deliveryLagMs?.p99 ?? Number.NaN;
    const all = streams.incompleteStreams === 0 && streams.refused === 0;
    rows.push(
      { scenario: '7 streams', figure: `open streams / every event delivered`, value: `${streams.streams} / ${all ? 'yes' : `no (${streams.incompleteStreams} incomplete, ${streams.refused} refused)`}`, unit: '' },
      { scenario: '7 streams', figure: 'delivery lag p50 / p99', value: `${streams.deliveryLagMs?.p50} / ${p99}`, unit: 'ms', target: `p99 ≤ ${STREAM_TARGETS.deliveryLagP99Ms} ms, all delivered`, pass: p99 <= STREAM_TARGETS.deliveryLagP99Ms && all && (streams.streams ?? 0) >= STREAM_TARGETS.streams },
      { scenario: '7 streams', figure: 'API RSS before / with streams (per stream)', value: `${streams.rssMb?.before} / ${streams.rssMb?.withStreams} (${streams.rssMb?.perStreamKb} kB)`, unit: 'MB' },
    );
  }
  return rows;
}
