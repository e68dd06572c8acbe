#!/usr/bin/env node
// The `honeyjar` command. The TypeScript sources are compiled to dist/ when they changed (see
// compile.js), so there is no build step to forget; where dist/ cannot be written, they run through tsx.
import { fileURLToPath } from 'node:url';
import { compiledEntry } from './compile.js';

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
