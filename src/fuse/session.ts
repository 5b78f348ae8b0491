import fs from "node:fs";
import { IN_HEADER_SIZE, MAX_IO, MIN_READ_BUFFER, WRITE_IN_SIZE } from "./protocol.ts";

export interface LoopOptions {
  /** Called after each read with how long it blocked (ms) and the request it returned. */
  afterRead?: (waitedMs: number, request: Buffer) => void;
  /** Checked before each read: true ends the loop ("stopped"). */
  stop?: () => boolean;
}

/**
 * The request loop of one serving thread: blocking reads of /dev/fuse (each returns exactly one
 * request), each handed to `onRequest` before the next read. Returns "unmounted" when the mount is
 * gone (the kernel then fails reads with ENODEV), or "stopped". The buffer is reused: `onRequest`
 * must be done with it when it returns.
 */
export function serveRequests(
  fuseFd: number,
  onRequest: (request: Buffer, length: number) => void,
  options: LoopOptions = {},
): "unmounted" | "stopped" {
  const buf = readBuffer();
  for (;;) {
    if (options.stop?.()) return "stopped";
    const t0 = performance.now();
    let n: number;
    try {
      n = fs.readSync(fuseFd, buf, 0, buf.length, null);
    } catch (e) {
      const failed = readFailure(e);
      if (failed === "unmounted") return "unmounted";
      if (failed === "retry") continue;
      throw e;
    }
    if (n === 0) return "unmounted";
    options.afterRead?.(performance.now() - t0, buf);
    onRequest(buf, n);
  }
}

/**
 * What a failed read of /dev/fuse means: the mount is gone (ENODEV); nothing to answer, read again
 * (a request interrupted before it was read, or a signal); or something else ("error").
 */
export function readFailure(e: unknown): "unmounted" | "retry" | "error" {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "ENODEV") return "unmounted";
  if (code === "ENOENT" || code === "EINTR" || code === "EAGAIN") return "retry";
  return "error";
}

/** A buffer for requests: the kernel refuses reads into buffers that could not hold its largest WRITE. */
export function newReadBuffer(): Buffer {
  return Buffer.allocUnsafe(Math.max(MIN_READ_BUFFER, IN_HEADER_SIZE + WRITE_IN_SIZE + MAX_IO + 4096));
}

let shared: Buffer | undefined;

/** The thread's read buffer. */
function readBuffer(): Buffer {
  shared ??= newReadBuffer();
  return shared;
}

/**
 * Writes complete replies to /dev/fuse (one write each, as the kernel requires). A reply to a
 * request the kernel gave up on (interrupted: ENOENT) or to an unmounted filesystem (ENODEV) has
 * no one waiting and is dropped; anything else is logged (a malformed reply is a bug here).
 */
export function replyWriter(
  fuseFd: number,
  log?: (line: string) => void,
): (reply: Buffer, length: number) => void {
  return (reply, length) => {
    try {
      fs.writeSync(fuseFd, reply, 0, length);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENODEV") return;
      log?.(`bfc mount: reply of ${length} bytes refused by the kernel: ${(e as Error).message}`);
    }
  };
}
