import fs from "node:fs";

const BUFFER_SIZE = 4 * 1024 * 1024;
const DIRECT = 256 * 1024;

/**
 * Append-mostly output with write coalescing: small objects (a 64-byte directory object, a 2 KiB
 * file) are gathered into one buffer so 50k entries cost a few hundred write calls, not 50k.
 */
export class OutputFile {
  readonly fd: number;
  private buf = Buffer.allocUnsafe(BUFFER_SIZE);
  private used = 0;
  /** File offset of buf[0]. */
  private base: number;

  constructor(fd: number, start: number) {
    this.fd = fd;
    this.base = start;
  }

  /** Logical end: everything appended so far, flushed or not. */
  get position(): number {
    return this.base + this.used;
  }

  append(data: Uint8Array): void {
    if (data.length >= DIRECT) {
      // Buffered bytes (typically this object's header) and the payload in one system call.
      const head = this.buf.subarray(0, this.used);
      let done = 0;
      const total = head.length + data.length;
      if (head.length > 0) done = fs.writevSync(this.fd, [head, data], this.base);
      if (done < head.length) {
        writeAll(this.fd, head.subarray(done), this.base + done);
        done = head.length;
      }
      if (done < total) writeAll(this.fd, data.subarray(done - head.length), this.base + done);
      this.base += total;
      this.used = 0;
      return;
    }

    if (this.used + data.length > this.buf.length) this.flush();
    this.buf.set(data, this.used);
    this.used += data.length;
  }

  /** Room to build a small object in place; commit with `commit(n)`. */
  reserve(n: number): Buffer {
    if (this.used + n > this.buf.length) {
      this.flush();
      if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n);
    }
    return this.buf.subarray(this.used, this.used + n);
  }

  commit(n: number): void {
    this.used += n;
  }

  flush(): void {
    if (this.used === 0) return;
    writeAll(this.fd, this.buf.subarray(0, this.used), this.base);
    this.base += this.used;
    this.used = 0;
  }

  /** Overwrites bytes already appended (e.g. an object header patched after streaming). */
  patch(data: Uint8Array, position: number): void {
    if (position + data.length > this.base) this.flush();
    writeAll(this.fd, data, position);
  }

  /** Moves the logical end back (discarding what followed), for rewriting an object. */
  rewind(position: number): void {
    this.flush();
    this.base = position;
  }
}

export function writeAll(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) {
    done += fs.writeSync(fd, data, done, data.length - done, position + done);
  }
}
