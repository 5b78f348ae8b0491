/**
 * Worker side of `importInThread` (import-thread.ts): runs importDiskImage and reports back.
 * Messages: in, one `ImportRequest` as workerData and later an optional "abort"; out, progress
 * (at most every 100 ms, and the last), warnings, entries (when asked), then "done" or "error".
 */
import { parentPort, workerData } from "node:worker_threads";
import { isBfcError } from "../errors.ts";
import { type ImportOptions, type ImportProgress, importDiskImage } from "./import.ts";

export interface ImportRequest {
  image: string;
  container: string;
  options: Omit<ImportOptions, "onProgress" | "onWarning" | "onEntry" | "signal">;
  progress: boolean;
  entries: boolean;
}

export type FromImportWorker =
  | { type: "progress"; p: ImportProgress }
  | { type: "warning"; message: string }
  | { type: "entry"; path: string; kind: string }
  | { type: "done"; summary: unknown }
  | { type: "error"; code?: string; reason?: string; message: string; path?: string };

if (!parentPort) throw new Error("import-worker must run in a worker thread");
const port = parentPort;
const req = workerData as ImportRequest;
const controller = new AbortController();
port.on("message", (m) => {
  if (m === "abort") controller.abort();
});

let last = 0;
const options: ImportOptions = {
  ...req.options,
  signal: controller.signal,
  onWarning: (message) => port.postMessage({ type: "warning", message } satisfies FromImportWorker),
};
if (req.progress) {
  options.onProgress = (p) => {
    const now = Date.now();
    const final = p.entries === p.totalEntries && p.bytes === p.totalBytes;
    if (now - last < 100 && !final) return;
    last = now;
    port.postMessage({ type: "progress", p: { ...p } } satisfies FromImportWorker);
  };
}
if (req.entries) {
  options.onEntry = (path, kind) =>
    port.postMessage({ type: "entry", path, kind } satisfies FromImportWorker);
}

try {
  const summary = await importDiskImage(req.image, req.container, options);
  port.postMessage({ type: "done", summary } satisfies FromImportWorker);
} catch (e) {
  const msg: FromImportWorker = isBfcError(e)
    ? { type: "error", code: e.code, reason: e.reason, message: e.message, path: e.path }
    : { type: "error", message: e instanceof Error ? e.message : String(e) };
  port.postMessage(msg);
}
port.close();
