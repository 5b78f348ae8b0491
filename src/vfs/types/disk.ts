/**
 * The `disk` filesystem type: an ext2/ext3/ext4 filesystem inside a disk image, read-only, read by
 * our own reader (src/disk/ext) without mounting anything: `vfs.mount("disk", "/mnt", {image})`.
 * Inode numbers, owners, nanosecond times, device numbers and link counts come from the filesystem.
 */

import { type BlockSource, RawFile, Slice } from "../../disk/block-source.ts";
import { FT_NAMES } from "../../disk/ext/directory.ts";
import { ExtFileSystem, type ExtOpenOptions } from "../../disk/ext/filesystem.ts";
import type { Inode } from "../../disk/ext/inode.ts";
import { BfcError } from "../../errors.ts";
import { fsError } from "../errors.ts";
import type {
  Capabilities,
  DirEntry,
  FileHandle,
  FileSystem,
  FileSystemType,
  FileType,
  NodeStat,
  StatFs,
} from "../filesystem.ts";
import { compareNames } from "../names.ts";

export interface DiskMountOptions {
  /** Host path of the disk image: a raw image or a bare filesystem image. */
  image: string;
  /** Byte offset of the filesystem inside the image (for example a partition's start); default 0. */
  offset?: number;
  /** Bytes of the image from `offset` that belong to the filesystem; default: to the image's end. */
  size?: number;
  /**
   * Partition number (GPT or MBR). Not available yet: it comes with the partition-table reader
   * (src/disk/open-disk.ts); until then pass the partition's byte `offset`.
   */
  partition?: number;
  /** Read a filesystem whose journal was not replayed (its metadata may be stale). */
  ignoreJournal?: boolean;
  /** Verify metadata_csum checksums (default true). */
  verifyChecksums?: boolean;
  /** Metadata cache budget in bytes (default 16 MiB). */
  cacheBytes?: number;
}

const CAPS: Capabilities = { readonly: true, symlinks: true, structuralLookup: true };
const EXT_SUPER_MAGIC = 0xef53;
/** Reads above this size are split so an async read never holds the event loop for long. */
const ASYNC_CHUNK = 1 << 20;
/** Node's largest Buffer; a larger file cannot be read whole. */
const MAX_WHOLE_FILE = 2 ** 31 - 1;

function nsToMs(ns: bigint): number {
  const sec = ns / 1_000_000_000n;
  return Number(sec) * 1e3 + Number(ns - sec * 1_000_000_000n) / 1e6;
}

function count(value: unknown, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw fsError("EINVAL", `disk: options.${what} must be a non-negative integer`, "INVALID_ARGUMENT");
  }
  return value;
}

/**
 * The one place where mount options become the filesystem's block source.
 *
 * PLUG-IN POINT for the disk-image reader (src/disk/open-disk.ts, in progress): its
 * `openPartition(image, { partition })` will open raw and QCOW2 images and select a GPT/MBR
 * partition; it replaces the RawFile + Slice below, and `partition` is accepted from then on.
 */
function openSource(options: DiskMountOptions): BlockSource {
  if (options === null || typeof options !== "object") {
    throw fsError("EINVAL", "disk: options must be an object", "INVALID_ARGUMENT");
  }
  if (typeof options.image !== "string" || options.image === "") {
    throw fsError("EINVAL", "disk: options.image must be the path of a disk image", "INVALID_ARGUMENT");
  }
  if (options.partition !== undefined) {
    throw new BfcError(
      "ENOTSUP",
      "UNSUPPORTED",
      "disk: the partition option needs the partition-table reader, which is not built yet; pass the partition's byte offset as options.offset",
    );
  }
  const offset = count(options.offset, "offset") ?? 0;
  const size = count(options.size, "size");
  const file = new RawFile(options.image);
  if (offset === 0 && size === undefined) return file;
  try {
    const length = size ?? file.size - offset;
    if (length < 0) {
      throw new BfcError(
        "EINVAL",
        "INVALID_ARGUMENT",
        `disk: offset ${offset} is beyond the end of ${options.image}`,
      );
    }
    return new Slice(file, offset, length, `${options.image}@${offset}`, true);
  } catch (e) {
    file.close();
    throw e;
  }
}

function typeOfDirent(ft: number): FileType | undefined {
  return ft > 0 && ft < FT_NAMES.length ? (FT_NAMES[ft] as FileType) : undefined;
}

export class DiskFileSystem implements FileSystem {
  readonly capabilities = CAPS;
  readonly ext: ExtFileSystem;
  private readonly source: BlockSource;

  constructor(source: BlockSource, ext: ExtFileSystem) {
    this.source = source;
    this.ext = ext;
  }

  static open(options: DiskMountOptions): DiskFileSystem {
    const source = openSource(options);
    try {
      const extOptions: ExtOpenOptions = {
        ignoreJournal: options.ignoreJournal === true,
        verifyChecksums: options.verifyChecksums !== false,
      };
      const cache = count(options.cacheBytes, "cacheBytes");
      if (cache !== undefined) extOptions.cacheBytes = cache;
      return new DiskFileSystem(source, ExtFileSystem.open(source, extOptions));
    } catch (e) {
      source.close();
      throw e;
    }
  }

  private statOf(inode: Inode): NodeStat {
    const st: NodeStat = {
      type: inode.type,
      mode: inode.mode,
      size: inode.size,
      ino: inode.ino,
      nlink: inode.linksCount,
      uid: inode.uid,
      gid: inode.gid,
      rdev: inode.rdev,
      blocks: inode.blocks,
      mtimeMs: nsToMs(inode.mtimeNs),
      mtimeNs: inode.mtimeNs,
      atimeMs: nsToMs(inode.atimeNs),
      atimeNs: inode.atimeNs,
      ctimeMs: nsToMs(inode.ctimeNs),
      ctimeNs: inode.ctimeNs,
    };
    if (inode.crtimeNs !== undefined) {
      st.birthtimeNs = inode.crtimeNs;
      st.birthtimeMs = nsToMs(inode.crtimeNs);
    }
    return st;
  }

  private inodeAt(path: string): Inode {
    const inode = this.ext.resolve(path);
    if (!inode) throw fsError("ENOENT");
    return inode;
  }

  lstat(path: string): NodeStat | undefined {
    const inode = this.ext.resolve(path);
    return inode ? this.statOf(inode) : undefined;
  }

  readdir(path: string): DirEntry[] {
    const out: DirEntry[] = [];
    for (const e of this.ext.readdir(this.inodeAt(path))) {
      out.push({ name: e.name, type: typeOfDirent(e.fileType) ?? this.ext.inode(e.ino).type });
    }
    return out.sort((a, b) => compareNames(a.name, b.name));
  }

  readlink(path: string): string {
    return this.ext.readlink(this.inodeAt(path)).toString("utf8");
  }

  private fileAt(path: string): Inode {
    const inode = this.inodeAt(path);
    if (inode.type === "directory") throw fsError("EISDIR");
    // Device nodes, fifos and sockets have no content here; opening one must never reach the host.
    if (inode.type !== "file") throw fsError("ENXIO", `'${path}' is not a regular file`);
    return inode;
  }

  open(path: string): FileHandle {
    const inode = this.fileAt(path);
    const ext = this.ext;
    const st = this.statOf(inode);
    const read = (buffer: Uint8Array, offset: number, length: number, position: number): number =>
      ext.read(inode, buffer.subarray(offset, offset + length), position);
    return {
      syncReadCheap: true,
      stat: () => st,
      read,
      readAsync: async (buffer, offset, length, position) => {
        let done = 0;
        while (done < length) {
          const n = read(buffer, offset + done, Math.min(ASYNC_CHUNK, length - done), position + done);
          done += n;
          if (n < ASYNC_CHUNK || done >= length) break;
          await new Promise((resolve) => setImmediate(resolve));
        }
        return done;
      },
      close: () => {},
    };
  }

  private wholeFile(inode: Inode): Buffer {
    if (inode.size > MAX_WHOLE_FILE)
      throw fsError("EFBIG", `disk: inode ${inode.ino} is too large to read whole`);
    return Buffer.allocUnsafe(inode.size);
  }

  readFile(path: string): Buffer {
    const inode = this.fileAt(path);
    const buf = this.wholeFile(inode);
    this.ext.read(inode, buf, 0);
    return buf;
  }

  async readFileAsync(path: string): Promise<Buffer> {
    const inode = this.fileAt(path);
    const buf = this.wholeFile(inode);
    for (let done = 0; done < buf.length; done += ASYNC_CHUNK) {
      this.ext.read(inode, buf.subarray(done, Math.min(buf.length, done + ASYNC_CHUNK)), done);
      if (done + ASYNC_CHUNK < buf.length) await new Promise((resolve) => setImmediate(resolve));
    }
    return buf;
  }

  statfs(): StatFs {
    const sb = this.ext.sb;
    return {
      type: EXT_SUPER_MAGIC,
      bsize: sb.blockSize,
      blocks: sb.blocksCount,
      bfree: sb.freeBlocksCount,
      bavail: sb.freeBlocksCount,
      files: sb.inodesCount,
      ffree: sb.freeInodesCount,
    };
  }

  close(): void {
    this.ext.close();
    this.source.close();
  }
}

export const diskType: FileSystemType<DiskMountOptions> = {
  name: "disk",
  capabilities: CAPS,
  create: async (options) => DiskFileSystem.open(options),
  createSync: (options) => DiskFileSystem.open(options),
};
