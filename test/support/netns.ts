/**
 * A bare machine for process tests and the bench: a network namespace with only a loopback
 * interface (`unshare -n`), so nothing listens on PostgreSQL's or Redis' default ports inside it,
 * while the file system — the repository, the data directories — is the same. A holder process
 * keeps the namespace alive; processes join it with `nsenter --net=/proc/<holder>/ns/net`, which
 * exec's the command, so pids and signals are the command's own.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { atTestProcessEnd } from './cleanup.js';

const execFileAsync = promisify(execFile);

export interface LoopbackNamespace {
  /** Prefix that runs a command inside the namespace. */
  readonly launcher: string[];
  /** Runs `curl -s <args>` inside the namespace: the body, and the status from `-w`. */
  curl(args: string[]): Promise<{ status: number; body: any; text: string }>;
  close(): void;
}

/** Why the namespace cannot be made here (not root, no unshare/nsenter), or undefined when it can. */
export function loopbackNamespaceUnavailable(): string | undefined {
  const probe = spawnSync('unshare', ['-n', 'sh', '-c', 'ip link set lo up && command -v nsenter >/dev/null && command -v curl >/dev/null'], {
    stdio: 'pipe',
    timeout: 10_000,
  });
  if (probe.error) return `unshare is not available: ${probe.error.message}`;
  if (probe.status !== 0) return `cannot make a network namespace with loopback (needs root, unshare, ip, nsenter and curl): ${probe.stderr.toString().trim()}`;
  return undefined;
}

export async function createLoopbackNamespace(): Promise<LoopbackNamespace> {
  const holder: ChildProcess = spawn('unshare', ['-n', 'sh', '-c', 'ip link set lo up && echo up && exec sleep 3600'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const kill = () => holder.kill('SIGKILL');
  atTestProcessEnd(kill);
  await new Promise<void>((resolve, reject) => {
    let errors = '';
    holder.stderr!.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    holder.stdout!.once('data', () => resolve());
    holder.once('exit', (code) => reject(new Error(`unshare exited ${code}: ${errors.trim()}`)));
  });
  const launcher = ['nsenter', `--net=/proc/${holder.pid}/ns/net`, '--'];
  return {
    launcher,
    async curl(args) {
      const [command, ...prefix] = launcher;
      const { stdout } = await execFileAsync(command!, [...prefix, 'curl', '-s', '-w', '\n%{http_code}', ...args], { maxBuffer: 16 * 1024 * 1024 });
      const cut = stdout.lastIndexOf('\n');
      const text = stdout.slice(0, cut);
      let body: unknown = text;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        // not JSON: the text is the body
      }
      return { status: Number(stdout.slice(cut + 1)), body, text };
    },
    close: kill,
  };
}

/** Whether `pid` runs (a zombie no one has reaped yet does not). */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Pids of processes whose command line mentions `needle` (e.g. a data directory). */
export function processesMentioning(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(needle)) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}
