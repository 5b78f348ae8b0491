/**
 * An extraction thread (see extract-pool.ts): writes batches of small files, each batch read,
 * decoded and checked through this thread's own Reader of the container, which attaches to the
 * index the main thread parsed (Reader.share) instead of reading it again.
 */
import { parentPort, workerData } from "node:worker_threads";
import { BfcError, fromSystemError } from "../errors.ts";
import { type FileCtx, writeFileSync } from "./extract-files.ts";
import { Reader, type ReaderShare } from "./reader.ts";

export interface ExtractWorkerData {
  path: string;
  /** The main thread's descriptor of the container (the same file, whatever its name now holds). */
  fd: number;
  shared: ReaderShare;
  /** The container key, when the main thread has it (encrypted entries). */
  key?: Uint8Array;
  root: string;
  overwrite: boolean;
  sameOwner: boolean;
  umask: number | undefined;
  /** Size of each of the two reused buffers: stored objects, and decoded contents. */
  bufferSize: number;
}

/** Files to write: index positions and output paths (relative to root), parents already made. */
export interface ExtractJob {
  job: number;
  ids: number[];
  outs: string[];
}

/** Why a file was not written, as it crosses threads. */
export interface FileFailure {
  code: string;
  reason: string;
  message: string;
  path?: string;
}

/** A job's outcome: one entry per file, null where it was written. */
export type ExtractJobDone = { job: number; failures: (FileFailure | null)[] };

function failure(err: unknown, path: string): FileFailure {
  const b = err instanceof BfcError ? err : fromSystemError(err, `cannot extract '${path}'`, path);
  return { code: b.code, reason: b.reason, message: b.message, path: b.path };
}

async function main(): Promise<void> {
  if (!parentPort) throw new Error("extract-worker.ts runs as a worker thread");
  const port = parentPort;
  const d = workerData as ExtractWorkerData;
  const reader = await Reader.open(d.path, {
    fd: d.fd,
    shared: d.shared,
    ...(d.key ? { key: Buffer.from(d.key) } : {}),
  });
  const ctx: FileCtx = {
    reader,
    root: d.root,
    overwrite: d.overwrite,
    sameOwner: d.sameOwner,
    umask: d.umask,
  };
  const scratch = Buffer.allocUnsafe(d.bufferSize);
  const decoded = Buffer.allocUnsafe(d.bufferSize);
  port.on("message", (j: ExtractJob) => {
    let got: (Buffer | BfcError)[];
    try {
      got = reader.readFilesSync(j.ids, scratch, decoded);
    } catch (err) {
      const f = failure(err, d.path);
      port.postMessage({ job: j.job, failures: j.ids.map(() => f) } satisfies ExtractJobDone);
      return;
    }
    const failures = j.ids.map((id, n) => {
      const e = reader.entryAt(id);
      try {
        writeFileSync(ctx, e, j.outs[n] as string, got[n] as Buffer | BfcError);
        return null;
      } catch (err) {
        return failure(err, e.path);
      }
    });
    port.postMessage({ job: j.job, failures } satisfies ExtractJobDone);
  });
}

// A thread that cannot open the container ends with the error; the pool fails its jobs with it.
await main();
