/**
 * The `disk` filesystem type: an ext2/ext3/ext4 filesystem inside a raw or QCOW2 disk image (a
 * partition of it, or the whole disk), read-only, read by our own reader (src/disk/ext) without
 * mounting anything: `vfs.mount("disk", "/mnt", {image, partition})`.
 * Inode numbers, owners, nanosecond times, device numbers and link counts come from the filesystem.
 */

import type { BackingPolicy } from "../../disk/backing-file.ts";
import { FT_NAMES } from "../../disk/ext/directory.ts";
import type { ExtFileSystem } from "../../disk/ext/filesystem.ts";
import type { Inode } from "../../disk/ext/inode.ts";
import { type ExtVolume, type ExtVolumeOptions, openExtVolume } from "../../disk/open-ext.ts";
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
  /** Host path of the disk image: raw or QCOW2, with a partition table or a bare filesystem. */
  image: string;
  /**
   * Partition number (GPT or MBR, as Linux numbers them; 0 is the whole disk). When omitted: the
   * whole disk if it has no partition table, else the one partition that holds a filesystem (with
   * several, the mount fails with AMBIGUOUS, listing them).
   */
  partition?: number;
  /** Byte offset of the filesystem inside the disk, instead of a partition number. */
  offset?: number;
  /** With `offset`: bytes of the disk from `offset` that belong to the filesystem; default: to its end. */
  size?: number;
  /**
   * QCOW2 backing files outside the image's own directory: "any", or directories they may lie in.
   * By default only files under the image's directory are followed.
   */
  allowBacking?: BackingPolicy;
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

/** Mount options become the filesystem's volume: image, partition (or offset), ext options. */
function openVolume(options: DiskMountOptions): ExtVolume {
  if (options === null || typeof options !== "object") {
    throw fsError("EINVAL", "disk: options must be an object", "INVALID_ARGUMENT");
  }
  if (typeof options.image !== "string" || options.image === "") {
    throw fsError("EINVAL", "disk: options.image must be the path of a disk image", "INVALID_ARGUMENT");
  }
  const o: ExtVolumeOptions = {
    ignoreJournal: options.ignoreJournal === true,
    verifyChecksums: options.verifyChecksums !== false,
  };
  const partition = count(options.partition, "partition");
  const offset = count(options.offset, "offset");
  const size = count(options.size, "size");
  const cache = count(options.cacheBytes, "cacheBytes");
  if (partition !== undefined) o.partition = partition;
  if (offset !== undefined) o.offset = offset;
  if (size !== undefined) o.size = size;
  if (cache !== undefined) o.cacheBytes = cache;
  if (options.allowBacking !== undefined) o.allowBacking = options.allowBacking;
  return openExtVolume(options.image, o);
}

function typeOfDirent(ft: number): FileType | undefined {
  return ft > 0 && ft < FT_NAMES.length ? (FT_NAMES[ft] as FileType) : undefined;
}

export class DiskFileSystem implements FileSystem {
  readonly capabilities = CAPS;
  readonly ext: ExtFileSystem;
  /** The image, its partition table and the partition mounted (null: the whole disk or an offset). */
  readonly volume: ExtVolume;

  constructor(volume: ExtVolume) {
    this.volume = volume;
    this.ext = volume.fs;
  }

  static open(options: DiskMountOptions): DiskFileSystem {
    return new DiskFileSystem(openVolume(options));
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
    this.volume.close();
  }
}

export const diskType: FileSystemType<DiskMountOptions> = {
  name: "disk",
  capabilities: CAPS,
  create: async (options) => DiskFileSystem.open(options),
  createSync: (options) => DiskFileSystem.open(options),
};
