/** Size of the chunks small byte strings are packed into. */
const CHUNK = 64 * 1024;

/**
 * Small byte strings a writer keeps until it finishes (index paths, encoded entry attributes),
 * packed into chunks of their own and named by a number. Node's shared Buffer pool would pin a
 * whole slab per string, together with whatever short-lived bytes were allocated beside it; and
 * a Buffer view per string costs ~100 bytes of heap, more than most paths.
 */
export class ByteArena {
  private readonly chunks: Buffer[] = [];
  /** The chunk small strings go to, and how much of it is used. */
  private current = -1;
  private used = 0;

  /** Room for `n` bytes; the handle names them from now on (write them through `view`). */
  alloc(n: number): number {
    if (n > CHUNK / 8) {
      // A chunk of its own (offset 0), however long.
      this.chunks.push(Buffer.allocUnsafeSlow(n));
      return (this.chunks.length - 1) * CHUNK;
    }
    if (this.current < 0 || this.used + n > CHUNK) {
      this.chunks.push(Buffer.allocUnsafeSlow(CHUNK));
      this.current = this.chunks.length - 1;
      this.used = 0;
    }
    const handle = this.current * CHUNK + this.used;
    this.used += n;
    return handle;
  }

  /** A copy of `bytes`, by handle. */
  put(bytes: Uint8Array): number {
    const h = this.alloc(bytes.length);
    this.chunk(h).set(bytes, h % CHUNK);
    return h;
  }

  /** The UTF-8 bytes of `s`, by handle; `n` is their count. */
  putString(s: string, n = Buffer.byteLength(s)): number {
    const h = this.alloc(n);
    this.chunk(h).write(s, h % CHUNK, n);
    return h;
  }

  /** The `n` bytes at `handle`, as a view. */
  view(handle: number, n: number): Buffer {
    const at = handle % CHUNK;
    return this.chunk(handle).subarray(at, at + n);
  }

  /** The chunk holding `handle`; its bytes start at `handle % CHUNK`. */
  chunk(handle: number): Buffer {
    return this.chunks[Math.floor(handle / CHUNK)] as Buffer;
  }

  /** Offset of `handle`'s bytes inside `chunk(handle)`. */
  static offset(handle: number): number {
    return handle % CHUNK;
  }
}
