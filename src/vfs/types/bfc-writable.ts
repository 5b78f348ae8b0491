import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Container, type Node, type Staged, type UpdateOptions } from "../../container/container.ts";
import { processAlive } from "../../container/lock.ts";
import { fsError } from "../errors.ts";
import type {
  Capabilities,
  DirEntry,
  FileHandle,
  FileSystem,
  NodeStat,
  OpenFlags,
  StatFs,
} from "../filesystem.ts";
import { compareNames } from "../names.ts";

const { O_CREAT, O_EXCL, O_TRUNC, O_WRONLY, O_RDWR, S_IFDIR, S_IFREG, S_IFLNK } = fs.constants;

export interface WritableBfcOptions extends UpdateOptions {
  /** Commit staged changes every this many seconds (0 or absent: only on sync and unmount). */
  commitInterval?: number;
  /** Owner reported for entries without a recorded uid/gid; default: the container file's owner. */
  uid?: number;
  gid?: number;
  /** Permission bits removed from files and directories created through the mount (default 0o022). */
  umask?: number;
  /** Reported by commits made on sync/unmount/timer. */
  message?: string;
  /**
   * Told how each commit of the interval timer went (undefined: committed). A failed one leaves
   * the changes staged for the next commit; nobody else hears of it (no request is waiting).
   */
  onTimerCommit?: (error: unknown) => void;
}

const CAPS: Capabilities = { readonly: false, symlinks: true, structuralLookup: true };
const COPY_CHUNK = 1024 * 1024;
/**
 * Scratch content up to this size stays in memory (creating, writing and deleting a file per small
 * file was most of the cost of writing many small files), within MEMORY_BUDGET in all; a scratch
 * that grows past either becomes a file.
 */
const MEMORY_SCRATCH_MAX = 1024 * 1024;
const MEMORY_BUDGET = 128 * 1024 * 1024;

function nsToMs(ns: bigint): number {
  const sec = ns / 1_000_000_000n;
  return Number(sec) * 1e3 + Number(ns - sec * 1_000_000_000n) / 1e6;
}

/**
 * One scratch file: the whole current content of one file being written. Small ones live in
 * memory (`mem`) under a path that is never created; the path is their name all the same.
 */
interface Scratch {
  path: string;
  /** Open while a handle writes through it (-1 otherwise: 30k new files must not hold 30k fds). */
  fd: number;
  /** In-memory content (its first `len` bytes), or null once the scratch is a file. */
  mem: Buffer | null;
  len: number;
  /** Open handles using it. */
  handles: number;
  /** The node it was made for; it stays while that node stages it. */
  node: Node;
}

/**
 * A container as a read-write filesystem: a staged tree (Container) over the latest commit. Writes
 * go to scratch files in a directory beside the container (one per file being changed, holding its
 * whole content); `sync()`, unmount and an optional timer commit the staged tree, appending only
 * what changed. A crash loses at most the uncommitted changes: the container itself only ever gains
 * complete commits.
 *
 * While a commit reads a scratch file, that file is sealed: a write arriving meanwhile copies it
 * first (copy-on-write), so every commit is a consistent snapshot.
 */
export class WritableBfcFileSystem implements FileSystem {
  readonly capabilities = CAPS;
  readonly container: Container;
  private readonly scratchDir: string;
  private readonly scratches = new Map<string, Scratch>();
  private readonly sealed = new Set<string>();
  private readonly ids = new WeakMap<Node, number>();
  private nextIno = 2;
  private scratchSeq = 0;
  /** Bytes held by in-memory scratches (their buffers' capacity). */
  private memBytes = 0;
  private readonly uid: number;
  private readonly gid: number;
  private readonly umask: number;
  private readonly message: string | undefined;
  private timer: NodeJS.Timeout | null = null;
  private rootMtimeNs: bigint;
  private closed = false;

  private constructor(container: Container, scratchDir: string, options: WritableBfcOptions) {
    this.container = container;
    this.scratchDir = scratchDir;
    const st = fs.statSync(container.path, { bigint: true });
    this.uid = options.uid ?? Number(st.uid);
    this.gid = options.gid ?? Number(st.gid);
    this.umask = options.umask ?? 0o022;
    this.message = options.message;
    this.rootMtimeNs = st.mtimeNs;
    if (options.commitInterval && options.commitInterval > 0) {
      const told = options.onTimerCommit ?? (() => {});
      this.timer = setInterval(() => {
        if (this.container.hasChanges) this.commit().then(() => told(undefined), told);
      }, options.commitInterval * 1000);
      this.timer.unref();
    }
  }

  static async open(file: string, options: WritableBfcOptions): Promise<WritableBfcFileSystem> {
    removeStaleScratch(file);
    const abs = path.resolve(file);
    const scratchDir = path.join(
      path.dirname(abs),
      `.${path.basename(abs)}.bfc-scratch-${process.pid}-${randomBytes(4).toString("hex")}`,
    );
    let self: WritableBfcFileSystem | null = null;
    const container = await Container.openForUpdate(file, {
      ...options,
      onSnapshot: (staged) => self?.seal(staged),
      onCommitEnd: (staged, ok) => self?.unseal(staged, ok),
      scratchContent: (p) => self?.memoryOf(p),
    });
    try {
      fs.mkdirSync(scratchDir, { mode: 0o700 });
    } catch (e) {
      container.close();
      throw e;
    }
    self = new WritableBfcFileSystem(container, scratchDir, options);
    return self;
  }

  // ------------------------------------------------------------ scratch files

  private seal(staged: Staged[]): void {
    for (const s of staged) if (s.kind === "path" && this.scratches.has(s.path)) this.sealed.add(s.path);
  }

  private unseal(staged: Staged[], ok: boolean): void {
    for (const s of staged) {
      if (s.kind !== "path") continue;
      this.sealed.delete(s.path);
      if (ok) this.release(s.path, false);
    }
  }

  /** Whether the scratch file's node still stages it and is still in the tree. */
  private staged(s: Scratch): boolean {
    const n = s.node;
    return n.staged?.kind === "path" && n.staged.path === s.path && this.container.lookupNode(n.path) === n;
  }

  /** Closes a scratch file's descriptor when no handle writes through it; drops the file when unused. */
  private release(p: string, handleClosed: boolean): void {
    const s = this.scratches.get(p);
    if (!s) return;
    if (handleClosed) s.handles--;
    if (s.handles > 0) return;
    if (s.fd >= 0) {
      try {
        fs.closeSync(s.fd);
      } catch {}
      s.fd = -1;
    }
    if (this.sealed.has(p) || this.staged(s)) return;
    this.scratches.delete(p);
    if (s.mem) {
      this.memBytes -= s.mem.length;
      s.mem = null;
      return;
    }
    try {
      fs.unlinkSync(p);
    } catch {}
  }

  /** The in-memory content of a scratch (for commits and reads), or undefined for a file. */
  memoryOf(p: string): Buffer | undefined {
    const s = this.scratches.get(p);
    return s?.mem ? s.mem.subarray(0, s.len) : undefined;
  }

  /** The scratch's descriptor; an in-memory scratch becomes a file first. */
  fdOf(s: Scratch): number {
    if (s.mem) {
      const fd = fs.openSync(s.path, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
      let w = 0;
      try {
        while (w < s.len) w += fs.writeSync(fd, s.mem, w, s.len - w, w);
      } catch (e) {
        fs.closeSync(fd);
        fs.rmSync(s.path, { force: true });
        throw e;
      }
      this.memBytes -= s.mem.length;
      s.mem = null;
      s.fd = fd;
    }
    if (s.fd < 0) s.fd = fs.openSync(s.path, "r+");
    return s.fd;
  }

  private newScratch(node: Node): Scratch {
    const p = path.join(this.scratchDir, String(++this.scratchSeq));
    const s: Scratch = { path: p, fd: -1, mem: Buffer.alloc(0), len: 0, handles: 0, node };
    this.scratches.set(p, s);
    return s;
  }

  /** Writes into a scratch at `position`, in memory while it stays small, else to its file. */
  writeScratch(s: Scratch, data: Uint8Array, offset: number, length: number, position: number): void {
    const end = position + length;
    if (s.mem && end > s.mem.length) {
      const cap = Math.max(end, Math.min(MEMORY_SCRATCH_MAX, s.mem.length * 2, end * 2), 4096);
      if (end <= MEMORY_SCRATCH_MAX && this.memBytes + cap - s.mem.length <= MEMORY_BUDGET) {
        const grown = Buffer.alloc(cap);
        s.mem.copy(grown, 0, 0, s.len);
        this.memBytes += cap - s.mem.length;
        s.mem = grown;
      } else this.fdOf(s);
    }
    if (s.mem) {
      // A write past the end leaves a hole, which reads as zeros (alloc zero-fills).
      s.mem.set(data.subarray(offset, offset + length), position);
      if (end > s.len) s.len = end;
      return;
    }
    const fd = this.fdOf(s);
    let done = 0;
    while (done < length) done += fs.writeSync(fd, data, offset + done, length - done, position + done);
  }

  private truncateScratch(s: Scratch, length: number): void {
    if (s.mem && length <= s.mem.length) {
      if (length < s.len) s.mem.fill(0, length, s.len);
      s.len = length;
      return;
    }
    fs.ftruncateSync(this.fdOf(s), length);
  }

  /**
   * The scratch file a write to `node` goes to: its current one when it is ours and not being
   * committed, else a new one holding the node's content so far (`copy` false: start empty).
   */
  scratchFor(node: Node, copy: boolean): Scratch {
    const cur = node.staged?.kind === "path" ? this.scratches.get(node.staged.path) : undefined;
    if (cur && !this.sealed.has(cur.path)) return cur;
    const s = this.newScratch(node);
    let size = 0;
    if (copy) {
      const buf = Buffer.allocUnsafe(COPY_CHUNK);
      for (;;) {
        // Our own reads: the content may be in another (sealed) scratch, in memory.
        const n = this.readNodeSync(node, buf, 0, buf.length, size);
        if (n === 0) break;
        this.writeScratch(s, buf, 0, n, size);
        size += n;
      }
    }
    this.container.stageScratch(node, s.path, size, node.mtimeNs);
    return s;
  }

  // ------------------------------------------------------------ stats

  private inoOf(n: Node): number {
    let id = this.ids.get(n);
    if (id === undefined) {
      id = this.nextIno++;
      this.ids.set(n, id);
    }
    return id;
  }

  statOf(n: Node): NodeStat {
    const type = n.kind === "file" ? S_IFREG : n.kind === "directory" ? S_IFDIR : S_IFLNK;
    const size = n.kind === "directory" ? 0 : Math.max(0, n.size);
    const a = n.attrs;
    const container = this.container;
    return {
      type: n.kind,
      mode: type | n.perm,
      size,
      ino: this.inoOf(n),
      // Counting a directory's subdirectories costs a pass over its children: only when asked
      // (a path walk stats every component but never looks at nlink).
      get nlink() {
        return n.kind === "directory" ? 2 + container.subdirectoryCount(n.path) : 1;
      },
      uid: a?.uid ?? this.uid,
      gid: a?.gid ?? this.gid,
      rdev: 0,
      blocks: n.kind === "file" ? Math.ceil(this.container.storedSizeOf(n) / 512) : 0,
      mtimeMs: nsToMs(n.mtimeNs),
      mtimeNs: n.mtimeNs,
    };
  }

  private rootStat(): NodeStat {
    const container = this.container;
    return {
      type: "directory",
      mode: S_IFDIR | 0o755,
      size: 0,
      ino: 1,
      get nlink() {
        return 2 + container.subdirectoryCount("");
      },
      uid: this.uid,
      gid: this.gid,
      rdev: 0,
      blocks: 0,
      mtimeMs: nsToMs(this.rootMtimeNs),
      mtimeNs: this.rootMtimeNs,
    };
  }

  private get(p: string): Node {
    const n = this.container.lookupNode(p);
    if (!n) throw fsError("ENOENT");
    return n;
  }

  lstat(p: string): NodeStat | undefined {
    if (p === "") return this.rootStat();
    const n = this.container.lookupNode(p);
    return n ? this.statOf(n) : undefined;
  }

  readdir(p: string): DirEntry[] {
    return this.container
      .childNodes(p)
      .map((n) => ({ name: n.path.slice(n.path.lastIndexOf("/") + 1), type: n.kind }))
      .sort((a, b) => compareNames(a.name, b.name));
  }

  readlink(p: string): string {
    const n = this.get(p);
    if (n.kind !== "symlink") throw fsError("EINVAL");
    return this.container.targetOf(n).toString();
  }

  open(p: string, flags: OpenFlags, mode: number): FileHandle {
    let n = this.container.lookupNode(p);
    if (!n) {
      if (!(flags & O_CREAT)) throw fsError("ENOENT");
      n = this.container.createFile(p, mode & 0o7777 & ~this.umask);
    } else {
      if (flags & O_CREAT && flags & O_EXCL) throw fsError("EEXIST");
      if (n.kind === "directory") throw fsError("EISDIR");
      if (n.kind === "symlink") throw fsError("ELOOP");
      if (flags & O_TRUNC && flags & (O_WRONLY | O_RDWR) && n.size !== 0) {
        const s = this.scratchFor(n, false);
        this.truncateScratch(s, 0);
        this.container.stageScratch(n, s.path, 0);
        this.release(s.path, false);
      }
    }
    return new WritableHandle(this, n, flags);
  }

  readFile(p: string): Buffer {
    const n = this.get(p);
    if (n.kind === "directory") throw fsError("EISDIR");
    const out = Buffer.allocUnsafe(Math.max(0, n.size));
    let done = 0;
    while (done < out.length) {
      const k = this.readNodeSync(n, out, done, out.length - done, done);
      if (k === 0) break;
      done += k;
    }
    return done === out.length ? out : out.subarray(0, done);
  }

  readNodeSync(n: Node, buffer: Uint8Array, offset: number, length: number, position: number): number {
    const s = n.staged?.kind === "path" ? this.scratches.get(n.staged.path) : undefined;
    if (s) {
      if (s.mem) {
        if (position >= s.len) return 0;
        const k = Math.min(length, s.len - position);
        buffer.set(s.mem.subarray(position, position + k), offset);
        return k;
      }
      if (s.fd >= 0) return fs.readSync(s.fd, buffer, offset, length, position);
      const fd = fs.openSync(s.path, "r");
      try {
        return fs.readSync(fd, buffer, offset, length, position);
      } finally {
        fs.closeSync(fd);
      }
    }
    return this.container.readNodeSync(n, buffer, offset, length, position);
  }

  statfs(): StatFs {
    const u = this.container.currentUsage;
    const l = this.container.resourceLimits;
    const bsize = 4096;
    const used = Math.ceil(u.totalBytes / bsize);
    let blocks: number;
    let free: number;
    if (l?.maxTotalBytes !== undefined) {
      blocks = Math.ceil(l.maxTotalBytes / bsize);
      free = Math.max(0, blocks - used);
    } else {
      const st = fs.statfsSync(path.dirname(path.resolve(this.container.path)));
      free = Math.floor((st.bavail * st.bsize) / bsize);
      blocks = used + free;
    }
    const maxFiles = l?.maxFiles !== undefined ? l.maxFiles + (l.maxDirectories ?? 2 ** 31) : 2 ** 32;
    const files = u.files + u.directories;
    return {
      type: 0x42464331,
      bsize,
      blocks,
      bfree: free,
      bavail: free,
      files: Math.max(files, maxFiles),
      ffree: Math.max(0, maxFiles - files),
    };
  }

  mkdir(p: string, mode: number): void {
    if (p === "" || this.container.lookupNode(p)) throw fsError("EEXIST");
    this.container.mkdir(p, { mode: mode & 0o7777 & ~this.umask });
  }

  rmdir(p: string): void {
    if (p === "") throw fsError("EPERM");
    const n = this.get(p);
    if (n.kind !== "directory") throw fsError("ENOTDIR");
    this.container.remove(p);
  }

  unlink(p: string): void {
    const n = this.get(p);
    if (n.kind === "directory") throw fsError("EISDIR");
    this.container.remove(p);
  }

  rename(from: string, to: string): void {
    if (from === "" || to === "") throw fsError("EBUSY");
    this.container.rename(from, to);
  }

  symlink(target: string, p: string): void {
    if (this.container.lookupNode(p)) throw fsError("EEXIST");
    this.container.symlink(p, target);
  }

  chmod(p: string, mode: number): void {
    if (p === "") return;
    this.container.chmod(p, mode);
  }

  utimes(p: string, _atimeNs: bigint, mtimeNs: bigint): void {
    if (p === "") {
      this.rootMtimeNs = mtimeNs;
      return;
    }
    this.container.setNodeTimes(this.get(p), mtimeNs);
  }

  truncate(p: string, length: number): void {
    const n = this.get(p);
    if (n.kind === "directory") throw fsError("EISDIR");
    this.truncateNode(n, length);
  }

  truncateNode(n: Node, length: number): void {
    if (!Number.isSafeInteger(length) || length < 0) throw fsError("EINVAL");
    this.container.checkResize(n, length);
    const s = this.scratchFor(n, length > 0);
    this.truncateScratch(s, length);
    this.container.stageScratch(n, s.path, length);
    this.release(s.path, false);
  }

  /** Commits staged changes now (fsync, unmount, the timer). */
  async commit(): Promise<void> {
    if (this.closed) return;
    await this.container.commit({ message: this.message });
  }

  async sync(): Promise<void> {
    await this.commit();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.timer) clearInterval(this.timer);
    try {
      await this.container.commit({ message: this.message });
    } finally {
      this.closed = true;
      this.container.close();
      for (const s of this.scratches.values()) {
        if (s.fd < 0) continue;
        try {
          fs.closeSync(s.fd);
        } catch {}
      }
      fs.rmSync(this.scratchDir, { recursive: true, force: true });
    }
  }

  /** For handles: the scratch file registry. */
  scratchOf(p: string): Scratch | undefined {
    return this.scratches.get(p);
  }

  releaseHandle(p: string | null): void {
    if (p) this.release(p, true);
  }
}

class WritableHandle implements FileHandle {
  private readonly owner: WritableBfcFileSystem;
  private readonly node: Node;
  private readonly readable: boolean;
  private readonly writable: boolean;
  /** The scratch file this handle holds a reference on (its last write target). */
  private held: string | null = null;
  private open = true;

  constructor(owner: WritableBfcFileSystem, node: Node, flags: OpenFlags) {
    this.owner = owner;
    this.node = node;
    const access = flags & (O_WRONLY | O_RDWR);
    this.readable = access !== O_WRONLY;
    this.writable = access !== 0;
  }

  private live(): Node {
    if (!this.open) throw fsError("EBADF");
    return this.node;
  }

  stat(): NodeStat {
    return this.owner.statOf(this.live());
  }

  read(buffer: Uint8Array, offset: number, length: number, position: number): number {
    const n = this.live();
    if (!this.readable) throw fsError("EBADF");
    return this.owner.readNodeSync(n, buffer, offset, length, position);
  }

  async readAsync(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const n = this.live();
    if (!this.readable) throw fsError("EBADF");
    if (n.staged || n.base < 0) return this.owner.readNodeSync(n, buffer, offset, length, position);
    return this.owner.container.readNode(n, buffer, offset, length, position);
  }

  private hold(p: string): void {
    if (this.held === p) return;
    const s = this.owner.scratchOf(p);
    if (s) s.handles++;
    const prev = this.held;
    this.held = p;
    this.owner.releaseHandle(prev);
  }

  write(buffer: Uint8Array, offset: number, length: number, position: number): number {
    const n = this.live();
    if (!this.writable) throw fsError("EBADF");
    const end = position + length;
    const size = Math.max(Math.max(0, n.size), end);
    // Limits first: nothing is written when the write would exceed one.
    this.owner.container.checkResize(n, size);
    const s = this.owner.scratchFor(n, true);
    this.hold(s.path);
    this.owner.writeScratch(s, buffer, offset, length, position);
    this.owner.container.stageScratch(n, s.path, size);
    return length;
  }

  async writeAsync(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.write(buffer, offset, length, position);
  }

  truncate(length: number): void {
    const n = this.live();
    if (!this.writable) throw fsError("EINVAL");
    this.owner.truncateNode(n, length);
    if (n.staged?.kind === "path") this.hold(n.staged.path);
  }

  chmod(mode: number): void {
    const n = this.live();
    n.perm = mode & 0o7777;
    this.owner.container.touch(n, n.mtimeNs);
  }

  utimes(_atimeNs: bigint, mtimeNs: bigint): void {
    this.owner.container.setNodeTimes(this.live(), mtimeNs);
  }

  sync(): void {
    this.live();
    // fsync(2) through the synchronous API flushes the scratch file; the commit follows at once in
    // the background (the async forms wait for it).
    const s = this.held ? this.owner.scratchOf(this.held) : undefined;
    if (s && s.fd >= 0) fs.fsyncSync(s.fd);
    void this.owner.commit().catch(() => {});
  }

  async syncAsync(): Promise<void> {
    this.live();
    await this.owner.commit();
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    const p = this.held;
    this.held = null;
    this.owner.releaseHandle(p);
  }
}

/** Scratch directories of processes that are gone: their changes were never committed. */
function removeStaleScratch(file: string): void {
  const abs = path.resolve(file);
  const dir = path.dirname(abs);
  const prefix = `.${path.basename(abs)}.bfc-scratch-`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number.parseInt(name.slice(prefix.length), 10);
    if (!Number.isInteger(pid)) continue;
    if (!processAlive(pid)) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
  }
}
