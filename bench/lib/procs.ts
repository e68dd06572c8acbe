/**
 * Child processes of the benchmark: spawned in their own process group, logs to a file, and killed
 * (the whole group, by id) when stopped, when the harness fails, or when it exits in any way.
 * Also a /proc sampler for resident memory and CPU time of a process and its descendants.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync, type WriteStream } from 'node:fs';
import net from 'node:net';
import { sleep } from './stats.js';

export interface Child {
  label: string;
  proc: ChildProcess;
  pid: number;
  logFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited: () => boolean;
  /** The last few KiB written to stdout/stderr. */
  tail: () => string;
}

const live = new Set<Child>();

export function spawnChild(
  label: string,
  command: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; logFile: string; stdinPipe?: boolean },
): Child {
  const log: WriteStream = createWriteStream(options.logFile, { flags: 'w' });
  const proc = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    detached: true,
    stdio: [options.stdinPipe ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  if (proc.pid === undefined) throw new Error(`could not spawn ${label}`);
  let tail = '';
  const keep = (chunk: Buffer) => {
    log.write(chunk);
    tail = (tail + chunk.toString('utf8')).slice(-8192);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  let exited = false;
  const child: Child = {
    label,
    proc,
    pid: proc.pid,
    logFile: options.logFile,
    exited: new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        exited = true;
        live.delete(child);
        resolve({ code, signal });
      });
    }),
    hasExited: () => exited,
    tail: () => tail,
  };
  void child.exited.then(() => setTimeout(() => log.end(), 100));
  live.add(child);
  return child;
}

/** Runs a command to completion and returns its stdout; rejects on a non-zero exit or after `timeoutMs`. */
export async function runToCompletion(
  label: string,
  command: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; logFile: string; timeoutMs: number },
): Promise<string> {
  const child = spawnChild(label, command, args, options);
  let stdout = '';
  child.proc.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), options.timeoutMs);
  const { code, signal } = await child.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${label} exited with ${code ?? signal}: ${child.tail().slice(-2000)}`);
  return stdout;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

/** SIGTERM to the child's process group, then SIGKILL after `graceMs`. */
export async function stopChild(child: Child, graceMs = 8_000): Promise<void> {
  if (child.hasExited()) {
    killGroup(child.pid, 'SIGKILL'); // any grandchildren left behind
    return;
  }
  killGroup(child.pid, 'SIGTERM');
  const timedOut = await Promise.race([child.exited.then(() => false), sleep(graceMs).then(() => true)]);
  killGroup(child.pid, 'SIGKILL');
  if (timedOut) await Promise.race([child.exited, sleep(2_000)]);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((child) => stopChild(child, 5_000)));
}

/** Last resort, synchronous: for process 'exit'. */
export function killAllSync(): void {
  for (const child of live) killGroup(child.pid, 'SIGKILL');
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

// --- /proc sampling -------------------------------------------------------------------------------

function readStatus(pid: number): { rssKb: number; hwmKb: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+)/.exec(text)?.[1];
    const hwm = /VmHWM:\s+(\d+)/.exec(text)?.[1];
    return { rssKb: Number(rss ?? 0), hwmKb: Number(hwm ?? 0) };
  } catch {
    return undefined;
  }
}

/** utime + stime in clock ticks, and the parent pid. */
function readStat(pid: number): { ticks: number; ppid: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // fields[0] is state (field 3); ppid is field 4, utime 14, stime 15.
    return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined;
  }
}

/** The process and its descendants, via /proc/<pid>/task/<tid>/children (cheap: no full /proc scan). */
function descendants(root: number): number[] {
  const out = [root];
  for (let i = 0; i < out.length; i++) {
    const pid = out[i]!;
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        for (const child of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/)) {
          if (child && !out.includes(Number(child))) out.push(Number(child));
        }
      } catch {
        /* gone */
      }
    }
  }
  return out;
}

export const CLOCK_TICKS = 100; // USER_HZ on Linux

export interface TreeMemory {
  label: string;
  /** Highest sum of VmRSS over the tree seen in any sample (kB). */
  peakTreeRssKb: number;
  /** Per process: highest VmRSS sampled and the kernel's VmHWM read at the last sample (kB). */
  processes: Record<string, { peakRssKb: number; hwmKb: number }>;
  samples: number;
}

/** Samples VmRSS/VmHWM of watched process trees every `intervalMs`. */
export class MemorySampler {
  private readonly trees = new Map<string, { root: number; pids: number[]; mem: TreeMemory; lastScan: number }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs = 200) {}

  watch(label: string, root: number): void {
    this.trees.set(label, {
      root,
      pids: [root],
      lastScan: 0,
      mem: { label, peakTreeRssKb: 0, processes: {}, samples: 0 },
    });
    this.sampleOne(label);
  }

  start(): void {
    this.timer ??= setInterval(() => {
      for (const label of this.trees.keys()) this.sampleOne(label);
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Takes a last sample (call before stopping the process) and stops watching it. */
  finish(label: string): TreeMemory | undefined {
    this.sampleOne(label);
    const tree = this.trees.get(label);
    this.trees.delete(label);
    return tree?.mem;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** CPU seconds used so far by a watched tree (live processes only). */
  cpuSeconds(label: string): number {
    const tree = this.trees.get(label);
    if (!tree) return 0;
    let ticks = 0;
    for (const pid of descendants(tree.root)) ticks += readStat(pid)?.ticks ?? 0;
    return ticks / CLOCK_TICKS;
  }

  private sampleOne(label: string): void {
    const tree = this.trees.get(label);
    if (!tree) return;
    const now = Date.now();
    if (now - tree.lastScan >= 1_000) {
      tree.pids = descendants(tree.root);
      tree.lastScan = now;
    }
    let sum = 0;
    for (const pid of tree.pids) {
      const status = readStatus(pid);
      if (!status) continue;
      sum += status.rssKb;
      const key = String(pid);
      const entry = (tree.mem.processes[key] ??= { peakRssKb: 0, hwmKb: 0 });
      entry.peakRssKb = Math.max(entry.peakRssKb, status.rssKb);
      entry.hwmKb = Math.max(entry.hwmKb, status.hwmKb);
    }
    tree.mem.samples++;
    tree.mem.peakTreeRssKb = Math.max(tree.mem.peakTreeRssKb, sum);
  }
}

/** Whole-machine CPU ticks from /proc/stat: busy (everything but idle and iowait) and total. */
export function systemCpuTicks(): { busy: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const values = line.trim().split(/\s+/).slice(1).map(Number);
    const total = values.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (values[3] ?? 0) + (values[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

/**
 * CPU seconds used so far by the PostgreSQL backends serving database `dbName` (found by their
 * process title, `postgres: <user> <db> …`). Backends that exit between two reads take their
 * ticks with them; the servers' pools keep theirs open while the load runs.
 */
export function postgresCpuSeconds(dbName: string): number {
  let ticks = 0;
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return 0;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let title: string;
    try {
      title = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (!title.startsWith('postgres: ') || !title.split(' ').includes(dbName)) continue;
    ticks += readStat(Number(entry))?.ticks ?? 0;
  }
  return ticks / CLOCK_TICKS;
}
