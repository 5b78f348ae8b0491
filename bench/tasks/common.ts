/**
 * Shared by the task scripts: each runs one operation in a fresh process, timed from just before
 * the operation (after Node startup and module loading) to its end, and prints one JSON line:
 * `{ ms, rssKiB, ...details }`. rssKiB is the process's peak RSS, worker threads included.
 */
import type * as Lib from "../../src/index.ts";

/** The library: its TypeScript sources, or the built dist/ when BFC_BENCH_DIST is set (--dist). */
export async function loadLib(): Promise<typeof Lib> {
  const spec = process.env.BFC_BENCH_DIST ? "../../dist/index.js" : "../../src/index.ts";
  return (await import(spec)) as typeof Lib;
}

export async function runTask<A>(op: (args: A) => Promise<Record<string, unknown>>): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? "{}") as A;
  const t0 = performance.now();
  const details = await op(args);
  const ms = performance.now() - t0;
  const rssKiB = process.resourceUsage().maxRSS;
  process.stdout.write(JSON.stringify({ ms, rssKiB, ...details }) + "\n");
}
