/**
 * A Redis Cluster of a test's own: three masters (no replicas) on free loopback ports, joined
 * with `redis-cli --cluster create`, each in its own temporary directory. `stopAllRedisClusters()`
 * ends them (afterAll); a last resort SIGKILLs any still running when the test process ends.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster } from 'ioredis';
import { atTestProcessEnd } from './cleanup.js';
import { freePort } from './ports.js';
import { waitForOutput } from './server-output.js';

const run = promisify(execFile);

export interface RedisCluster {
  readonly nodes: ReadonlyArray<{ host: string; port: number }>;
  /** The value of REDIS_CLUSTER_NODES for a server process. */
  readonly env: string;
  /** A client of the cluster (closed by `stop()`). */
  client(): Cluster;
  /** Every key on each master, by port. */
  keysByNode(pattern?: string): Promise<Map<number, string[]>>;
  stop(): Promise<void>;
}

const clusters = new Set<{ children: ChildProcess[]; dirs: string[] }>();

export async function startRedisCluster(options: { masters?: number; readyTimeoutMs?: number } = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
  const ports: number[] = [];
  while (ports.length < masters) {
    const port = await freePort();
    // The cluster bus listens on port + 10000: both must be free and below 65536.
    if (port + 10_000 < 65_536 && !ports.includes(port)) ports.push(port);
  }
  const state = { children: [] as ChildProcess[], dirs: [] as string[] };
  clusters.add(state);
  const clients: Cluster[] = [];

  const stop = async () => {
    await Promise.all(clients.map((client) => client.quit().catch(() => client.disconnect())));
    await Promise.all(
      state.children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGKILL');
          }),
      ),
    );
    for (const dir of state.dirs) rmSync(dir, { recursive: true, force: true });
    clusters.delete(state);
  };

  try {
    await Promise.all(
      ports.map(async (port) => {
        const dir = mkdtempSync(join(tmpdir(), 'honeyjar-redis-cluster-'));
        state.dirs.push(dir);
        const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no'];
        args.push('--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '2000');
        const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
        state.children.push(child);
        await waitForOutput(child, 'Ready to accept connections', `redis-server (cluster) on ${port}`, readyTimeoutMs);
      }),
    );
    await run('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'], {
      timeout: readyTimeoutMs,
    });
    // Every node must agree that all slots are served before clients are let in.
    const deadline = Date.now() + readyTimeoutMs;
    for (const port of ports) {
      for (;;) {
        const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'info']);
        if (/cluster_state:ok/.test(stdout)) break;
        if (Date.now() > deadline) throw new Error(`Redis Cluster node ${port} not ok: ${stdout}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }

  const nodes = ports.map((port) => ({ host: '127.0.0.1', port }));
  return {
    nodes,
    env: nodes.map((node) => `${node.host}:${node.port}`).join(','),
    client() {
      const client = new Cluster([...nodes], { redisOptions: { maxRetriesPerRequest: null } });
      clients.push(client);
      return client;
    },
    async keysByNode(pattern = '*') {
      const result = new Map<number, string[]>();
      for (const port of ports) {
        const { stdout } = await run('redis-cli', ['-p', String(port), '--scan', '--pattern', pattern], { maxBuffer: 64 * 1024 * 1024 });
        result.set(port, stdout.split('\n').filter(Boolean));
      }
      return result;
    },
    stop,
  };
}

/** Ends every cluster this test file started (for afterAll). */
export async function stopAllRedisClusters(): Promise<void> {
  await Promise.all(
    [...clusters].map(async (state) => {
      for (const child of state.children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      for (const dir of state.dirs) rmSync(dir, { recursive: true, force: true });
      clusters.delete(state);
    }),
  );
}

atTestProcessEnd(() => {
  for (const state of clusters) {
    for (const child of state.children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const dir of state.dirs) rmSync(dir, { recursive: true, force: true });
  }
});
