import fs from "node:fs";
import { IN_HEADER_SIZE, MAX_IO, MIN_READ_BUFFER, WRITE_IN_SIZE } from "./protocol.ts";

/**
 * The request loop of one serving thread: blocking reads of /dev/fuse (each returns exactly one
 * request), each handed to `onRequest` before the next read. Returns when the mount is gone (the
 * kernel then fails reads with ENODEV). The buffer is reused: `onRequest` must be done with it when
 * it returns.
 */
export function serveRequests(fuseFd: number, onRequest: (request: Buffer, length: number) => void): void {
  // The kernel refuses reads into buffers that could not hold its largest WRITE request.
  const buf = Buffer.allocUnsafe(Math.max(MIN_READ_BUFFER, IN_HEADER_SIZE + WRITE_IN_SIZE + MAX_IO + 4096));
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(fuseFd, buf, 0, buf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENODEV") return;
      // A request interrupted before we read it, or a signal: read the next one.
      if (code === "ENOENT" || code === "EINTR" || code === "EAGAIN") continue;
      throw e;
    }
    if (n === 0) return;
    onRequest(buf, n);
  }
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
