/**
 * Worker threads' scripts: the module beside the one starting it, `.ts` when the library runs
 * from source (tests, bench) and `.js` from dist/.
 */
export function workerScript(from: string, name: string): URL {
  const ext = from.endsWith(".ts") ? ".ts" : ".js";
  return new URL(`./${name}${ext}`, from);
}

/**
 * An `eval: true` worker entry that turns on Node's on-disk compile cache before importing
 * `script`: a thread that loads most of the library compiles it a few times faster from the cache.
 * `onImportError`: statements run (with the error as `e`) when the module fails to load.
 */
export function cachedWorkerEntry(script: URL, onImportError?: string): string {
  const load = `import(${JSON.stringify(script.href)})`;
  const handled = onImportError ? `${load}.catch((e) => { ${onImportError} })` : load;
  return `require("node:module").enableCompileCache?.(); ${handled};`;
}

/**
 * Node options for a worker thread with an `eval` entry (CommonJS): undefined (this process's, as
 * by default) unless they include `--input-type`, under which (`node --input-type=module -e …`)
 * that entry would not run at all; then the same without it. (Options given explicitly are
 * checked more strictly than inherited ones, hence only then.)
 */
export function workerExecArgv(): string[] | undefined {
  const all = process.execArgv;
  const kept = all.filter((a, i) => !a.startsWith("--input-type") && all[i - 1] !== "--input-type");
  return kept.length === all.length ? undefined : kept;
}
