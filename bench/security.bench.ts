/**
 * Times classifySecurity on every adversarial 32 KiB input (catastrophic-backtracking probes).
 * Run: npx tsx bench/security.bench.ts — exits non-zero if any input's max exceeds the budget.
 *
 * Each run is timed twice: wall clock and process CPU time. On a shared machine the wall clock of a
 * single run can jump by tens of milliseconds when the scheduler hands the core to another process,
 * and CPU time can exceed wall time while V8's compiler and GC threads work in parallel; neither is
 * the regex engine backtracking. The budget therefore applies to each run's min(wall, CPU): a run
 * over budget on both clocks really did that much work. Catastrophic backtracking is far over on both.
 */
import { performance } from 'node:perf_hooks';
import { classifySecurity } from '../src/domain/stages/security/security.service.js';
import { ADVERSARIAL_INPUTS } from '../test/domain/stages/security-vectors.js';

const BUDGET_MS = 50;
const WARMUP_RUNS = 5;
const RUNS = 20;

interface Row {
  name: string;
  median: number;
  maxWall: number;
  max: number;
}

const median = (sorted: number[]): number => (sorted[(sorted.length - 1) >> 1]! + sorted[sorted.length >> 1]!) / 2;

const rows: Row[] = [];
for (const { name, text } of ADVERSARIAL_INPUTS) {
  for (let i = 0; i < WARMUP_RUNS; i++) classifySecurity(text);
  const wall: number[] = [];
  const attributable: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    classifySecurity(text);
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    wall.push(wallMs);
    attributable.push(Math.min(wallMs, cpuMs));
  }
  wall.sort((a, b) => a - b);
  attributable.sort((a, b) => a - b);
  rows.push({ name, median: median(wall), maxWall: wall[RUNS - 1]!, max: attributable[RUNS - 1]! });
}

const width = Math.max(...rows.map((r) => r.name.length), 'input'.length);
const line = (cells: string[], flag = ''): string =>
  `${cells[0]!.padEnd(width)}${cells
    .slice(1)
    .map((c) => c.padStart(14))
    .join('')}${flag}`;
console.log(
  `classifySecurity on ${ADVERSARIAL_INPUTS.length} adversarial inputs of 32 KiB: ${RUNS} runs each after ${WARMUP_RUNS} warm-up runs`,
);
console.log(line(['input', 'median ms', 'max wall ms', 'max ms']));
console.log('-'.repeat(width + 42));
for (const r of rows) {
  console.log(
    line([r.name, r.median.toFixed(2), r.maxWall.toFixed(2), r.max.toFixed(2)], r.max > BUDGET_MS ? '  OVER BUDGET' : ''),
  );
}
console.log('-'.repeat(width + 42));
const worst = rows.reduce((a, b) => (b.max > a.max ? b : a));
const worstWall = rows.reduce((a, b) => (b.maxWall > a.maxWall ? b : a));
console.log(`max ${worst.max.toFixed(2)} ms (${worst.name}); budget ${BUDGET_MS} ms`);
console.log(`max wall clock ${worstWall.maxWall.toFixed(2)} ms (${worstWall.name}); max ms = per-run min(wall, CPU)`);

const over = rows.filter((r) => r.max > BUDGET_MS);
if (over.length > 0) {
  console.error(`${over.length} input(s) over the ${BUDGET_MS} ms budget: ${over.map((r) => r.name).join(', ')}`);
  process.exitCode = 1;
}
