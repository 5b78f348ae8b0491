/**
 * The `host` filesystem type: a real directory of the machine, confined to its root.
 *
 * Confinement rests on two rules. Every path the type receives must be canonical (no "..", ".",
 * empty or absolute component), so joining it to the root can only name something lexically inside.
 * And the OS is never asked to follow a symlink: the kernel walks paths one `lstat` at a time
 * (structuralLookup is false) and resolves links itself, opens pass O_NOFOLLOW, and path mutations
 * act on the final component itself (unlink, rename, lutimes) or check it first (chmod).
 */
import fs from "node:fs";
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
  OpenFlags,
  StatFs,
} from "../filesystem.ts";

export interface HostOptions {
  /** The host directory that becomes the root of the mount. */
  root: string;
  /** Refuse every mutation (the kernel answers EROFS before calling the type). */
  readonly?: boolean;
}

const C = fs.constants;
// Windows lacks O_NOFOLLOW; there the kernel's own resolution is the only guard.
const O_NOFOLLOW = C.O_NOFOLLOW ?? 0;
const O_NONBLOCK = C.O_NONBLOCK ?? 0;
const WRITE_FLAGS = C.O_WRONLY | C.O_RDWR | C.O_CREAT | C.O_TRUNC | C.O_APPEND;

const TYPE_CAPABILITIES: Capabilities = { readonly: false, symlinks: true, structuralLookup: false };

export const hostType: FileSystemType<HostOptions> = {
  name: "host",
  capabilities: TYPE_CAPABILITIES,
  create: async (options) => createHost(options),
  createSync: (options) => createHost(options),
};

function createHost(options: HostOptions): FileSystem {
  if (options === null || typeof options !== "object" || typeof options.root !== "string" || !options.root) {
    throw fsError("EINVAL", "host: options.root must be a non-empty string");
  }
  if (options.readonly !== undefined && typeof options.readonly !== "boolean") {
    throw fsError("EINVAL", "host: options.readonly must be a boolean");
  }
  let root: string;
  try {
    root = fs.realpathSync(options.root);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new BfcError("ENOENT", "NOT_FOUND", `host: root does not exist: ${options.root}`, { cause: e });
    }
    if (code === "ENOTDIR") {
      throw new BfcError("ENOTDIR", "NOT_A_DIRECTORY", `host: root is not a directory: ${options.root}`, {
        cause: e,
      });
    }
    throw e;
  }
  if (!fs.statSync(root).isDirectory()) {
    throw new BfcError("ENOTDIR", "NOT_A_DIRECTORY", `host: root is not a directory: ${options.root}`);
  }
  return new HostFileSystem(root, options.readonly === true);
}

const isWindows = process.platform === "win32";

class HostFileSystem implements FileSystem {
  readonly capabilities: Capabilities;
  readonly root: string;
  private readonly readonly: boolean;

  constructor(root: string, readonly: boolean) {
    this.root = root;
    this.readonly = readonly;
    this.capabilities = { ...TYPE_CAPABILITIES, readonly };
  }

  /** The host path of a canonical relative path; anything else is refused before it reaches the OS. */
  private host(rel: string): string {
    if (typeof rel !== "string") throw fsError("EINVAL", "host: path must be a string");
    if (rel === "") return this.root;
    if (rel.includes("\0")) throw fsError("EINVAL", "host: path contains a NUL byte", "BAD_PATH");
    // On Windows a backslash or drive colon inside a component would be a separator or a drive.
    if (isWindows && /[\\:]/.test(rel)) {
      throw fsError("EINVAL", `host: non-canonical path '${rel}'`, "BAD_PATH");
    }
    for (const part of rel.split("/")) {
      if (part === "" || part === "." || part === "..") {
        throw fsError("EINVAL", `host: non-canonical path '${rel}'`, "BAD_PATH");
      }
    }
    return this.root.endsWith("/") ? this.root + rel : `${this.root}/${rel}`;
  }

  private writable(what: string): void {
    if (this.readonly) throw fsError("EROFS", `host: ${what} on a read-only mount`);
  }

  lstat(path: string): NodeStat | undefined {
    const p = this.host(path);
    try {
      const st = fs.lstatSync(p, { bigint: true, throwIfNoEntry: false });
      return st === undefined ? undefined : toNodeStat(st);
    } catch (e) {
      // A file where a directory was expected is absence too, as the contract asks.
      if ((e as NodeJS.ErrnoException).code === "ENOTDIR") return undefined;
      throw e;
    }
  }

  readdir(path: string): DirEntry[] {
    const p = this.host(path);
    const out: DirEntry[] = [];
    for (const d of fs.readdirSync(p, { withFileTypes: true })) {
      let type = direntType(d);
      if (type === undefined) {
        // Node fills unknown d_type with an lstat, so this only happens if the entry vanished meanwhile.
        const st = this.lstat(path === "" ? d.name : `${path}/${d.name}`);
        if (st === undefined) continue;
        type = st.type;
      }
      out.push({ name: d.name, type });
    }
    return out;
  }

  readlink(path: string): string {
    return fs.readlinkSync(this.host(path));
  }

  open(path: string, flags: OpenFlags, mode: number): FileHandle {
    const p = this.host(path);
    if (flags & WRITE_FLAGS) this.writable("open for writing");
    const fd = fs.openSync(p, flags | O_NOFOLLOW, mode);
    return this.wrap(fd);
  }

  async openAsync(path: string, flags: OpenFlags, mode: number): Promise<FileHandle> {
    const p = this.host(path);
    if (flags & WRITE_FLAGS) this.writable("open for writing");
    const fd = await new Promise<number>((resolve, reject) =>
      fs.open(p, flags | O_NOFOLLOW, mode, (err, fd) => (err ? reject(err) : resolve(fd))),
    );
    return this.wrap(fd);
  }

  /** Files only: a directory opens fine for reading on POSIX, but the contract opens regular files. */
  private wrap(fd: number): FileHandle {
    try {
      if (fs.fstatSync(fd).isDirectory()) throw fsError("EISDIR", "host: open of a directory");
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    return new HostFileHandle(fd, this.readonly);
  }

  readFile(path: string): Buffer {
    const fd = fs.openSync(this.host(path), C.O_RDONLY | O_NOFOLLOW);
    try {
      return fs.readFileSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  async readFileAsync(path: string): Promise<Buffer> {
    const fh = await fs.promises.open(this.host(path), C.O_RDONLY | O_NOFOLLOW);
    try {
      return await fh.readFile();
    } finally {
      await fh.close();
    }
  }

  statfs(): StatFs {
    const s = fs.statfsSync(this.root);
    return {
      type: s.type,
      bsize: s.bsize,
      blocks: s.blocks,
      bfree: s.bfree,
      bavail: s.bavail,
      files: s.files,
      ffree: s.ffree,
    };
  }

  mkdir(path: string, mode: number): void {
    this.writable("mkdir");
    fs.mkdirSync(this.host(path), { mode });
  }

  rmdir(path: string): void {
    this.writable("rmdir");
    fs.rmdirSync(this.host(path));
  }

  unlink(path: string): void {
    this.writable("unlink");
    fs.unlinkSync(this.host(path));
  }

  rename(from: string, to: string): void {
    this.writable("rename");
    fs.renameSync(this.host(from), this.host(to));
  }

  symlink(target: string, path: string): void {
    this.writable("symlink");
    // The target is stored verbatim; only the kernel ever interprets it, inside the VFS.
    fs.symlinkSync(target, this.host(path));
  }

  chmod(path: string, mode: number): void {
    this.writable("chmod");
    const p = this.host(path);
    // Linux has no lchmod, and chmod(2) follows a final symlink, possibly out of the root.
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (st === undefined) throw fsError("ENOENT", "host: chmod of a missing entry");
    if (st.isSymbolicLink()) throw fsError("ENOTSUP", "host: chmod of a symlink", "UNSUPPORTED");
    fs.chmodSync(p, mode);
  }

  utimes(path: string, atimeNs: bigint, mtimeNs: bigint): void {
    this.writable("utimes");
    fs.lutimesSync(this.host(path), nsToSeconds(atimeNs), nsToSeconds(mtimeNs));
  }

  truncate(path: string, length: number): void {
    this.writable("truncate");
    // Through a descriptor so a final symlink is refused (ELOOP) instead of followed; O_NONBLOCK keeps
    // a FIFO from blocking the open.
    const fd = fs.openSync(this.host(path), C.O_WRONLY | O_NOFOLLOW | O_NONBLOCK);
    try {
      fs.ftruncateSync(fd, length);
    } finally {
      fs.closeSync(fd);
    }
  }
}

class HostFileHandle implements FileHandle {
  private fd: number;
  private readonly readonly: boolean;

  constructor(fd: number, readonly: boolean) {
    this.fd = fd;
    this.readonly = readonly;
  }

  /** The live descriptor; after close its number may belong to another file, so refuse to use it. */
  private get live(): number {
    if (this.fd < 0) throw fsError("EBADF", "host: file handle is closed");
    return this.fd;
  }

  private writable(what: string): number {
    const fd = this.live;
    if (this.readonly) throw fsError("EROFS", `host: ${what} on a read-only mount`);
    return fd;
  }

  stat(): NodeStat {
    return toNodeStat(fs.fstatSync(this.live, { bigint: true }));
  }

  read(buffer: Uint8Array, offset: number, length: number, position: number): number {
    return fs.readSync(this.live, buffer, offset, length, position);
  }

  readAsync(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const fd = this.live;
    return new Promise((resolve, reject) =>
      fs.read(fd, buffer, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))),
    );
  }

  write(buffer: Uint8Array, offset: number, length: number, position: number): number {
    return fs.writeSync(this.writable("write"), buffer, offset, length, position);
  }

  writeAsync(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const fd = this.writable("write");
    return new Promise((resolve, reject) =>
      fs.write(fd, buffer, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))),
    );
  }

  truncate(length: number): void {
    fs.ftruncateSync(this.writable("truncate"), length);
  }

  chmod(mode: number): void {
    fs.fchmodSync(this.writable("chmod"), mode);
  }

  utimes(atimeNs: bigint, mtimeNs: bigint): void {
    fs.futimesSync(this.writable("utimes"), nsToSeconds(atimeNs), nsToSeconds(mtimeNs));
  }

  sync(): void {
    fs.fsyncSync(this.live);
  }

  close(): void {
    const fd = this.live;
    this.fd = -1;
    fs.closeSync(fd);
  }

  async closeAsync(): Promise<void> {
    const fd = this.live;
    this.fd = -1;
    await new Promise<void>((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
  }
}

function direntType(d: fs.Dirent): FileType | undefined {
  if (d.isFile()) return "file";
  if (d.isDirectory()) return "directory";
  if (d.isSymbolicLink()) return "symlink";
  if (d.isBlockDevice()) return "block";
  if (d.isCharacterDevice()) return "character";
  if (d.isFIFO()) return "fifo";
  if (d.isSocket()) return "socket";
  return undefined;
}

function modeType(mode: number): FileType {
  switch (mode & C.S_IFMT) {
    case C.S_IFREG:
      return "file";
    case C.S_IFDIR:
      return "directory";
    case C.S_IFLNK:
      return "symlink";
    case C.S_IFBLK:
      return "block";
    case C.S_IFCHR:
      return "character";
    case C.S_IFIFO:
      return "fifo";
    default:
      return "socket";
  }
}

/** Milliseconds as fs.Stats has them (fractional), without losing precision through Number(ns). */
function nsToMs(ns: bigint): number {
  return Number(ns / 1_000_000n) + Number(ns % 1_000_000n) / 1e6;
}

/** Seconds for utimes/futimes, which take a double: about 0.2 µs of precision at today's dates. */
function nsToSeconds(ns: bigint): number {
  return Number(ns / 1_000_000_000n) + Number(ns % 1_000_000_000n) / 1e9;
}

function toNodeStat(st: fs.BigIntStats): NodeStat {
  const mode = Number(st.mode);
  return {
    type: modeType(mode),
    mode,
    size: Number(st.size),
    ino: Number(st.ino),
    nlink: Number(st.nlink),
    uid: Number(st.uid),
    gid: Number(st.gid),
    rdev: Number(st.rdev),
    blocks: Number(st.blocks),
    mtimeMs: nsToMs(st.mtimeNs),
    mtimeNs: st.mtimeNs,
    atimeMs: nsToMs(st.atimeNs),
    atimeNs: st.atimeNs,
    ctimeMs: nsToMs(st.ctimeNs),
    ctimeNs: st.ctimeNs,
    birthtimeMs: nsToMs(st.birthtimeNs),
    birthtimeNs: st.birthtimeNs,
  };
}
