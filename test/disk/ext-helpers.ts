/** Helpers shared by the ext reader tests. */
import { createHash } from "node:crypto";
import type { BlockSource } from "../../src/disk/block-source.ts";
import type { ExtFileSystem } from "../../src/disk/ext/filesystem.ts";
import type { Inode } from "../../src/disk/ext/inode.ts";
import { BfcError } from "../../src/errors.ts";

/** A BlockSource over a Buffer, for hand-made and corrupted images. */
export class BufferSource implements BlockSource {
  readonly size: number;
  readonly label: string;
  readonly data: Buffer;
  reads = 0;

  constructor(data: Buffer, label = "memory") {
    this.data = data;
    this.size = data.length;
    this.label = label;
  }

  read(buf: Uint8Array, position: number): void {
    this.reads++;
    if (!Number.isSafeInteger(position) || position < 0 || position + buf.length > this.size) {
      throw new BfcError(
        "EIO",
        "TRUNCATED",
        `${this.label}: read of ${buf.length} at ${position} beyond the end`,
      );
    }
    this.data.copy(buf, 0, position, position + buf.length);
  }

  close(): void {}
}

const CHUNK = 1 << 20;
const ZEROS = Buffer.alloc(CHUNK);
const SCRATCH = Buffer.alloc(CHUNK);

/** sha256 of a file's content, streamed through `runs` (holes hashed as zeros, data read with `read`). */
export function contentSha256(fs: ExtFileSystem, inode: Inode): string {
  const h = createHash("sha256");
  const buf = SCRATCH;
  let expected = 0;
  for (const run of fs.runs(inode)) {
    if (run.offset !== expected)
      throw new Error(`runs of inode ${inode.ino} skip from ${expected} to ${run.offset}`);
    expected = run.offset + run.length;
    for (let done = 0; done < run.length; ) {
      const n = Math.min(CHUNK, run.length - done);
      if (run.hole) h.update(ZEROS.subarray(0, n));
      else {
        const got = fs.read(inode, buf.subarray(0, n), run.offset + done);
        if (got !== n) throw new Error(`short read of inode ${inode.ino}`);
        h.update(buf.subarray(0, n));
      }
      done += n;
    }
  }
  if (expected !== inode.size)
    throw new Error(`runs of inode ${inode.ino} end at ${expected}, not ${inode.size}`);
  return h.digest("hex");
}

/** The whole content through one `read` call. */
export function readAll(fs: ExtFileSystem, file: number | Inode): Buffer {
  const inode = typeof file === "number" ? fs.inode(file) : file;
  const b = Buffer.alloc(inode.size);
  const n = fs.read(inode, b, 0);
  if (n !== inode.size) throw new Error(`read ${n} of ${inode.size} bytes of inode ${inode.ino}`);
  return b;
}
