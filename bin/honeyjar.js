#!/usr/bin/env node
// The `honeyjar` command. The TypeScript sources are compiled to dist/ when they changed (see
// compile.js), so there is no build step to forget; where dist/ cannot be written, they run through tsx.
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { compiledEntry } from './compile.js';

// A server allocates mostly short-lived objects per request. Left to itself, V8 lets the old
// generation grow to up to four times the live heap between full collections, which under load
// is most of an API process's resident memory; twice is enough to keep collections rare. A
// `--heap-growing-percent` given to node on its command line wins.
if (!process.execArgv.some((arg) => arg.startsWith('--heap-growing-percent') || arg.startsWith('--heap_growing_percent'))) {
  v8.setFlagsFromString('--heap-growing-percent=100');
}

async function loadCli() {
  const compiled = compiledEntry(fileURLToPath(new URL('..', import.meta.url)));
  if (compiled) return import(compiled.href);
  const { register } = await import('tsx/esm/api');
  register();
  return import('../src/cli.ts');
}

const { runCli } = await loadCli();
try {
  process.exitCode = await runCli(process.argv.slice(2));
} catch (error) {
  // Operators get the reason, not a stack trace (LOG_LEVEL=debug shows it).
  const message = error instanceof Error ? (error.cause instanceof Error ? `${error.message}: ${error.cause.message}` : error.message) : String(error);
  process.stderr.write(`honeyjar: ${message.split('\n')[0]}\n`);
  if (process.env.LOG_LEVEL === 'debug' || process.env.LOG_LEVEL === 'trace') console.error(error);
  process.exitCode = 1;
}
