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
 */
export function cachedWorkerEntry(script: URL): string {
  return `require("node:module").enableCompileCache?.(); import(${JSON.stringify(script.href)});`;
}
