// Compiles src/ to dist/ (JavaScript, one file per module, same layout) when the sources changed,
// so that a server runs plain JavaScript: loading TypeScript through tsx keeps a loader thread
// and an esbuild process alive for the whole life of the process (about 75 MB resident).
// dist/ sits beside src/, so paths a module takes from import.meta.url (package.json, drizzle/)
// resolve as they do from src/; the other files of src/ (JSON, the dashboard's files) are copied.
import { buildSync } from 'esbuild';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

const STAMP = '.sources';

/** Every file under `dir`, with its size and modification time: what decides whether dist/ is current. */
function listSources(dir, root = dir, out = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) listSources(path, root, out);
    else if (entry.isFile()) {
      const stat = statSync(path);
      out.push(`${relative(root, path)} ${stat.size} ${stat.mtimeMs}`);
    }
  }
  return out;
}

/**
 * The URL of dist/cli.js, compiled first if src/ changed since; undefined when it cannot be
 * compiled or written (a read-only install), and the caller runs the TypeScript sources instead.
 */
export function compiledEntry(root) {
  const src = join(root, 'src');
  const dist = join(root, 'dist');
  let stamp;
  try {
    stamp = listSources(src).sort().join('\n');
  } catch {
    return undefined;
  }
  const current = () => {
    try {
      return readFileSync(join(dist, STAMP), 'utf8') === stamp;
    } catch {
      return false;
    }
  };
  const entry = pathToFileURL(join(dist, 'cli.js'));
  if (current()) return entry;
  const staging = join(root, `dist.tmp-${process.pid}`);
  try {
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    const files = stamp.split('\n').map((line) => line.slice(0, line.indexOf(' ')));
    const modules = files.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'));
    buildSync({
      entryPoints: modules.map((file) => join(src, file)),
      outdir: staging,
      outbase: src,
      bundle: false,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      // Stack traces map back to the sources with NODE_OPTIONS=--enable-source-maps.
      sourcemap: true,
      logLevel: 'error',
    });
    for (const file of files.filter((f) => !f.endsWith('.ts'))) {
      mkdirSync(join(staging, file, '..'), { recursive: true });
      cpSync(join(src, file), join(staging, file));
    }
    writeFileSync(join(staging, STAMP), stamp);
    // Swapped in whole: a process starting meanwhile sees the old tree or the new one.
    const old = join(root, `dist.old-${process.pid}`);
    if (existsSync(dist)) renameSync(dist, old);
    renameSync(staging, dist);
    rmSync(old, { recursive: true, force: true });
    return entry;
  } catch {
    rmSync(staging, { recursive: true, force: true });
    // Another process starting at the same time may have swapped in the same sources.
    return current() ? entry : undefined;
  }
}
