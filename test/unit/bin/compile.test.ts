import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
// @ts-expect-error: plain JavaScript, without types
import { compiledEntry } from '../../../bin/compile.js';

const roots: string[] = [];
function project(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'honeyjar-compile-'));
  roots.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, 'src', path, '..'), { recursive: true });
    writeFileSync(join(root, 'src', path), text);
  }
  return root;
}

afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

describe('bin/compile.js', () => {
  it('compiles src/ to dist/ with the same layout, copies other files, and imports run as JavaScript', async () => {
    const root = project({
      'cli.ts': "import { greeting } from './lib/greet.js';\nexport const runCli = (): string => greeting('dist');\n",
      'lib/greet.ts': "import { readFileSync } from 'node:fs';\nconst data = JSON.parse(readFileSync(new URL('./data.json', import.meta.url), 'utf8')) as { word: string };\nexport function greeting(name: string): string { return [data.word, name].join(' '); }\n",
      'lib/data.json': '{"word":"hello"}',
    });
    const entry: URL = compiledEntry(root);
    expect(entry.pathname).toBe(join(root, 'dist', 'cli.js'));
    expect(existsSync(join(root, 'dist', 'lib', 'greet.js'))).toBe(true);
    const { runCli } = await import(entry.href);
    expect(runCli()).toBe('hello dist');
  });

  it('compiles again only when a source changed', () => {
    const root = project({ 'cli.ts': 'export const runCli = (): number => 1;\n' });
    compiledEntry(root);
    const first = readFileSync(join(root, 'dist', 'cli.js'), 'utf8');
    writeFileSync(join(root, 'dist', 'cli.js'), `${first}// kept\n`);
    compiledEntry(root);
    expect(readFileSync(join(root, 'dist', 'cli.js'), 'utf8')).toContain('// kept');
    writeFileSync(join(root, 'src', 'cli.ts'), 'export const runCli = (): number => 2;\n');
    // A later modification time, whatever the file system's clock resolution.
    utimesSync(join(root, 'src', 'cli.ts'), new Date(), new Date(Date.now() + 5_000));
    compiledEntry(root);
    const again = readFileSync(join(root, 'dist', 'cli.js'), 'utf8');
    expect(again).not.toContain('// kept');
    expect(again).toContain('2');
  });

  it('answers undefined when the sources do not compile, leaving no dist/ behind', () => {
    const root = project({ 'cli.ts': 'export const runCli = (: number => 1;\n' });
    expect(compiledEntry(root)).toBeUndefined();
    expect(existsSync(join(root, 'dist'))).toBe(false);
    expect(compiledEntry(join(root, 'no-such-project'))).toBeUndefined();
  });
});
