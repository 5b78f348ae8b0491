import { Worker } from "node:worker_threads";
import { BfcError, type ErrnoCode, type Reason } from "../errors.ts";
import { workerScript } from "../worker-script.ts";
import type { ImportOptions, ImportSummary } from "./import.ts";
import type { FromImportWorker, ImportRequest } from "./import-worker.ts";

/**
 * The young generation of the importing thread, in MiB. An import keeps state for every entry
 * while it allocates short-lived objects for each one; V8 answers that survival rate by growing the
 * young generation of the main thread towards 128 MiB, which shows as ~60 MiB more peak RSS on a
 * 30k-file image. A worker can be given a small one.
 */
const YOUNG_GENERATION_MB = 8;

/**
 * `importDiskImage` on a worker thread with a small young generation (so a large import's peak
 * memory stays near what it keeps alive), callbacks and `signal` relayed by messages. Progress is
 * reported at most every 100 ms.
 */
export function importInThread(
  image: string,
  container: string,
  options: ImportOptions = {},
): Promise<ImportSummary> {
  const { onProgress, onWarning, onEntry, signal, ...rest } = options;
  const request: ImportRequest = {
    image,
    container,
    options: rest,
    progress: onProgress !== undefined,
    entries: onEntry !== undefined,
  };
  const worker = new Worker(workerScript(import.meta.url, "import-worker"), {
    workerData: request,
    resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
  });
  const abort = () => worker.postMessage("abort");
  signal?.addEventListener("abort", abort, { once: true });
  return new Promise<ImportSummary>((resolve, reject) => {
    let settled = false;
    const settle = (f: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", abort);
      f();
    };
    worker.on("message", (m: FromImportWorker) => {
      switch (m.type) {
        case "progress":
          onProgress?.(m.p);
          break;
        case "warning":
          onWarning?.(m.message);
          break;
        case "entry":
          onEntry?.(m.path, m.kind as Parameters<NonNullable<ImportOptions["onEntry"]>>[1]);
          break;
        case "done":
          settle(() => resolve(m.summary as ImportSummary));
          break;
        case "error": {
          const e =
            m.code !== undefined && m.reason !== undefined
              ? new BfcError(m.code as ErrnoCode, m.reason as Reason, m.message, { path: m.path })
              : new BfcError("EIO", "IO_ERROR", `import failed: ${m.message}`);
          settle(() => reject(e));
          break;
        }
      }
    });
    worker.on("error", (e) => settle(() => reject(e)));
    worker.on("exit", (code) =>
      settle(() => reject(new BfcError("EIO", "IO_ERROR", `the import thread exited with status ${code}`))),
    );
  });
}
