#!/usr/bin/env node
// The `honeyjar` command. TypeScript sources run through tsx, so there is no build step to forget.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../src/cli.ts');
try {
  process.exitCode = await runCli(process.argv.slice(2));
} catch (error) {
  // Operators get the reason, not a stack trace (LOG_LEVEL=debug shows it).
  const message = error instanceof Error ? (error.cause instanceof Error ? `${error.message}: ${error.cause.message}` : error.message) : String(error);
  process.stderr.write(`honeyjar: ${message.split('\n')[0]}\n`);
  if (process.env.LOG_LEVEL === 'debug' || process.env.LOG_LEVEL === 'trace') console.error(error);
  process.exitCode = 1;
}
