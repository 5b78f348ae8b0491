/**
 * The `memory` filesystem type: a read-write POSIX tree held in memory (a tmpfs).
 *
 * Every entry lives in exactly one directory (no hard links), so `lstat` is one walk down the tree and
 * the type offers structural lookup. The type enforces the POSIX rules a real filesystem would
 * (EEXIST, ENOTEMPTY, EISDIR, rename's cases) and keeps inode numbers, link counts and the four
 * timestamps the way Linux does, so code tested against it behaves the same on a disk.
 */
import fs from "node:fs";
import os from "node:os";
import { fsError } from "../errors.ts";
import type {
  Capabilities,
  DirEntry,
  FileHandle,
  FileSystem,
  FileSystemType,
  NodeStat,
  OpenFlags,
  StatFs,
} from "../filesystem.ts";

export interface MemoryOptions {
  /** Owner of new entries; defaults to the process's. */
  uid?: number;
  gid?: number;
  /** Cleared from the mode of new entries, as the process umask does; default 0o022. */
  umask?: number;
}

/** Largest file the type holds: one Buffer, and memory is not a disk. */
export const MEMORY_MAX_FILE_SIZE = 2 ** 31;

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const NAME_MAX = 255;
const TMPFS_MAGIC = 0x01021994;
const DIR_SIZE = 4096;

const { O_CREAT, O_EXCL, O_TRUNC, O_WRONLY, O_RDWR } = fs.constants;

const CAPABILITIES: Capabilities = { readonly: false, symlinks: true, structuralLookup: true };

export const memoryType: FileSystemType<MemoryOptions> = {
  name: "memory",
  capabilities: CAPABILITIES,
  create: async (options) => createMemory(options),
  createSync: (options) => createMemory(options),
};

function createMemory(options: MemoryOptions | undefined): MemoryFileSystem {
  const o = options ?? {};
  if (typeof o !== "object") throw fsError("EINVAL", "memory: options must be an object");
  const id = (v: unknown, what: string, fallback: number): number => {
    if (v === undefined) return fallback;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
      throw fsError("EINVAL", `memory: options.${what} must be a non-negative integer`);
    }
    return v;
  };
  const uid = id(o.uid, "uid", process.getuid?.() ?? 0);
  const gid = id(o.gid, "gid", process.getgid?.() ?? 0);
  const umask = id(o.umask, "umask", 0o022);
  if (umask > 0o777) throw fsError("EINVAL", "memory: options.umask must be at most 0o777");
  return new MemoryFileSystem(uid, gid, umask);
}

// ── clock ──────────────────────────────────────────────────────────────────────────────────────

let anchorWallNs = 0n;
let anchorHr = 0n;
let lastNs = 0n;

/**
 * Wall-clock nanoseconds: Date.now() gives the milliseconds, hrtime the digits below them. Strictly
 * increasing within a millisecond's slack, so an update right after another still changes the time
 * (change detection by mtime works), while a real clock step backwards is still followed.
 */
function nowNs(): bigint {
  const hr = process.hrtime.bigint();
  const wall = BigInt(Date.now()) * 1_000_000n;
  let t = anchorWallNs + (hr - anchorHr);
  if (t < wall || t >= wall + 1_000_000n) {
    anchorWallNs = wall;
    anchorHr = hr;
    t = wall;
  }
  if (t <= lastNs && lastNs - t < 1_000_000n) t = lastNs + 1n;
  lastNs = t;
  return t;
}

function nsToMs(ns: bigint): number {
  return Number(ns / 1_000_000n) + Number(ns % 1_000_000n) / 1e6;
}

// ── nodes ──────────────────────────────────────────────────────────────────────────────────────

interface NodeBase {
  ino: number;
  /** Full st_mode. */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  birthtimeNs: bigint;
}

interface DirNode extends NodeBase {
  kind: "directory";
  children: Map<string, MemNode>;
}

interface FileNode extends NodeBase {
  kind: "file";
  /** Capacity; bytes past `size` are always zero, so growing the file needs no fill. */
  data: Buffer;
  size: number;
  /** Open handles: an unlinked file's bytes are released when the last one closes. */
  handles: number;
}

interface LinkNode extends NodeBase {
  kind: "symlink";
  target: string;
}

type MemNode = DirNode | FileNode | LinkNode;

const EMPTY = Buffer.alloc(0);

function touch(node: NodeBase, t: bigint): void {
  node.mtimeNs = t;
  node.ctimeNs = t;
}

/** Orders names by their UTF-8 bytes (code point order), which differs from UTF-16 order above U+D7FF. */
function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Lift surrogates above U+E000–U+FFFF so astral characters sort after the rest of the BMP.
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

function statOf(node: MemNode): NodeStat {
  let size: number;
  let blocks: number;
  if (node.kind === "file") {
    size = node.size;
    blocks = Math.ceil(node.size / 512);
  } else if (node.kind === "directory") {
    size = DIR_SIZE;
    blocks = DIR_SIZE / 512;
  } else {
    size = Buffer.byteLength(node.target);
    blocks = 0;
  }
  return {
    type: node.kind,
    mode: node.mode,
    size,
    ino: node.ino,
    nlink: node.nlink,
    uid: node.uid,
    gid: node.gid,
    rdev: 0,
    blocks,
    mtimeMs: nsToMs(node.mtimeNs),
    mtimeNs: node.mtimeNs,
    atimeMs: nsToMs(node.atimeNs),
    atimeNs: node.atimeNs,
    ctimeMs: nsToMs(node.ctimeNs),
    ctimeNs: node.ctimeNs,
    birthtimeMs: nsToMs(node.birthtimeNs),
    birthtimeNs: node.birthtimeNs,
  };
}

function checkRange(buffer: Uint8Array, offset: number, length: number, position: number): void {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(length) ||
    !Number.isSafeInteger(position) ||
    offset < 0 ||
    length < 0 ||
    position < 0 ||
    offset + length > buffer.length
  ) {
    throw fsError("EINVAL", "memory: offset, length or position out of range");
  }
}

// ── the filesystem ─────────────────────────────────────────────────────────────────────────────

class MemoryFileSystem implements FileSystem {
  readonly capabilities: Capabilities = { ...CAPABILITIES };
  private readonly uid: number;
  private readonly gid: number;
  private readonly umask: number;
  private root: DirNode;
  private nextIno = 1;
  /** Bytes held by files that still exist (linked, or unlinked but open). */
  private bytes = 0;
  private nodes = 0;

  constructor(uid: number, gid: number, umask: number) {
    this.uid = uid;
    this.gid = gid;
    this.umask = umask;
    this.root = this.newDir(0o755, nowNs());
  }

  // ── node bookkeeping ──

  private base(mode: number, t: bigint): NodeBase {
    this.nodes++;
    return {
      ino: this.nextIno++,
      mode,
      uid: this.uid,
      gid: this.gid,
      nlink: 1,
      atimeNs: t,
      mtimeNs: t,
      ctimeNs: t,
      birthtimeNs: t,
    };
  }

  private newDir(perm: number, t: bigint): DirNode {
    return { ...this.base(S_IFDIR | perm, t), kind: "directory", nlink: 2, children: new Map() };
  }

  private newFile(perm: number, t: bigint): FileNode {
    return { ...this.base(S_IFREG | perm, t), kind: "file", data: EMPTY, size: 0, handles: 0 };
  }

  /** Drops one name of `node` (already removed from its directory); `parent` lost it. */
  private unlinked(node: MemNode, parent: DirNode, t: bigint): void {
    if (node.kind === "directory") {
      parent.nlink--;
      node.nlink = 0;
      node.ctimeNs = t;
      this.nodes--;
      return;
    }
    node.nlink--;
    node.ctimeNs = t;
    if (node.kind === "file") this.releaseIfUnused(node);
    else this.nodes--;
  }

  /** POSIX keeps an unlinked file while it is open; once neither names nor handles remain, free it. */
  releaseIfUnused(node: FileNode): void {
    if (node.nlink > 0 || node.handles > 0) return;
    this.bytes -= node.size;
    this.nodes--;
    node.data = EMPTY;
    node.size = 0;
  }

  // ── file contents (shared by handles and path calls) ──

  private reserve(node: FileNode, end: number): void {
    if (end <= node.data.length) return;
    const cap = Math.min(Math.max(end, node.data.length * 2, 64), MEMORY_MAX_FILE_SIZE);
    let data: Buffer;
    try {
      data = Buffer.alloc(cap);
    } catch (e) {
      throw fsError("ENOSPC", `memory: cannot allocate ${cap} bytes: ${(e as Error).message}`);
    }
    node.data.copy(data, 0, 0, node.size);
    node.data = data;
  }

  private resize(node: FileNode, size: number): void {
    this.bytes += size - node.size;
    node.size = size;
  }

  writeAt(node: FileNode, buffer: Uint8Array, offset: number, length: number, position: number): number {
    checkRange(buffer, offset, length, position);
    // Linux leaves the times alone for an empty write.
    if (length === 0) return 0;
    if (position >= MEMORY_MAX_FILE_SIZE) throw fsError("EFBIG", "memory: write past the 2 GiB file limit");
    // A write crossing the limit is short, as write(2) is at RLIMIT_FSIZE.
    const n = Math.min(length, MEMORY_MAX_FILE_SIZE - position);
    const end = position + n;
    this.reserve(node, end);
    node.data.set(buffer.subarray(offset, offset + n), position);
    if (end > node.size) this.resize(node, end);
    touch(node, nowNs());
    return n;
  }

  readAt(node: FileNode, buffer: Uint8Array, offset: number, length: number, position: number): number {
    checkRange(buffer, offset, length, position);
    if (position >= node.size) return 0;
    const n = Math.min(length, node.size - position);
    buffer.set(node.data.subarray(position, position + n), offset);
    return n;
  }

  truncateNode(node: FileNode, length: number): void {
    if (!Number.isSafeInteger(length) || length < 0) throw fsError("EINVAL", "memory: bad truncate length");
    if (length > MEMORY_MAX_FILE_SIZE) throw fsError("EFBIG", "memory: truncate past the 2 GiB file limit");
    if (length > node.size) {
      this.reserve(node, length);
    } else if (length < node.size) {
      if (node.data.length > 4096 && length <= node.data.length >>> 2) {
        // Give most of the memory back rather than keep a large capacity for a small file.
        const data = Buffer.alloc(length);
        node.data.copy(data, 0, 0, length);
        node.data = data;
      } else {
        node.data.fill(0, length, node.size);
      }
    }
    this.resize(node, length);
    touch(node, nowNs());
  }

  // ── paths ──

  /** The entry at a canonical path, or undefined when it or an ancestor directory is missing. */
  private find(path: string): MemNode | undefined {
    if (typeof path !== "string") throw fsError("EINVAL", "memory: path must be a string");
    if (path === "") return this.root;
    let node: MemNode = this.root;
    let start = 0;
    for (;;) {
      const slash = path.indexOf("/", start);
      const name = slash < 0 ? path.slice(start) : path.slice(start, slash);
      checkName(name, path);
      if (node.kind !== "directory") return undefined;
      const child = node.children.get(name);
      if (child === undefined) return undefined;
      node = child;
      if (slash < 0) return node;
      start = slash + 1;
    }
  }

  private get(path: string): MemNode {
    const node = this.find(path);
    if (node === undefined) throw fsError("ENOENT", `memory: no entry '${path}'`);
    return node;
  }

  /** The directory that holds (or would hold) `path`, and its last name. `path` is not the root. */
  private parent(path: string): { dir: DirNode; name: string } {
    const slash = path.lastIndexOf("/");
    // A leading slash would otherwise leave "" (the root) as the parent.
    if (slash === 0) checkName("", path);
    const name = path.slice(slash + 1);
    const dir = this.find(slash < 0 ? "" : path.slice(0, slash));
    checkName(name, path);
    if (dir === undefined) throw fsError("ENOENT", `memory: parent of '${path}' does not exist`);
    if (dir.kind !== "directory") throw fsError("ENOTDIR", `memory: parent of '${path}' is not a directory`);
    return { dir, name };
  }

  private newName(name: string): void {
    if (Buffer.byteLength(name) > NAME_MAX) throw fsError("ENAMETOOLONG", `memory: name too long`);
  }

  // ── FileSystem ──

  lstat(path: string): NodeStat | undefined {
    const node = this.find(path);
    return node === undefined ? undefined : statOf(node);
  }

  readdir(path: string): DirEntry[] {
    const node = this.get(path);
    if (node.kind !== "directory") throw fsError("ENOTDIR", `memory: '${path}' is not a directory`);
    const out: DirEntry[] = [];
    for (const [name, child] of node.children) out.push({ name, type: child.kind });
    return out.sort((a, b) => compareUtf8(a.name, b.name));
  }

  readlink(path: string): string {
    const node = this.get(path);
    if (node.kind !== "symlink") {
      throw fsError("EINVAL", `memory: '${path}' is not a symlink`, "NOT_A_SYMLINK");
    }
    return node.target;
  }

  open(path: string, flags: OpenFlags, mode: number): FileHandle {
    let node = this.find(path);
    if (node === undefined) {
      if (!(flags & O_CREAT)) throw fsError("ENOENT", `memory: no entry '${path}'`);
      const { dir, name } = this.parent(path);
      this.newName(name);
      const t = nowNs();
      node = this.newFile(mode & 0o7777 & ~this.umask, t);
      dir.children.set(name, node);
      touch(dir, t);
    } else {
      if (flags & O_CREAT && flags & O_EXCL) throw fsError("EEXIST", `memory: '${path}' exists`);
      if (node.kind === "directory") throw fsError("EISDIR", `memory: '${path}' is a directory`);
      // The kernel resolved links before calling; a symlink here is opened as with O_NOFOLLOW.
      if (node.kind === "symlink") throw fsError("ELOOP", `memory: '${path}' is a symlink`);
      if (flags & O_TRUNC && flags & (O_WRONLY | O_RDWR)) this.truncateNode(node, 0);
    }
    return new MemoryFileHandle(this, node, flags);
  }

  readFile(path: string): Buffer {
    const node = this.get(path);
    if (node.kind === "directory") throw fsError("EISDIR", `memory: '${path}' is a directory`);
    if (node.kind === "symlink") throw fsError("ELOOP", `memory: '${path}' is a symlink`);
    return Buffer.from(node.data.subarray(0, node.size));
  }

  async readFileAsync(path: string): Promise<Buffer> {
    return this.readFile(path);
  }

  statfs(): StatFs {
    const bsize = 4096;
    const used = Math.ceil(this.bytes / bsize);
    const free = Math.floor(os.freemem() / bsize);
    const ffree = Math.max(0, 2 ** 32 - this.nodes);
    return {
      type: TMPFS_MAGIC,
      bsize,
      blocks: used + free,
      bfree: free,
      bavail: free,
      files: this.nodes + ffree,
      ffree,
    };
  }

  mkdir(path: string, mode: number): void {
    if (path === "") throw fsError("EEXIST", "memory: the root exists");
    const { dir, name } = this.parent(path);
    if (dir.children.has(name)) throw fsError("EEXIST", `memory: '${path}' exists`);
    this.newName(name);
    const t = nowNs();
    dir.children.set(name, this.newDir(mode & 0o1777 & ~this.umask, t));
    dir.nlink++;
    touch(dir, t);
  }

  rmdir(path: string): void {
    // Linux answers EBUSY for a mount's root; the nearest code we have.
    if (path === "") throw fsError("EPERM", "memory: cannot remove the root");
    const { dir, name } = this.parent(path);
    const node = dir.children.get(name);
    if (node === undefined) throw fsError("ENOENT", `memory: no entry '${path}'`);
    if (node.kind !== "directory") throw fsError("ENOTDIR", `memory: '${path}' is not a directory`);
    if (node.children.size > 0) throw fsError("ENOTEMPTY", `memory: '${path}' is not empty`);
    const t = nowNs();
    dir.children.delete(name);
    this.unlinked(node, dir, t);
    touch(dir, t);
  }

  unlink(path: string): void {
    if (path === "") throw fsError("EISDIR", "memory: the root is a directory");
    const { dir, name } = this.parent(path);
    const node = dir.children.get(name);
    if (node === undefined) throw fsError("ENOENT", `memory: no entry '${path}'`);
    if (node.kind === "directory") throw fsError("EISDIR", `memory: '${path}' is a directory`);
    const t = nowNs();
    dir.children.delete(name);
    this.unlinked(node, dir, t);
    touch(dir, t);
  }

  rename(from: string, to: string): void {
    const src = this.find(from);
    if (src === undefined) throw fsError("ENOENT", `memory: no entry '${from}'`);
    if (from === to) return;
    if (from === "" || (src.kind === "directory" && to.startsWith(`${from}/`))) {
      throw fsError("EINVAL", `memory: cannot move '${from}' into itself`);
    }
    if (to === "") {
      // The root holds `from`, so it is neither empty nor replaceable.
      throw fsError(src.kind === "directory" ? "ENOTEMPTY" : "EISDIR", "memory: cannot replace the root");
    }
    const a = this.parent(from);
    const b = this.parent(to);
    const existing = b.dir.children.get(b.name);
    if (existing === src) return;
    if (existing !== undefined) {
      if (src.kind === "directory" && existing.kind !== "directory") {
        throw fsError("ENOTDIR", `memory: '${to}' is not a directory`);
      }
      if (src.kind !== "directory" && existing.kind === "directory") {
        throw fsError("EISDIR", `memory: '${to}' is a directory`);
      }
      if (existing.kind === "directory" && existing.children.size > 0) {
        throw fsError("ENOTEMPTY", `memory: '${to}' is not empty`);
      }
    } else {
      this.newName(b.name);
    }
    const t = nowNs();
    a.dir.children.delete(a.name);
    if (existing !== undefined) {
      b.dir.children.delete(b.name);
      this.unlinked(existing, b.dir, t);
    }
    b.dir.children.set(b.name, src);
    if (src.kind === "directory" && a.dir !== b.dir) {
      a.dir.nlink--;
      b.dir.nlink++;
    }
    // Linux changes the moved inode's ctime too (its ".." may have changed).
    src.ctimeNs = t;
    touch(a.dir, t);
    touch(b.dir, t);
  }

  symlink(target: string, path: string): void {
    if (typeof target !== "string" || target.includes("\0")) {
      throw fsError("EINVAL", "memory: bad symlink target", "BAD_PATH");
    }
    if (target === "") throw fsError("ENOENT", "memory: empty symlink target");
    if (path === "") throw fsError("EEXIST", "memory: the root exists");
    const { dir, name } = this.parent(path);
    if (dir.children.has(name)) throw fsError("EEXIST", `memory: '${path}' exists`);
    this.newName(name);
    const t = nowNs();
    const link: LinkNode = { ...this.base(S_IFLNK | 0o777, t), kind: "symlink", target };
    dir.children.set(name, link);
    touch(dir, t);
  }

  chmod(path: string, mode: number): void {
    chmodNode(this.get(path), mode);
  }

  utimes(path: string, atimeNs: bigint, mtimeNs: bigint): void {
    utimesNode(this.get(path), atimeNs, mtimeNs);
  }

  truncate(path: string, length: number): void {
    const node = this.get(path);
    if (node.kind === "directory") throw fsError("EISDIR", `memory: '${path}' is a directory`);
    if (node.kind === "symlink") throw fsError("EINVAL", `memory: '${path}' is a symlink`);
    this.truncateNode(node, length);
  }

  close(): void {
    // Open handles keep their own nodes alive; everything else goes now.
    this.root = this.newDir(0o755, nowNs());
    this.bytes = 0;
    this.nodes = 1;
  }
}

function checkName(name: string, path: string): void {
  if (name === "" || name === "." || name === ".." || name.includes("\0")) {
    throw fsError("EINVAL", `memory: non-canonical path '${path}'`, "BAD_PATH");
  }
}

function chmodNode(node: MemNode, mode: number): void {
  node.mode = (node.mode & S_IFMT) | (mode & 0o7777);
  node.ctimeNs = nowNs();
}

function utimesNode(node: MemNode, atimeNs: bigint, mtimeNs: bigint): void {
  node.atimeNs = atimeNs;
  node.mtimeNs = mtimeNs;
  node.ctimeNs = nowNs();
}

class MemoryFileHandle implements FileHandle {
  private readonly fs: MemoryFileSystem;
  private node: FileNode | undefined;
  private readonly readable: boolean;
  private readonly writable: boolean;

  constructor(owner: MemoryFileSystem, node: FileNode, flags: OpenFlags) {
    this.fs = owner;
    this.node = node;
    const access = flags & (O_WRONLY | O_RDWR);
    this.readable = access !== O_WRONLY;
    this.writable = access !== 0;
    node.handles++;
  }

  private get live(): FileNode {
    if (this.node === undefined) throw fsError("EBADF", "memory: file handle is closed");
    return this.node;
  }

  stat(): NodeStat {
    return statOf(this.live);
  }

  read(buffer: Uint8Array, offset: number, length: number, position: number): number {
    const node = this.live;
    if (!this.readable) throw fsError("EBADF", "memory: handle not open for reading");
    return this.fs.readAt(node, buffer, offset, length, position);
  }

  async readAsync(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.read(buffer, offset, length, position);
  }

  write(buffer: Uint8Array, offset: number, length: number, position: number): number {
    const node = this.live;
    if (!this.writable) throw fsError("EBADF", "memory: handle not open for writing");
    return this.fs.writeAt(node, buffer, offset, length, position);
  }

  async writeAsync(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.write(buffer, offset, length, position);
  }

  truncate(length: number): void {
    const node = this.live;
    // ftruncate(2) on a descriptor not open for writing.
    if (!this.writable) throw fsError("EINVAL", "memory: handle not open for writing");
    this.fs.truncateNode(node, length);
  }

  chmod(mode: number): void {
    chmodNode(this.live, mode);
  }

  utimes(atimeNs: bigint, mtimeNs: bigint): void {
    utimesNode(this.live, atimeNs, mtimeNs);
  }

  sync(): void {
    // Nothing to flush; only a closed handle is an error, as fsync(2) on a closed fd is.
    if (this.node === undefined) throw fsError("EBADF", "memory: file handle is closed");
  }

  close(): void {
    const node = this.live;
    this.node = undefined;
    node.handles--;
    this.fs.releaseIfUnused(node);
  }
}
