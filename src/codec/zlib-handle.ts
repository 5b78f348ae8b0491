/**
 * node:zlib's streams compress and decompress on libuv's thread pool, and its one-shot sync calls
 * build and tear down a whole context (and an output buffer) per call. To reuse one context and
 * one output buffer call after call, synchronously, the codecs here drive a stream's native handle
 * the way node:zlib's own sync path does (`handle.writeSync` and the stream's write state). That
 * is node:zlib's internal interface: it is checked for before use, and every user falls back to
 * the public calls where it is missing or anything unexpected happens.
 */

/** The parts of a node:zlib stream that its own synchronous path drives. */
export interface ZlibInternals {
  _handle: {
    writeSync(
      flush: number,
      input: Uint8Array,
      inOff: number,
      inLen: number,
      out: Uint8Array,
      outOff: number,
      outLen: number,
    ): void;
    onerror: (message: string, errno: number) => void;
    /** Back to the start of a stream (deflate/inflate: zlib's *Reset). */
    reset?: () => void;
  };
  /** After writeSync: output room left, input left. */
  _writeState: Uint32Array;
  _finishFlushFlag: number;
}

/**
 * `stream` (a freshly made node:zlib stream) as a handle to drive, with its errors reported to
 * `onError` (synchronously, during writeSync), or undefined when node:zlib does not have the
 * expected internals.
 */
export function drivenStream(stream: object, onError: (e: Error) => void): ZlibInternals | undefined {
  const z = stream as Partial<ZlibInternals>;
  const ok =
    typeof z._handle?.writeSync === "function" &&
    z._writeState instanceof Uint32Array &&
    typeof z._finishFlushFlag === "number";
  if (!ok) return undefined;
  const full = z as ZlibInternals;
  full._handle.onerror = (message, errno) => onError(Object.assign(new Error(message), { errno }));
  // Errors reach onError; an unhandled 'error' event must not throw besides.
  (stream as { on?: (e: string, f: () => void) => void }).on?.("error", () => {});
  return full;
}
