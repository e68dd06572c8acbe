import type { ChildProcess } from 'node:child_process';

/**
 * Resolves once `marker` appears in a server's output; rejects (and kills it) when it exits first
 * or `timeoutMs` passes. Both pipes keep being read afterwards, so a chatty server never blocks on
 * a full pipe.
 */
export function waitForOutput(proc: ChildProcess, marker: string, what: string, timeoutMs: number): Promise<void> {
  let output = '';
  return new Promise<void>((resolve, reject) => {
    let ready = false;
    const timer = setTimeout(() => fail(new Error(`${what}: not ready within ${timeoutMs} ms\n${output}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      if (ready) return;
      output = (output + chunk.toString()).slice(-8192);
      if (output.includes(marker)) {
        ready = true;
        cleanup();
        resolve();
      }
    };
    const onExit = (code: number | null) => fail(new Error(`${what} exited (${code}) before it was ready\n${output}`));
    const cleanup = () => {
      clearTimeout(timer);
      proc.off('exit', onExit);
    };
    const fail = (error: Error) => {
      cleanup();
      proc.kill('SIGKILL');
      reject(error);
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    proc.once('exit', onExit);
  });
}
