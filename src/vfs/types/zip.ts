/**
 * The `zip` filesystem type: a read-only view of a zip archive.
 *
 * yauzl parses the central directory once at mount; after that every read is ours, synchronous or
 * asynchronous, straight from the archive's file descriptor: the local header is checked, stored
 * members are read in place (true random access), and deflated members are inflated whole into an
 * LRU cache when they fit its budget, or else streamed from the start through a resumable inflater
 * whose memory does not grow with the member. Every byte handed out has passed the member's size and
 * CRC-32 check, except where a member is only partly read (positioned reads of stored members and of
 * members too big for the cache), where the check runs as soon as a handle has read the member
 * through to its end.
 */
import fs from "node:fs";
import zlib from "node:zlib";
import type { Entry, Options as YauzlOptions } from "yauzl";
import yauzl from "yauzl";
import { Inflater } from "../../codec/inflate.ts";
import { BfcError, fromSystemError, type Reason } from "../../errors.ts";
import { fsError } from "../errors.ts";
import type {
  Capabilities,
  DirEntry,
  FileHandle,
  FileSystem,
  FileSystemType,
  FileType,
  NodeStat,
  OpenFlags,
  StatFs,
} from "../filesystem.ts";

export interface ZipOptions {
  /** Host path of the archive. */
  path: string;
  /** Budget for decompressed members kept in memory (default 64 MiB). */
  cacheBytes?: number;
  /** Owner reported for every node (default: the archive file's owner). */
  uid?: number;
  gid?: number;
}

/** One central-directory record. */
export interface ZipMember {
  /** Position in the central directory; the node's ino is index + 2. */
  readonly index: number;
  /** The name as stored (decoded), before normalisation. */
  readonly name: string;
  readonly method: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly crc32: number;
  readonly localHeaderOffset: number;
  readonly externalAttributes: number;
  readonly versionMadeBy: number;
  readonly flags: number;
  readonly mtimeNs: bigint;
}

/** A central-directory record that did not become a node, and why. */
export interface SkippedMember {
  readonly index: number;
  readonly name: string;
  readonly reason: string;
}

const CAPABILITIES: Capabilities = {
  readonly: true,
  symlinks: true,
  structuralLookup: true,
  // The central directory is read once at mount.
  immutable: true,
};

export const DEFAULT_ZIP_CACHE_BYTES = 64 * 1024 * 1024;
/** Longest symlink target read at mount (PATH_MAX is 4096 on Linux). */
const MAX_SYMLINK_TARGET = 4096;
/** statfs f_type: there is no kernel magic for zip, so the local header signature ("PK\3\4"). */
const ZIP_FS_MAGIC = 0x04034b50;
const STATFS_BLOCK = 4096;

const LOCAL_HEADER_SIZE = 30;
const LOCAL_HEADER_SIGNATURE = 0x04034b50;
const FLAG_ENCRYPTED = 0x1;
const FLAG_UTF8 = 0x800;
const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;
const HOST_UNIX = 3;
/** Linux's limits: longer names could not be opened through any real path API anyway. */
const NAME_MAX = 255;
const PATH_MAX = 4096;
const EXTRA_UNICODE_PATH = 0x7075;
const EXTRA_EXTENDED_TIMESTAMP = 0x5455;
const EXTRA_NTFS = 0x000a;
const EXTRA_INFOZIP_UNIX_OLD = 0x5855;
const NTFS_EPOCH_OFFSET = 116444736000000000n;
/** fs.read and readSync move at most 2 GiB - 1 per call. */
const MAX_IO = 1 << 30;

const { S_IFMT, S_IFREG, S_IFDIR, S_IFLNK, O_WRONLY, O_RDWR } = fs.constants;

export const zipType: FileSystemType<ZipOptions> = {
  name: "zip",
  capabilities: CAPABILITIES,
  create: (options) => ZipFileSystem.mount(options),
};

// ---------------------------------------------------------------------------------------------
// Mount

interface CheckedOptions {
  path: string;
  cacheBytes: number;
  uid?: number;
  gid?: number;
}

function checkOptions(options: ZipOptions): CheckedOptions {
  if (options === null || typeof options !== "object") {
    throw fsError("EINVAL", "zip: options must be an object", "INVALID_ARGUMENT");
  }
  const { path, cacheBytes, uid, gid } = options;
  if (typeof path !== "string" || path === "") {
    throw fsError("EINVAL", "zip: options.path must be a non-empty string", "INVALID_ARGUMENT");
  }
  const count = (value: unknown, what: string): number | undefined => {
    if (value === undefined) return undefined;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
      throw fsError("EINVAL", `zip: options.${what} must be a non-negative integer`, "INVALID_ARGUMENT");
    }
    return value;
  };
  return {
    path,
    cacheBytes: count(cacheBytes, "cacheBytes") ?? DEFAULT_ZIP_CACHE_BYTES,
    uid: count(uid, "uid"),
    gid: count(gid, "gid"),
  };
}

function openFd(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.open(path, "r", (err, fd) => (err ? reject(fromSystemError(err, "zip: open", path)) : resolve(fd)));
  });
}

function fstat(fd: number, path: string): Promise<fs.BigIntStats> {
  return new Promise((resolve, reject) => {
    fs.fstat(fd, { bigint: true }, (err, st) =>
      err ? reject(fromSystemError(err, "zip: stat", path)) : resolve(st),
    );
  });
}

/**
 * Every central-directory record, in order. yauzl reports everything through events and callbacks;
 * the error listener stays attached for the ZipFile's life so that nothing yauzl emits late can
 * become an unhandled 'error' event. Names are decoded by us (decodeStrings: false) because yauzl's
 * own name validation aborts the whole listing at the first hostile name, and a hostile name must
 * only cost its own entry.
 */
function readCentralDirectory(fd: number, path: string): Promise<Entry[]> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      const sys = err as NodeJS.ErrnoException;
      if (sys && typeof sys.code === "string" && typeof sys.syscall === "string") {
        reject(fromSystemError(err, "zip: read central directory", path));
        return;
      }
      const detail = err instanceof Error ? err.message : String(err);
      reject(
        new BfcError("EIO", "BAD_HEADER", `not a readable zip archive: ${detail}`, { path, cause: err }),
      );
    };
    const options: YauzlOptions = {
      lazyEntries: true,
      autoClose: false,
      validateEntrySizes: true,
      decodeStrings: false,
      strictFileNames: false,
    };
    try {
      yauzl.fromFd(fd, options, (err, zip) => {
        if (err || !zip) {
          fail(err ?? new Error("yauzl returned no archive"));
          return;
        }
        const entries: Entry[] = [];
        zip.on("error", fail);
        zip.on("entry", (entry: Entry) => {
          entries.push(entry);
          zip.readEntry();
        });
        zip.on("end", () => {
          if (settled) return;
          settled = true;
          resolve(entries);
        });
        // Never zip.close(): with fromFd it would close our descriptor, which the reads keep using.
        zip.readEntry();
      });
    } catch (err) {
      fail(err);
    }
  });
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * The entry's name. The UTF-8 flag and the Info-ZIP Unicode Path field are honoured through yauzl;
 * without either, names that are valid UTF-8 are read as UTF-8 (Info-ZIP's zip on Unix stores the
 * raw bytes of UTF-8 names without flagging them) and only the rest as CP437, as the spec says.
 * Backslashes are kept (strict) so that normalisation can reject them.
 */
function decodeName(entry: Entry): string {
  const raw = entry.fileNameRaw;
  const flagged =
    (entry.generalPurposeBitFlag & FLAG_UTF8) !== 0 ||
    entry.extraFields.some((f) => f.id === EXTRA_UNICODE_PATH);
  if (!flagged) {
    try {
      return UTF8.decode(raw);
    } catch {
      // Not UTF-8: CP437 below.
    }
  }
  return yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, raw, entry.extraFields, true);
}

function dosYear(entry: Entry): number {
  return ((entry.lastModFileDate >> 9) & 0x7f) + 1980;
}

/**
 * Modification time in ns. Preference: Info-ZIP extended timestamp (what the zip CLI writes, whole
 * seconds in UTC), NTFS times (100 ns), the old Info-ZIP Unix field, and last the DOS fields, which
 * are local time with 2-second resolution.
 */
function memberMtimeNs(entry: Entry): bigint {
  let ntfs: bigint | undefined;
  let oldUnix: bigint | undefined;
  for (const field of entry.extraFields) {
    const data = field.data;
    if (field.id === EXTRA_EXTENDED_TIMESTAMP && data.length >= 5 && (data[0] & 1) !== 0) {
      let seconds = data.readUInt32LE(1);
      // The field is a signed time_t in older writers and unsigned in newer ones (past 2038); the DOS
      // date, always present, settles which.
      if (seconds >= 2 ** 31 && dosYear(entry) < 2038) seconds -= 2 ** 32;
      return BigInt(seconds) * 1_000_000_000n;
    }
    if (field.id === EXTRA_NTFS && ntfs === undefined && data.length >= 32) {
      if (data.readUInt16LE(4) === 1 && data.readUInt16LE(6) >= 24) {
        ntfs = (data.readBigUInt64LE(8) - NTFS_EPOCH_OFFSET) * 100n;
      }
    }
    if (field.id === EXTRA_INFOZIP_UNIX_OLD && oldUnix === undefined && data.length >= 8) {
      oldUnix = BigInt(data.readUInt32LE(4)) * 1_000_000_000n;
    }
  }
  if (ntfs !== undefined) return ntfs;
  if (oldUnix !== undefined) return oldUnix;
  const date = entry.lastModFileDate;
  const time = entry.lastModFileTime;
  const ms = new Date(
    dosYear(entry),
    ((date >> 5) & 0xf) - 1,
    date & 0x1f,
    (time >> 11) & 0x1f,
    (time >> 5) & 0x3f,
    (time & 0x1f) * 2,
  ).getTime();
  return BigInt(ms) * 1_000_000n;
}

function toMember(entry: Entry, index: number): ZipMember {
  return {
    index,
    name: decodeName(entry),
    method: entry.compressionMethod,
    compressedSize: entry.compressedSize,
    uncompressedSize: entry.uncompressedSize,
    crc32: entry.crc32 >>> 0,
    localHeaderOffset: entry.relativeOffsetOfLocalHeader,
    externalAttributes: entry.externalFileAttributes >>> 0,
    versionMadeBy: entry.versionMadeBy,
    flags: entry.generalPurposeBitFlag,
    mtimeNs: memberMtimeNs(entry),
  };
}

/**
 * The canonical path of a member name, or why it has none. Empty and "." components are dropped
 * (`a//b/` is `a/b`); anything that could name a place outside the root, or that another system
 * would read as a different path (backslash separators, drive letters, NUL), is refused.
 */
function canonicalName(name: string): { path: string; dir: boolean } | { reason: string } {
  if (name === "") return { reason: "empty name" };
  if (name.includes("\0")) return { reason: "NUL in name" };
  if (name.includes("\\")) return { reason: "backslash in name (a Windows path separator)" };
  if (name.startsWith("/")) return { reason: "absolute path" };
  if (/^[A-Za-z]:/.test(name)) return { reason: "drive-letter path" };
  const parts: string[] = [];
  for (const part of name.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") return { reason: "'..' component" };
    if (Buffer.byteLength(part) > NAME_MAX) return { reason: `component longer than ${NAME_MAX} bytes` };
    parts.push(part);
  }
  if (parts.length === 0) return { reason: "names the root" };
  const path = parts.join("/");
  // Also bounds the memory a deep name costs: one node and one key per implicit ancestor.
  if (Buffer.byteLength(path) >= PATH_MAX) return { reason: `path of ${PATH_MAX} bytes or more` };
  return { path, dir: name.endsWith("/") };
}

/**
 * Type and st_mode. Unix-made entries carry st_mode in the high half of the external attributes;
 * when its S_IFMT bits are missing the name decides. A trailing slash always means a directory, as
 * in unzip and libarchive: some writers put regular-file bits on directory entries, and taking them
 * at their word would turn the directory into a file and drop everything beneath it. Devices, fifos
 * and sockets have no meaning inside an archive and are served as the regular files their data is.
 */
function typeAndMode(member: ZipMember, dirByName: boolean): { type: FileType; mode: number } {
  const unixMode = member.versionMadeBy >> 8 === HOST_UNIX ? member.externalAttributes >>> 16 : 0;
  const perms = unixMode & 0o7777;
  const fmt = unixMode & S_IFMT;
  if (dirByName || fmt === S_IFDIR) return { type: "directory", mode: S_IFDIR | (perms || 0o755) };
  if (fmt === S_IFLNK) return { type: "symlink", mode: unixMode };
  if (fmt === S_IFREG) return { type: "file", mode: unixMode };
  if (fmt !== 0) return { type: "file", mode: S_IFREG | perms };
  return { type: "file", mode: S_IFREG | (perms || 0o644) };
}

interface ZipNode {
  type: FileType;
  stat: NodeStat;
  member?: ZipMember;
  target?: string;
  /** Directories: name → child. */
  children?: Map<string, ZipNode>;
  /** Directories: the listing, sorted by UTF-8 bytes, built once the tree is complete. */
  listing?: DirEntry[];
}

interface Candidate {
  path: string;
  member: ZipMember;
  type: FileType;
  mode: number;
  target?: string;
}

function msOf(ns: bigint): number {
  return Number(ns / 1000n) / 1000;
}

// ---------------------------------------------------------------------------------------------
// The filesystem

export class ZipFileSystem implements FileSystem {
  readonly capabilities: Capabilities = { ...CAPABILITIES };
  /** Host path of the archive. */
  readonly path: string;
  /** Every central-directory record, in order. */
  readonly members: readonly ZipMember[];
  /**
   * Records that are not in the tree: hostile or empty names, members beneath a non-directory,
   * unreadable symlinks, and duplicates (for one canonical path the last record wins, as when an
   * archive is extracted in order; the earlier ones are listed here).
   */
  readonly skipped: SkippedMember[] = [];
  private readonly archive: Archive;
  private readonly nodes = new Map<string, ZipNode>();
  private readonly uid: number;
  private readonly gid: number;
  private readonly archiveMtimeNs: bigint;
  private nextImplicitIno: number;

  /** Mounts the archive at `options.path`. */
  static async mount(options: ZipOptions): Promise<ZipFileSystem> {
    const checked = checkOptions(options);
    const fd = await openFd(checked.path);
    try {
      const st = await fstat(fd, checked.path);
      if (!st.isFile()) {
        throw fsError("EINVAL", `zip: ${checked.path} is not a regular file`, "INVALID_ARGUMENT");
      }
      // yauzl throws (not reports) past 2^52 bytes, from inside an fs callback.
      if (st.size > 2n ** 52n) throw fsError("EFBIG", `zip: ${checked.path} is too large`, "UNSUPPORTED");
      const entries = await readCentralDirectory(fd, checked.path);
      const zfs = new ZipFileSystem(checked, fd, st, entries.map(toMember));
      await zfs.build();
      return zfs;
    } catch (e) {
      fs.close(fd, () => {});
      throw e;
    }
  }

  private constructor(options: CheckedOptions, fd: number, st: fs.BigIntStats, members: ZipMember[]) {
    this.path = options.path;
    this.members = members;
    this.archive = new Archive(fd, Number(st.size), options.cacheBytes, options.path);
    this.uid = options.uid ?? Number(st.uid);
    this.gid = options.gid ?? Number(st.gid);
    this.archiveMtimeNs = st.mtimeNs;
    this.nextImplicitIno = members.length + 2;
  }

  private skip(member: ZipMember, reason: string): void {
    this.skipped.push({ index: member.index, name: member.name, reason });
  }

  private async build(): Promise<void> {
    const byPath = new Map<string, Candidate>();
    for (const member of this.members) {
      const name = canonicalName(member.name);
      if ("reason" in name) {
        this.skip(member, name.reason);
        continue;
      }
      const previous = byPath.get(name.path);
      if (previous) {
        this.skip(previous.member, `duplicate of entry ${member.index} (${member.name}), which wins`);
        byPath.delete(name.path);
      }
      byPath.set(name.path, { path: name.path, member, ...typeAndMode(member, name.dir) });
    }

    // Targets first, so that a symlink dropped here no longer shadows the entries beneath its path.
    const links = [...byPath.values()].filter((c) => c.type === "symlink");
    for (let i = 0; i < links.length; i += 16) {
      await Promise.all(
        links.slice(i, i + 16).map(async (c) => {
          try {
            c.target = await this.readSymlinkTarget(c.member);
          } catch (e) {
            byPath.delete(c.path);
            this.skip(c.member, `symlink target: ${(e as Error).message}`);
          }
        }),
      );
    }

    const root = this.directoryNode(1, S_IFDIR | 0o755, this.archiveMtimeNs);
    this.nodes.set("", root);
    // Shallow paths first: every explicit ancestor of a path is then in the tree before it, so a
    // missing parent is an implicit directory and a non-directory parent blocks the path. Walking
    // down by component keeps this linear in the name's length, however deep a hostile name is.
    const ordered = [...byPath.values()]
      .map((c) => ({ c, parts: c.path.split("/") }))
      .sort((a, b) => a.parts.length - b.parts.length);
    outer: for (const { c, parts } of ordered) {
      let dir = root;
      let prefix = "";
      for (let k = 0; k < parts.length - 1; k++) {
        prefix = k === 0 ? parts[0] : `${prefix}/${parts[k]}`;
        let next = dir.children!.get(parts[k]);
        if (!next) {
          next = this.directoryNode(this.nextImplicitIno++, S_IFDIR | 0o755, this.archiveMtimeNs);
          dir.children!.set(parts[k], next);
          this.nodes.set(prefix, next);
        } else if (next.type !== "directory") {
          const m = next.member!;
          this.skip(c.member, `beneath ${next.type} entry ${m.index} (${m.name})`);
          continue outer;
        }
        dir = next;
      }
      const node = this.memberNode(c);
      dir.children!.set(parts[parts.length - 1], node);
      this.nodes.set(c.path, node);
    }

    for (const node of this.nodes.values()) {
      if (!node.children) continue;
      let subdirs = 0;
      const keyed: { key: Buffer; entry: DirEntry }[] = [];
      for (const [name, child] of node.children) {
        if (child.type === "directory") subdirs++;
        keyed.push({ key: Buffer.from(name, "utf8"), entry: { name, type: child.type } });
      }
      keyed.sort((a, b) => Buffer.compare(a.key, b.key));
      node.listing = keyed.map((k) => k.entry);
      node.stat.nlink = 2 + subdirs;
    }
  }

  private directoryNode(ino: number, mode: number, mtimeNs: bigint, member?: ZipMember): ZipNode {
    return {
      type: "directory",
      member,
      children: new Map(),
      stat: {
        type: "directory",
        mode,
        size: 0,
        ino,
        nlink: 2,
        uid: this.uid,
        gid: this.gid,
        rdev: 0,
        blocks: 0,
        mtimeMs: msOf(mtimeNs),
        mtimeNs,
      },
    };
  }

  private memberNode(c: Candidate): ZipNode {
    const m = c.member;
    if (c.type === "directory") return this.directoryNode(m.index + 2, c.mode, m.mtimeNs, m);
    return {
      type: c.type,
      member: m,
      target: c.target,
      stat: {
        type: c.type,
        mode: c.mode,
        size: m.uncompressedSize,
        ino: m.index + 2,
        nlink: 1,
        uid: this.uid,
        gid: this.gid,
        rdev: 0,
        blocks: Math.ceil(m.compressedSize / 512),
        mtimeMs: msOf(m.mtimeNs),
        mtimeNs: m.mtimeNs,
      },
    };
  }

  private async readSymlinkTarget(m: ZipMember): Promise<string> {
    checkDecodable(m);
    if (m.uncompressedSize > MAX_SYMLINK_TARGET) throw new Error(`longer than ${MAX_SYMLINK_TARGET} bytes`);
    // Deflate adds a few bytes per 64 KiB at worst; anything bigger is not a short target.
    if (m.compressedSize > MAX_SYMLINK_TARGET + 64) throw new Error("compressed size out of range");
    const data = await this.archive.decodeAsync(m, await this.archive.dataStartAsync(m));
    if (data.length === 0) throw new Error("empty");
    if (data.includes(0)) throw new Error("NUL in target");
    return data.toString("utf8");
  }

  // FileSystem -----------------------------------------------------------------------------

  lstat(path: string): NodeStat | undefined {
    const node = this.nodes.get(path);
    return node ? { ...node.stat } : undefined;
  }

  readdir(path: string): DirEntry[] {
    const node = this.nodes.get(path);
    if (!node) throw fsError("ENOENT");
    if (!node.listing) throw fsError("ENOTDIR");
    return node.listing.map((e) => ({ ...e }));
  }

  readlink(path: string): string {
    const node = this.nodes.get(path);
    if (!node) throw fsError("ENOENT");
    if (node.target === undefined) throw fsError("EINVAL", "not a symbolic link", "NOT_A_SYMLINK");
    return node.target;
  }

  open(path: string, flags: OpenFlags, _mode: number): FileHandle {
    const node = this.openable(path, flags);
    const dataStart = this.archive.dataStartSync(node.member!);
    return new ZipHandle(this.archive, node, dataStart);
  }

  async openAsync(path: string, flags: OpenFlags, _mode: number): Promise<FileHandle> {
    const node = this.openable(path, flags);
    const dataStart = await this.archive.dataStartAsync(node.member!);
    return new ZipHandle(this.archive, node, dataStart);
  }

  readFile(path: string): Buffer {
    const m = this.openable(path, 0).member!;
    return this.archive.readWholeSync(m, this.archive.dataStartSync(m));
  }

  async readFileAsync(path: string): Promise<Buffer> {
    const m = this.openable(path, 0).member!;
    return this.archive.readWholeAsync(m, await this.archive.dataStartAsync(m));
  }

  statfs(): StatFs {
    return {
      type: ZIP_FS_MAGIC,
      bsize: STATFS_BLOCK,
      blocks: Math.ceil(this.archive.size / STATFS_BLOCK),
      bfree: 0,
      bavail: 0,
      files: this.nodes.size,
      ffree: 0,
    };
  }

  close(): Promise<void> {
    return this.archive.close();
  }

  private openable(path: string, flags: OpenFlags): ZipNode {
    this.archive.assertOpen();
    const node = this.nodes.get(path);
    if (!node) throw fsError("ENOENT");
    if (flags & (O_WRONLY | O_RDWR)) throw fsError("EROFS", "zip archives are read-only", "UNSUPPORTED");
    if (node.type === "directory") throw fsError("EISDIR");
    if (node.type === "symlink") throw fsError("ELOOP", "open of a symbolic link itself", "NOT_A_FILE");
    checkDecodable(node.member!);
    return node;
  }
}

/** Refuses, at open time, members that no read could decode. */
function checkDecodable(m: ZipMember): void {
  if (m.flags & FLAG_ENCRYPTED) {
    throw fsError("EACCES", `${m.name}: encrypted zip members are not supported`, "UNSUPPORTED");
  }
  if (m.method !== METHOD_STORED && m.method !== METHOD_DEFLATE) {
    throw fsError("ENOTSUP", `${m.name}: zip compression method ${m.method} is not supported`, "UNSUPPORTED");
  }
}

function corruptMember(m: ZipMember, reason: Reason, detail: string): BfcError {
  return fsError("EIO", `${m.name}: ${detail}`, reason);
}

function checkDecoded(m: ZipMember, data: Uint8Array): void {
  if (data.length !== m.uncompressedSize) {
    throw corruptMember(
      m,
      "SIZE_MISMATCH",
      `decoded to ${data.length} bytes, expected ${m.uncompressedSize}`,
    );
  }
  const crc = zlib.crc32(data);
  if (crc !== m.crc32) {
    throw corruptMember(m, "CRC_MISMATCH", `CRC-32 ${hex(crc)} does not match the recorded ${hex(m.crc32)}`);
  }
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}

function inflateFailure(m: ZipMember, e: unknown): BfcError {
  const err = e as NodeJS.ErrnoException;
  if (err?.code === "ERR_BUFFER_TOO_LARGE") {
    return corruptMember(
      m,
      "SIZE_MISMATCH",
      `inflates to more than the recorded ${m.uncompressedSize} bytes`,
    );
  }
  return corruptMember(m, "DECOMPRESS_FAILED", `invalid deflate data: ${err?.message ?? String(e)}`);
}

// ---------------------------------------------------------------------------------------------
// The archive file: positioned reads, local headers, whole-member decoding and its cache

class Archive {
  readonly size: number;
  readonly cacheBudget: number;
  private readonly path: string;
  private fd: number;
  private readonly dataStarts = new Map<number, number>();
  private readonly cache = new LruCache();
  private readonly loading = new Map<number, Promise<Buffer>>();
  private inFlight = 0;
  private drained?: () => void;
  private closing?: Promise<void>;

  constructor(fd: number, size: number, cacheBudget: number, path: string) {
    this.fd = fd;
    this.size = size;
    this.cacheBudget = cacheBudget;
    this.cache.budget = cacheBudget;
    this.path = path;
  }

  assertOpen(): void {
    if (this.closing) throw fsError("EBADF", "zip filesystem is closed");
  }

  /** Whether a member is decoded whole into the cache (rather than streamed). */
  cacheable(m: ZipMember): boolean {
    return m.method === METHOD_DEFLATE && m.uncompressedSize <= this.cacheBudget;
  }

  preadSync(m: ZipMember, buf: Uint8Array, offset: number, length: number, position: number): void {
    this.assertOpen();
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        n = fs.readSync(this.fd, buf, offset + done, Math.min(length - done, MAX_IO), position + done);
      } catch (e) {
        throw fromSystemError(e, `zip: read ${m.name}`, this.path);
      }
      if (n === 0) throw corruptMember(m, "TRUNCATED", "archive ends inside the member");
      done += n;
    }
  }

  async pread(
    m: ZipMember,
    buf: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<void> {
    let done = 0;
    while (done < length) {
      this.assertOpen();
      const n = await this.readOnce(m, buf, offset + done, Math.min(length - done, MAX_IO), position + done);
      if (n === 0) throw corruptMember(m, "TRUNCATED", "archive ends inside the member");
      done += n;
    }
  }

  /** One fs.read, counted so that close() waits for it before the descriptor number can be reused. */
  private readOnce(m: ZipMember, buf: Uint8Array, offset: number, length: number, position: number) {
    this.inFlight++;
    return new Promise<number>((resolve, reject) => {
      fs.read(this.fd, buf, offset, length, position, (err, n) => {
        if (--this.inFlight === 0) this.drained?.();
        if (err) reject(fromSystemError(err, `zip: read ${m.name}`, this.path));
        else resolve(n);
      });
    });
  }

  private checkLocalHeader(m: ZipMember, header: Buffer, n: number): number {
    if (n < LOCAL_HEADER_SIZE) throw corruptMember(m, "TRUNCATED", "archive ends inside the local header");
    const signature = header.readUInt32LE(0);
    if (signature !== LOCAL_HEADER_SIGNATURE) {
      throw corruptMember(
        m,
        "BAD_OBJECT",
        `bad local header signature ${hex(signature)} at ${m.localHeaderOffset}`,
      );
    }
    const start = m.localHeaderOffset + LOCAL_HEADER_SIZE + header.readUInt16LE(26) + header.readUInt16LE(28);
    if (start + m.compressedSize > this.size) {
      throw corruptMember(
        m,
        "TRUNCATED",
        `member data ends past the end of the archive (${this.size} bytes)`,
      );
    }
    this.dataStarts.set(m.index, start);
    return start;
  }

  dataStartSync(m: ZipMember): number {
    const known = this.dataStarts.get(m.index);
    if (known !== undefined) return known;
    this.assertOpen();
    const header = Buffer.alloc(LOCAL_HEADER_SIZE);
    let n = 0;
    if (m.localHeaderOffset < this.size) {
      try {
        n = fs.readSync(this.fd, header, 0, LOCAL_HEADER_SIZE, m.localHeaderOffset);
      } catch (e) {
        throw fromSystemError(e, `zip: read ${m.name}`, this.path);
      }
    }
    return this.checkLocalHeader(m, header, n);
  }

  async dataStartAsync(m: ZipMember): Promise<number> {
    const known = this.dataStarts.get(m.index);
    if (known !== undefined) return known;
    this.assertOpen();
    const header = Buffer.alloc(LOCAL_HEADER_SIZE);
    const n =
      m.localHeaderOffset < this.size
        ? await this.readOnce(m, header, 0, LOCAL_HEADER_SIZE, m.localHeaderOffset)
        : 0;
    return this.checkLocalHeader(m, header, n);
  }

  /** The whole member, checked; a fresh buffer. */
  decodeSync(m: ZipMember, dataStart: number): Buffer {
    const raw = Buffer.allocUnsafe(m.compressedSize);
    this.preadSync(m, raw, 0, raw.length, dataStart);
    let data: Buffer = raw;
    if (m.method === METHOD_DEFLATE) {
      try {
        data = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, m.uncompressedSize) });
      } catch (e) {
        throw inflateFailure(m, e);
      }
    }
    checkDecoded(m, data);
    return data;
  }

  async decodeAsync(m: ZipMember, dataStart: number): Promise<Buffer> {
    const raw = Buffer.allocUnsafe(m.compressedSize);
    await this.pread(m, raw, 0, raw.length, dataStart);
    let data: Buffer = raw;
    if (m.method === METHOD_DEFLATE) {
      data = await new Promise<Buffer>((resolve, reject) => {
        zlib.inflateRaw(raw, { maxOutputLength: Math.max(1, m.uncompressedSize) }, (err, out) =>
          err ? reject(inflateFailure(m, err)) : resolve(out),
        );
      });
    }
    checkDecoded(m, data);
    return data;
  }

  /** The decoded member from the cache (shared: never hand it out or modify it). */
  cachedSync(m: ZipMember, dataStart: number): Buffer {
    let data = this.cache.get(m.index);
    if (!data) {
      data = this.decodeSync(m, dataStart);
      this.cache.set(m.index, data);
    }
    return data;
  }

  cachedAsync(m: ZipMember, dataStart: number): Promise<Buffer> {
    const data = this.cache.get(m.index);
    if (data) return Promise.resolve(data);
    let pending = this.loading.get(m.index);
    if (!pending) {
      pending = this.decodeAsync(m, dataStart).then(
        (decoded) => {
          this.loading.delete(m.index);
          if (!this.closing) this.cache.set(m.index, decoded);
          return decoded;
        },
        (e: unknown) => {
          this.loading.delete(m.index);
          throw e;
        },
      );
      this.loading.set(m.index, pending);
    }
    return pending;
  }

  readWholeSync(m: ZipMember, dataStart: number): Buffer {
    // The caller owns what it gets: a copy of a cached member, else the fresh decode.
    return this.cacheable(m) ? Buffer.from(this.cachedSync(m, dataStart)) : this.decodeSync(m, dataStart);
  }

  async readWholeAsync(m: ZipMember, dataStart: number): Promise<Buffer> {
    return this.cacheable(m)
      ? Buffer.from(await this.cachedAsync(m, dataStart))
      : this.decodeAsync(m, dataStart);
  }

  close(): Promise<void> {
    if (!this.closing) {
      this.cache.clear();
      this.closing = new Promise<void>((resolve) => {
        const release = (): void => {
          const fd = this.fd;
          this.fd = -1;
          fs.close(fd, () => resolve());
        };
        if (this.inFlight === 0) release();
        else this.drained = release;
      });
    }
    return this.closing;
  }
}

/** Decoded members by index, least recently used first, within a byte budget. */
class LruCache {
  budget = 0;
  private readonly map = new Map<number, Buffer>();
  private bytes = 0;

  get(key: number): Buffer | undefined {
    const value = this.map.get(key);
    if (value) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }

  set(key: number, value: Buffer): void {
    if (value.length > this.budget) return;
    const old = this.map.get(key);
    if (old) {
      this.map.delete(key);
      this.bytes -= old.length;
    }
    this.map.set(key, value);
    this.bytes += value.length;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.budget) break;
      this.map.delete(k);
      this.bytes -= v.length;
    }
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Open files

class ZipHandle implements FileHandle {
  private readonly archive: Archive;
  private readonly node: ZipNode;
  private readonly member: ZipMember;
  private readonly dataStart: number;
  private closed = false;
  /** Stored members: CRC of the bytes read so far when reads have been sequential from 0. */
  private seqPos = 0;
  private seqCrc = 0;
  /** Members too big for the cache: the streaming decoder and the tail of its async work queue. */
  private cursor?: InflateCursor;
  private cursorBusy = false;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(archive: Archive, node: ZipNode, dataStart: number) {
    this.archive = archive;
    this.node = node;
    this.member = node.member!;
    this.dataStart = dataStart;
  }

  stat(): NodeStat {
    return { ...this.node.stat };
  }

  /** Bytes to read, after checking the arguments; 0 at or past the end. */
  private span(buffer: Uint8Array, offset: number, length: number, position: number): number {
    if (this.closed) throw fsError("EBADF");
    if (!Number.isSafeInteger(position) || position < 0) throw fsError("EINVAL", `bad position ${position}`);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw fsError("EINVAL", "bad offset or length");
    }
    this.archive.assertOpen();
    return Math.max(0, Math.min(length, buffer.byteLength - offset, this.member.uncompressedSize - position));
  }

  read(buffer: Uint8Array, offset: number, length: number, position: number): number {
    const n = this.span(buffer, offset, length, position);
    if (n === 0) return 0;
    const m = this.member;
    if (m.method === METHOD_STORED) {
      this.archive.preadSync(m, buffer, offset, n, this.dataStart + position);
      this.trackStored(buffer.subarray(offset, offset + n), position);
    } else if (this.archive.cacheable(m)) {
      const data = this.archive.cachedSync(m, this.dataStart);
      buffer.set(data.subarray(position, position + n), offset);
    } else {
      // An async read owns the cursor; a sync read meanwhile decodes on its own.
      if (this.cursorBusy) this.newCursor().readSync(buffer, offset, n, position);
      else {
        this.cursor ??= this.newCursor();
        this.cursor.readSync(buffer, offset, n, position);
      }
    }
    return n;
  }

  async readAsync(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const n = this.span(buffer, offset, length, position);
    if (n === 0) return 0;
    const m = this.member;
    if (m.method === METHOD_STORED) {
      await this.archive.pread(m, buffer, offset, n, this.dataStart + position);
      this.trackStored(buffer.subarray(offset, offset + n), position);
    } else if (this.archive.cacheable(m)) {
      const data = await this.archive.cachedAsync(m, this.dataStart);
      buffer.set(data.subarray(position, position + n), offset);
    } else {
      const run = async (): Promise<void> => {
        this.cursorBusy = true;
        try {
          this.cursor ??= this.newCursor();
          await this.cursor.readAsync(buffer, offset, n, position);
        } finally {
          this.cursorBusy = false;
        }
      };
      const done = this.queue.then(run, run);
      this.queue = done.catch(() => {});
      await done;
    }
    return n;
  }

  private newCursor(): InflateCursor {
    return new InflateCursor(this.archive, this.member, this.dataStart);
  }

  private trackStored(bytes: Uint8Array, position: number): void {
    if (position === 0) {
      this.seqPos = 0;
      this.seqCrc = 0;
    }
    if (position !== this.seqPos) return;
    this.seqCrc = zlib.crc32(bytes, this.seqCrc);
    this.seqPos += bytes.length;
    if (this.seqPos === this.member.uncompressedSize && this.seqCrc !== this.member.crc32) {
      this.seqPos = -1;
      throw corruptMember(
        this.member,
        "CRC_MISMATCH",
        `CRC-32 ${hex(this.seqCrc)} does not match the recorded ${hex(this.member.crc32)}`,
      );
    }
  }

  close(): void {
    this.closed = true;
    this.cursor = undefined;
  }
}

/**
 * Sequential decoding of one deflated member with bounded memory: the inflater keeps the last
 * 32 KiB of output (which back-references need) plus the chunk in progress, so a read that continues
 * where the previous stopped costs only the new bytes, and a read behind the retained window starts
 * over from the member's beginning. Size and CRC-32 are checked when the stream ends.
 */
class InflateCursor {
  private readonly archive: Archive;
  private readonly member: ZipMember;
  private readonly dataStart: number;
  private inflater = new Inflater();
  private consumed = 0;
  private crc = 0;

  constructor(archive: Archive, member: ZipMember, dataStart: number) {
    this.archive = archive;
    this.member = member;
    this.dataStart = dataStart;
  }

  readSync(buffer: Uint8Array, offset: number, length: number, position: number): void {
    this.rewindFor(position);
    const toEnd = position + length === this.member.uncompressedSize;
    let done = 0;
    for (;;) {
      done += this.copyOut(buffer, offset + done, length - done, position + done);
      // A read that reaches the end also decodes the end of the stream, so that its checks run now.
      if (done === length && (!toEnd || this.inflater.done)) break;
      if (this.inflater.needsInput()) {
        const space = this.inflater.inputSpace();
        const n = Math.min(space.length, this.member.compressedSize - this.consumed);
        this.archive.preadSync(this.member, space, 0, n, this.dataStart + this.consumed);
        this.feed(n);
      }
      this.advance();
    }
  }

  async readAsync(buffer: Uint8Array, offset: number, length: number, position: number): Promise<void> {
    this.rewindFor(position);
    const toEnd = position + length === this.member.uncompressedSize;
    let done = 0;
    for (;;) {
      done += this.copyOut(buffer, offset + done, length - done, position + done);
      if (done === length && (!toEnd || this.inflater.done)) break;
      if (this.inflater.needsInput()) {
        const space = this.inflater.inputSpace();
        const n = Math.min(space.length, this.member.compressedSize - this.consumed);
        await this.archive.pread(this.member, space, 0, n, this.dataStart + this.consumed);
        this.feed(n);
      }
      this.advance();
    }
  }

  private rewindFor(position: number): void {
    if (position < this.inflater.total - this.inflater.outPos) this.reset();
  }

  private reset(): void {
    this.inflater = new Inflater();
    this.consumed = 0;
    this.crc = 0;
  }

  /** Copies what the retained window holds of [position, position + length); returns the count. */
  private copyOut(buffer: Uint8Array, offset: number, length: number, position: number): number {
    const inf = this.inflater;
    const windowStart = inf.total - inf.outPos;
    if (length === 0 || position < windowStart || position >= inf.total) return 0;
    const n = Math.min(length, inf.total - position);
    const from = position - windowStart;
    buffer.set(inf.out.subarray(from, from + n), offset);
    return n;
  }

  private feed(n: number): void {
    this.consumed += n;
    this.inflater.commitInput(n, this.consumed === this.member.compressedSize);
  }

  private advance(): void {
    const m = this.member;
    const inf = this.inflater;
    if (inf.done) {
      // Only reached when a read wants bytes past the end of the stream, which the size check excludes.
      throw corruptMember(m, "SIZE_MISMATCH", "deflate stream ended early");
    }
    const inputBefore = inf.pendingInput();
    let chunk: Uint8Array;
    try {
      chunk = inf.step();
    } catch (e) {
      this.reset();
      if (e instanceof BfcError) throw corruptMember(m, e.reason, e.message);
      throw e;
    }
    if (chunk.length === 0 && inf.pendingInput() === inputBefore && !inf.done && !inf.needsInput()) {
      this.reset();
      throw corruptMember(m, "DECOMPRESS_FAILED", "deflate decoder made no progress");
    }
    this.crc = zlib.crc32(chunk, this.crc);
    if (inf.total > m.uncompressedSize) {
      this.reset();
      throw corruptMember(
        m,
        "SIZE_MISMATCH",
        `inflates to more than the recorded ${m.uncompressedSize} bytes`,
      );
    }
    if (inf.done) {
      const crc = this.crc;
      if (inf.total !== m.uncompressedSize) {
        this.reset();
        throw corruptMember(
          m,
          "SIZE_MISMATCH",
          `decoded to ${inf.total} bytes, expected ${m.uncompressedSize}`,
        );
      }
      if (crc !== m.crc32) {
        this.reset();
        throw corruptMember(
          m,
          "CRC_MISMATCH",
          `CRC-32 ${hex(crc)} does not match the recorded ${hex(m.crc32)}`,
        );
      }
    }
  }
}
