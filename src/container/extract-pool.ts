import { Worker } from "node:worker_threads";
import { BfcError, type ErrnoCode, type Reason } from "../errors.ts";
import { cachedWorkerEntry, workerExecArgv, workerScript } from "../worker-script.ts";
import type { FileCtx } from "./extract-files.ts";
import type { ExtractJob, ExtractJobDone, ExtractWorkerData, FileFailure } from "./extract-worker.ts";

interface Pending {
  resolve: (failures: (BfcError | null)[]) => void;
  reject: (e: Error) => void;
  worker: Worker;
}

function toError(f: FileFailure): BfcError {
  return new BfcError(f.code as ErrnoCode, f.reason as Reason, f.message, f.path ? { path: f.path } : {});
}

/**
 * Threads that write batches of small files while the calling thread walks the entries, so an
 * extraction of many files uses every core: each thread reads, decodes, checks and writes its
 * batch through its own Reader (extract-worker.ts). A batch is given to the thread with the fewest
 * outstanding; if a thread dies, its outstanding batches fail with the reason.
 */
export class ExtractPool {
  private readonly workers: Worker[] = [];
  private readonly load = new Map<Worker, number>();
  private readonly pending = new Map<number, Pending>();
  private seq = 0;

  constructor(threads: number, data: ExtractWorkerData) {
    for (let k = 0; k < threads; k++) {
      // The on-disk compile cache first: each thread compiles the reader again otherwise.
      const w = new Worker(cachedWorkerEntry(workerScript(import.meta.url, "extract-worker")), {
        eval: true,
        workerData: data,
        execArgv: workerExecArgv(),
      });
      this.load.set(w, 0);
      w.on("message", (m: ExtractJobDone) => {
        const p = this.pending.get(m.job);
        if (!p) return;
        this.pending.delete(m.job);
        this.load.set(w, (this.load.get(w) ?? 1) - 1);
        p.resolve(m.failures.map((f) => (f ? toError(f) : null)));
      });
      const lost = (why: string) => {
        this.load.delete(w);
        for (const [job, p] of this.pending) {
          if (p.worker !== w) continue;
          this.pending.delete(job);
          p.reject(new BfcError("EIO", "IO_ERROR", `an extraction thread stopped: ${why}`));
        }
      };
      w.on("error", (e) => lost(e.message));
      w.on("exit", (code) => lost(`exit code ${code}`));
      this.workers.push(w);
    }
  }

  /** The workerData of a pool extracting from `ctx.reader` into `ctx.root`. */
  static async data(ctx: FileCtx, bufferSize: number): Promise<ExtractWorkerData> {
    const key = await ctx.reader.knownKey();
    return {
      path: ctx.reader.path,
      fd: ctx.reader.descriptor,
      shared: ctx.reader.share(),
      ...(key ? { key } : {}),
      root: ctx.root,
      overwrite: ctx.overwrite,
      sameOwner: ctx.sameOwner,
      umask: ctx.umask,
      bufferSize,
    };
  }

  /** Writes the files at index positions `ids` to `outs`: per file, null or why it failed. */
  write(ids: number[], outs: string[]): Promise<(BfcError | null)[]> {
    let best: Worker | undefined;
    for (const [w, n] of this.load) if (best === undefined || n < (this.load.get(best) ?? 0)) best = w;
    if (!best) return Promise.reject(new BfcError("EIO", "IO_ERROR", "no extraction thread is left"));
    const w = best;
    const job = this.seq++;
    this.load.set(w, (this.load.get(w) ?? 0) + 1);
    return new Promise((resolve, reject) => {
      this.pending.set(job, { resolve, reject, worker: w });
      w.postMessage({ job, ids, outs } satisfies ExtractJob);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
