import fs from "node:fs";
import { BfcError, fromSystemError } from "../errors.ts";

/**
 * A byte-addressable, read-only view of a disk or part of one: a raw image file, a QCOW2 image
 * (with its backing chain), or a partition inside another source. Everything above it (partition
 * tables, filesystems) reads through this interface only.
 *
 * Reads are synchronous: the layers above make many small dependent reads (superblock, descriptor,
 * inode, extent node, directory block) that are served from the page cache or a block cache, where
 * a thread-pool hop per read would cost more than the read itself.
 */
export interface BlockSource {
  /** Size in bytes of the virtual disk (or slice). */
  readonly size: number;
  /** What this is, for messages: the image path, plus the partition when sliced. */
  readonly label: string;
  /**
   * Fills `buf` with the bytes at `position`. A read that extends past `size` fails (EIO,
   * reason TRUNCATED); it never returns short.
   */
  read(buf: Uint8Array, position: number): void;
  /** Releases file descriptors (idempotent). */
  close(): void;
}

export function outOfRange(src: BlockSource, position: number, length: number): BfcError {
  return new BfcError(
    "EIO",
    "TRUNCATED",
    `${src.label}: read of ${length} bytes at ${position} is beyond its end (${src.size} bytes)`,
    { path: src.label },
  );
}

function checkRange(src: BlockSource, position: number, length: number): void {
  if (!Number.isSafeInteger(position) || position < 0 || position + length > src.size) {
    throw outOfRange(src, position, length);
  }
}

/** A raw disk image (or a bare filesystem image): byte i of the disk is byte i of the file. */
export class RawFile implements BlockSource {
  readonly size: number;
  readonly label: string;
  private fd: number | null;

  constructor(file: string) {
    this.label = file;
    try {
      this.fd = fs.openSync(file, "r");
    } catch (e) {
      throw fromSystemError(e, `cannot open '${file}'`, file);
    }
    try {
      this.size = fs.fstatSync(this.fd).size;
    } catch (e) {
      fs.closeSync(this.fd);
      throw fromSystemError(e, `cannot stat '${file}'`, file);
    }
  }

  read(buf: Uint8Array, position: number): void {
    checkRange(this, position, buf.length);
    if (this.fd === null)
      throw new BfcError("EBADF", "CLOSED", `${this.label}: closed`, { path: this.label });
    let done = 0;
    while (done < buf.length) {
      let n: number;
      try {
        n = fs.readSync(this.fd, buf, done, buf.length - done, position + done);
      } catch (e) {
        throw fromSystemError(e, `cannot read '${this.label}'`, this.label);
      }
      if (n === 0) throw outOfRange(this, position, buf.length);
      done += n;
    }
  }

  close(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }
}

/** A window onto another source (a partition); does not own `parent` unless `owns` is set. */
export class Slice implements BlockSource {
  readonly size: number;
  readonly label: string;
  private readonly parent: BlockSource;
  private readonly offset: number;
  private readonly owns: boolean;

  constructor(parent: BlockSource, offset: number, size: number, label: string, owns = false) {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(size) || offset < 0 || size < 0) {
      throw new BfcError("EINVAL", "INVALID_ARGUMENT", `${label}: invalid slice ${offset}+${size}`);
    }
    if (offset + size > parent.size) {
      throw new BfcError(
        "EIO",
        "TRUNCATED",
        `${label}: ends at byte ${offset + size}, beyond the end of ${parent.label} (${parent.size} bytes)`,
        { path: parent.label },
      );
    }
    this.parent = parent;
    this.offset = offset;
    this.size = size;
    this.label = label;
    this.owns = owns;
  }

  read(buf: Uint8Array, position: number): void {
    checkRange(this, position, buf.length);
    this.parent.read(buf, this.offset + position);
  }

  close(): void {
    if (this.owns) this.parent.close();
  }
}

/** An in-memory disk (tests, and small images already read whole). */
export class BufferSource implements BlockSource {
  readonly size: number;
  readonly label: string;
  private readonly data: Uint8Array;

  constructor(data: Uint8Array, label = "(memory)") {
    this.data = data;
    this.size = data.length;
    this.label = label;
  }

  read(buf: Uint8Array, position: number): void {
    checkRange(this, position, buf.length);
    buf.set(this.data.subarray(position, position + buf.length));
  }

  close(): void {}
}

/** `length` bytes at `position` of `src` in a new Buffer. */
export function readBytes(src: BlockSource, position: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  src.read(buf, position);
  return buf;
}
