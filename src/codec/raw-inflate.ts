import type zlib from "node:zlib";
import { lazyZlib } from "./builtins.ts";
import { drivenStream, type ZlibInternals } from "./zlib-handle.ts";

/**
 * zlib.inflateRawSync(data, { maxOutputLength: n, chunkSize: n, finishFlush: Z_SYNC_FLUSH }) for
 * an `out` of n bytes, decoded straight into `out` through one raw-inflate context reused call
 * after call (reset in between): a QCOW2 image of deflate-compressed clusters then allocates
 * neither a context nor an output buffer per cluster. Whatever follows the deflate stream in
 * `data` is ignored, as inflateRawSync ignores it.
 *
 * `inflateInto` answers true only when that call would have returned exactly n bytes (then in
 * `out`); on false, `out` holds garbage and the caller makes the call itself, for its result or
 * error.
 */
export class ReusableRawInflater {
  private z: ZlibInternals | undefined;
  private unsupported = false;
  private failed = false;
  private readonly probe = Buffer.alloc(1);

  private stream(): ZlibInternals | undefined {
    if (this.z || this.unsupported) return this.z;
    const z = drivenStream(lazyZlib().createInflateRaw(), () => {
      this.failed = true;
    });
    this.z = typeof z?._handle.reset === "function" ? z : undefined;
    this.unsupported = this.z === undefined;
    return this.z;
  }

  inflateInto(data: Uint8Array, out: Uint8Array): boolean {
    const z = this.stream();
    if (!z || out.length === 0) return false;
    const sync = lazyZlib().constants.Z_SYNC_FLUSH;
    const roomLeft = () => z._writeState[0] as number;
    let ok = false;
    this.failed = false;
    try {
      z._handle.writeSync(sync, data, 0, data.length, out, 0, out.length);
      if (!this.failed && roomLeft() === 0) {
        // Full. The one-shot call would go on with the input left; any byte more is an error
        // there (more than n bytes), and so is any error it meets.
        const left = z._writeState[1] as number;
        z._handle.writeSync(sync, data, data.length - left, left, this.probe, 0, 1);
        ok = !this.failed && roomLeft() === 1;
      }
      if (ok) z._handle.reset?.();
    } catch {
      ok = false;
    }
    if (!ok) {
      (this.z as unknown as zlib.InflateRaw | undefined)?.destroy();
      this.z = undefined;
    }
    return ok;
  }
}
