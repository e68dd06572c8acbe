/**
 * Last-resort cleanup of what a test file started (servers, processes) when its process ends
 * without its afterAll: on exit, and on SIGTERM, which is how the test runner ends a worker and
 * which skips the `exit` event.
 */
const cleanups = new Set<() => void>();
let installed = false;

export function atTestProcessEnd(cleanup: () => void): void {
  cleanups.add(cleanup);
  if (installed) return;
  installed = true;
  const runAll = () => {
    for (const run of [...cleanups]) {
      try {
        run();
      } catch {
        // the others still run
      }
    }
    cleanups.clear();
  };
  process.once('exit', runAll);
  process.once('SIGTERM', () => {
    runAll();
    // End as the signal would have, unless someone else handles it.
    if (process.listenerCount('SIGTERM') === 0) process.kill(process.pid, 'SIGTERM');
  });
}
