import fs from "node:fs";
import { fileURLToPath } from "node:url";
import { BfcError, type ErrnoCode } from "../errors.ts";
import { VfsDir } from "./dir.ts";
import { nodeError, toNodeError } from "./errors.ts";
import { FdTable, type OpenFile } from "./fd-table.ts";
import type {
  DirEntry,
  EncodedListing,
  FileHandle,
  FileSystem,
  FileSystemType,
  NodeStat,
} from "./filesystem.ts";
import { canRead, canWrite, isWriting, parseFlags } from "./flags.ts";
import { type Mount, MountTable } from "./mount-table.ts";
import { compareNames } from "./names.ts";
import { toBigIntStats, toDirent, toStats } from "./stats.ts";
import {
  type FdIo,
  type ReadStreamOptions,
  VfsReadStream,
  VfsWriteStream,
  type WriteStreamOptions,
} from "./streams.ts";
import { type Located, MAX_SYMLINK_HOPS, type ParentLocated, Walker } from "./walk.ts";

const { O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_DIRECTORY, O_NOFOLLOW, F_OK, R_OK, W_OK, X_OK, COPYFILE_EXCL } =
  fs.constants;

export type PathLike = string | Buffer | URL;
export type Encoding = BufferEncoding | "buffer" | null | undefined;

export interface StatOptions {
  bigint?: boolean;
  throwIfNoEntry?: boolean;
}

export interface ReaddirOptions {
  encoding?: Encoding;
  withFileTypes?: boolean;
  recursive?: boolean;
}

export interface MountInfo {
  target: string;
  type: string;
  readonly: boolean;
  source: string | undefined;
  dev: number;
}

export interface VfsOptions {
  /** Filesystem types available to `mount` besides any registered later. */
  types?: FileSystemType<never>[];
  /** Bound on open descriptors (EMFILE past it). */
  maxOpenFiles?: number;
}

export interface MountOptions {
  /** Mount read-only even when the type can write. */
  readonly?: boolean;
  [option: string]: unknown;
}

/** Directories whose name lists are kept (each list is one array of strings). */
const NAME_CACHE_DIRS = 4096;

type Callback<T> = (err: Error | null, value?: T) => void;

function argError(message: string, code = "ERR_INVALID_ARG_TYPE"): TypeError {
  const e = new TypeError(message);
  (e as TypeError & { code: string }).code = code;
  return e;
}

function rangeError(name: string, value: unknown, range: string): RangeError {
  const e = new RangeError(
    `The value of "${name}" is out of range. It must be ${range}. Received ${String(value)}`,
  );
  (e as RangeError & { code: string }).code = "ERR_OUT_OF_RANGE";
  return e;
}

/** string | Buffer | file: URL → string, rejecting NUL bytes as Node does. */
export function toPath(p: PathLike, name = "path"): string {
  let s: string;
  if (typeof p === "string") s = p;
  else if (Buffer.isBuffer(p) || p instanceof Uint8Array) s = Buffer.from(p).toString();
  else if (p instanceof URL) s = fileURLToPath(p);
  else
    throw argError(
      `The "${name}" argument must be of type string or an instance of Buffer or URL. Received ${typeof p}`,
    );
  if (s.includes("\0")) {
    throw argError(
      `The argument '${name}' must be a string, Uint8Array, or URL without null bytes. Received ${JSON.stringify(s)}`,
      "ERR_INVALID_ARG_VALUE",
    );
  }
  return s;
}

function encodingOf(options: unknown): Encoding {
  if (typeof options === "string") return options as Encoding;
  if (options && typeof options === "object" && "encoding" in options)
    return (options as { encoding: Encoding }).encoding;
  return undefined;
}

/** Node's toUnixTimestamp: seconds as number, numeric string or Date. */
function timeToNs(t: number | string | Date, name: string): bigint {
  let sec: number;
  if (t instanceof Date) sec = t.getTime() / 1000;
  else if (typeof t === "number") sec = t;
  else if (typeof t === "string" && t.trim() !== "" && Number.isFinite(Number(t))) sec = Number(t);
  else
    throw argError(
      `The "${name}" argument must be of type number or an instance of Date. Received ${String(t)}`,
    );
  if (!Number.isFinite(sec)) sec = Date.now() / 1000;
  const whole = Math.floor(sec);
  return BigInt(whole) * 1_000_000_000n + BigInt(Math.round((sec - whole) * 1e9));
}

function joinV(dir: string, name: string): string {
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}

function encodeName(name: string, enc: Encoding): string | Buffer {
  return enc === "buffer" ? Buffer.from(name) : name;
}

/**
 * A virtual filesystem: a mount table of filesystem types behind an API shaped like `node:fs`
 * (sync, callback and `vfs.promises` forms). Paths are absolute VFS paths; relative ones are taken
 * from "/". Errors are Node-style system errors (`code`, `errno`, `syscall`, `path`).
 */
export class Vfs implements FdIo {
  readonly promises: VfsPromises;
  readonly constants = fs.constants;
  private readonly types = new Map<string, FileSystemType<never>>();
  private readonly table = new MountTable();
  private readonly walker = new Walker(this.table);
  private readonly fds: FdTable;
  /** Directory name lists of read-only mounts, by mount id and path (cleared when mounts change). */
  private readonly nameCache = new Map<string, string[]>();

  constructor(options: VfsOptions = {}) {
    for (const t of options.types ?? []) this.registerType(t);
    this.fds = new FdTable(options.maxOpenFiles ?? 65536);
    this.promises = new VfsPromises(this);
  }

  // ------------------------------------------------------------------ mount table

  /** Adds a filesystem type (`{name, capabilities, create(options)}`); a later one replaces an earlier one. */
  registerType<O>(type: FileSystemType<O>): void {
    if (!type || typeof type.name !== "string" || typeof type.create !== "function") {
      throw argError("a filesystem type needs a name and a create(options) function");
    }
    this.types.set(type.name, type as unknown as FileSystemType<never>);
  }

  typeNames(): string[] {
    return [...this.types.keys()];
  }

  private typeOf(type: string | FileSystemType<never>): FileSystemType<never> {
    if (typeof type !== "string") return type;
    const t = this.types.get(type);
    if (!t) {
      throw new BfcError(
        "EINVAL",
        "INVALID_ARGUMENT",
        `unknown filesystem type '${type}' (known: ${this.typeNames().join(", ")})`,
      );
    }
    return t;
  }

  /** Canonical absolute target; the directories above it are resolved like Linux resolves mount targets. */
  private mountTarget(target: string): string {
    const t = toPath(target, "target");
    const abs = t.startsWith("/") ? t : `/${t}`;
    try {
      const loc = this.walker.resolve(abs, true, "mount", t);
      if (loc.st.type !== "directory") throw nodeError("ENOTDIR", "mount", t);
      return loc.vpath;
    } catch (e) {
      if ((e as BfcError).code !== "ENOENT") throw e;
    }
    // A target that exists nowhere yet: taken lexically, with synthetic directories leading to it.
    const parts: string[] = [];
    for (const s of abs.split("/")) {
      if (s === "" || s === ".") continue;
      if (s === "..") parts.pop();
      else parts.push(s);
    }
    return `/${parts.join("/")}`;
  }

  private addMount(typeName: string, fsys: FileSystem, target: string, options: MountOptions): MountInfo {
    const { id, dev } = this.table.allocate();
    const source = [options.path, options.root, options.image].find((v) => typeof v === "string") as
      | string
      | undefined;
    const mount: Mount = {
      id,
      dev,
      path: target,
      type: typeName,
      fs: fsys,
      readonly: options.readonly === true || fsys.capabilities.readonly,
      source,
      openFiles: 0,
    };
    this.table.add(mount);
    this.nameCache.clear();
    return this.info(mount);
  }

  private info(m: Mount): MountInfo {
    return { target: m.path, type: m.type, readonly: m.readonly, source: m.source, dev: m.dev };
  }

  /** Opens a filesystem of `type` with `options` and mounts it at `target`. */
  async mount(
    type: string | FileSystemType<never>,
    target: string,
    options: MountOptions = {},
  ): Promise<MountInfo> {
    const t = this.typeOf(type);
    const where = this.mountTarget(target);
    if (this.table.list().some((m) => m.path === where)) throw nodeError("EBUSY", "mount", target);
    const fsys = await t.create(options as never);
    try {
      return this.addMount(t.name, fsys, where, options);
    } catch (e) {
      await fsys.close?.();
      throw e;
    }
  }

  /** `mount` for types that can open synchronously (bfc, host, memory). */
  mountSync(type: string | FileSystemType<never>, target: string, options: MountOptions = {}): MountInfo {
    const t = this.typeOf(type);
    if (!t.createSync) {
      throw new BfcError(
        "ENOTSUP",
        "UNSUPPORTED",
        `filesystem type '${t.name}' can only be mounted with mount()`,
      );
    }
    const where = this.mountTarget(target);
    if (this.table.list().some((m) => m.path === where)) throw nodeError("EBUSY", "mount", target);
    const fsys = t.createSync(options as never);
    try {
      return this.addMount(t.name, fsys, where, options);
    } catch (e) {
      void fsys.close?.();
      throw e;
    }
  }

  /**
   * Unmounts the filesystem at `target`. Refuses (EBUSY) while descriptors are open on it or other
   * mounts lie beneath it, unless `force` (which closes those descriptors).
   */
  async unmount(target: string, options: { force?: boolean } = {}): Promise<void> {
    const t = toPath(target, "target");
    const abs = t.startsWith("/") ? t : `/${t}`;
    const m = this.table.list().find((x) => x.path === abs) ?? this.findMountByResolved(abs);
    if (!m) throw nodeError("EINVAL", "umount", t);
    const nested = this.table
      .list()
      .some((x) => x !== m && (m.path === "/" || x.path.startsWith(`${m.path}/`)));
    if (nested) throw nodeError("EBUSY", "umount", t);
    if (m.openFiles > 0) {
      if (!options.force) throw nodeError("EBUSY", "umount", t);
      for (const f of [...this.fds.values()]) {
        if (f.mount === m) this.closeSync(f.fd);
      }
    }
    this.table.remove(m.path);
    this.nameCache.clear();
    await m.fs.close?.();
  }

  private findMountByResolved(abs: string): Mount | undefined {
    try {
      const loc = this.walker.resolve(abs, true, "umount");
      return this.table.list().find((x) => x.path === loc.vpath);
    } catch {
      return undefined;
    }
  }

  mounts(): MountInfo[] {
    return this.table.list().map((m) => this.info(m));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.unmountAll();
  }

  /** Unmounts everything (deepest first), closing open descriptors. */
  async unmountAll(): Promise<void> {
    const all = this.table.list().sort((a, b) => b.path.length - a.path.length);
    for (const m of all) await this.unmount(m.path, { force: true });
  }

  // ------------------------------------------------------------------ helpers

  private resolve(path: PathLike, follow: boolean, syscall: string): Located {
    const p = toPath(path);
    return this.walker.resolve(p, follow, syscall, p);
  }

  private parentOf(path: string, syscall: string): ParentLocated {
    return this.walker.resolveParent(path, syscall, path);
  }

  /** A mount that may be written, or EROFS. */
  private writable(m: Mount, synthetic: boolean, syscall: string, path: string, dest?: string): FileSystem {
    if (m.readonly || synthetic) throw nodeError("EROFS", syscall, path, dest);
    return m.fs;
  }

  private op<T>(syscall: string, path: string | undefined, run: () => T, dest?: string): T {
    try {
      return run();
    } catch (e) {
      throw toNodeError(e, syscall, path, dest);
    }
  }

  /** Runs a path lookup for a two-path call, reporting its failure as `syscall 'path' -> 'dest'`. */
  private twoPaths<T>(syscall: string, path: string, dest: string, run: () => T): T {
    try {
      return run();
    } catch (e) {
      if (e instanceof BfcError) throw nodeError(e.code, syscall, path, dest, e.cause ?? e);
      throw e;
    }
  }

  private stats(loc: Located, options?: StatOptions): fs.Stats | fs.BigIntStats {
    return options?.bigint ? toBigIntStats(loc.st, loc.mount.dev) : toStats(loc.st, loc.mount.dev);
  }

  /** Names in a directory, merged with mount points directly inside it. */
  private listDir(loc: Located, syscall: string, path: string): DirEntry[] {
    let entries = loc.synthetic ? [] : this.op(syscall, path, () => loc.mount.fs.readdir(loc.rel));
    const extra = this.table.mountChildren(loc.vpath);
    if (extra) {
      const seen = new Set(entries.map((e) => e.name));
      const added = [...extra]
        .filter((n) => !seen.has(n))
        .map((name) => ({ name, type: "directory" as const }));
      if (added.length > 0) {
        entries = entries
          .map((e) => (extra.has(e.name) ? { name: e.name, type: "directory" as const } : e))
          .concat(added)
          .sort((a, b) => compareNames(a.name, b.name));
      }
    }
    return entries;
  }

  // ------------------------------------------------------------------ metadata (sync)

  statSync(path: PathLike, options?: StatOptions & { bigint?: false }): fs.Stats;
  statSync(path: PathLike, options: StatOptions & { bigint: true }): fs.BigIntStats;
  statSync(path: PathLike, options?: StatOptions): fs.Stats | fs.BigIntStats | undefined;
  statSync(path: PathLike, options?: StatOptions): fs.Stats | fs.BigIntStats | undefined {
    try {
      return this.stats(this.resolve(path, true, "stat"), options);
    } catch (e) {
      if (options?.throwIfNoEntry === false && isMissing(e)) return undefined;
      throw e;
    }
  }

  lstatSync(path: PathLike, options?: StatOptions & { bigint?: false }): fs.Stats;
  lstatSync(path: PathLike, options: StatOptions & { bigint: true }): fs.BigIntStats;
  lstatSync(path: PathLike, options?: StatOptions): fs.Stats | fs.BigIntStats | undefined;
  lstatSync(path: PathLike, options?: StatOptions): fs.Stats | fs.BigIntStats | undefined {
    try {
      return this.stats(this.resolve(path, false, "lstat"), options);
    } catch (e) {
      if (options?.throwIfNoEntry === false && isMissing(e)) return undefined;
      throw e;
    }
  }

  /**
   * The node at `path` (a final symlink not followed) as its filesystem type describes it, or
   * undefined when nothing is there: for adapters that encode stats themselves (the FUSE server),
   * so no fs.Stats is built and times keep their nanoseconds.
   */
  lstatNode(path: string): NodeStat | undefined {
    // Missing paths are the common answer here (every file a FUSE client creates is looked up
    // first) and their errors are dropped: capturing stack traces for them was a large share of
    // such a lookup's cost.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return this.walker.resolve(path, false, "lstat", path).st;
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    } finally {
      Error.stackTraceLimit = limit;
    }
  }

  /** A directory's children with their types (mount points merged), without Dirent objects. */
  readdirNodes(path: string): DirEntry[] {
    const loc = this.walker.resolve(path, true, "scandir", path);
    if (loc.st.type !== "directory") throw nodeError("ENOTDIR", "scandir", path);
    return this.listDir(loc, "scandir", path);
  }

  /**
   * A directory's children with names as UTF-8 bytes (`EncodedListing`), where its filesystem type
   * keeps them so and no mount point lies in it; undefined otherwise (use `readdirNodes`).
   */
  readdirEncoded(path: string): EncodedListing | undefined {
    const loc = this.walker.resolve(path, true, "scandir", path);
    if (loc.st.type !== "directory") throw nodeError("ENOTDIR", "scandir", path);
    const fsys = loc.mount.fs;
    if (!fsys.readdirEncoded || loc.synthetic || this.table.mountChildren(loc.vpath)) return undefined;
    const list = fsys.readdirEncoded.bind(fsys);
    return this.op("scandir", path, () => list(loc.rel));
  }

  /**
   * A directory's children with their stats (mount points merged): one pass where the type can
   * (`readdirStats`), else an lstat per child. For adapters such as the FUSE server's READDIRPLUS.
   */
  readdirStats(path: string): { name: string; stat: NodeStat }[] {
    const loc = this.walker.resolve(path, true, "scandir", path);
    if (loc.st.type !== "directory") throw nodeError("ENOTDIR", "scandir", path);
    const fsys = loc.mount.fs;
    if (fsys.readdirStats && !loc.synthetic && !this.table.mountChildren(loc.vpath)) {
      const list = fsys.readdirStats.bind(fsys);
      return this.op("scandir", path, () => list(loc.rel));
    }
    const out: { name: string; stat: NodeStat }[] = [];
    for (const e of this.listDir(loc, "scandir", path)) {
      const stat = this.lstatNode(joinV(loc.vpath, e.name));
      if (stat) out.push({ name: e.name, stat });
    }
    return out;
  }

  /** `fstatSync`'s node, as `lstatNode` gives it. */
  fstatNode(fd: number): NodeStat {
    const f = this.fds.get(fd, "fstat");
    return f.handle
      ? this.op("fstat", undefined, () => (f.handle as FileHandle).stat())
      : (f.dirStat as NodeStat);
  }

  fstatSync(fd: number, options?: StatOptions & { bigint?: false }): fs.Stats;
  fstatSync(fd: number, options: StatOptions & { bigint: true }): fs.BigIntStats;
  fstatSync(fd: number, options?: StatOptions): fs.Stats | fs.BigIntStats;
  fstatSync(fd: number, options?: StatOptions): fs.Stats | fs.BigIntStats {
    const f = this.fds.get(fd, "fstat");
    const st = f.handle
      ? this.op("fstat", undefined, () => (f.handle as FileHandle).stat())
      : (f.dirStat as NodeStat);
    return options?.bigint ? toBigIntStats(st, f.mount.dev) : toStats(st, f.mount.dev);
  }

  existsSync(path: PathLike): boolean {
    try {
      this.resolve(path, true, "access");
      return true;
    } catch {
      return false;
    }
  }

  accessSync(path: PathLike, mode: number = F_OK): void {
    const p = toPath(path);
    const loc = this.walker.resolve(p, true, "access", p);
    if (mode === F_OK) return;
    if (mode & W_OK && (loc.mount.readonly || loc.synthetic)) throw nodeError("EROFS", "access", p);
    const st = loc.st;
    const uid = process.getuid?.() ?? -1;
    if (uid === 0) {
      // root: read and write always; execute needs some x bit (or a directory).
      if (mode & X_OK && st.type !== "directory" && (st.mode & 0o111) === 0)
        throw nodeError("EACCES", "access", p);
      return;
    }
    const gids = process.getgroups?.() ?? [];
    const shift = st.uid === uid ? 6 : st.gid === process.getgid?.() || gids.includes(st.gid) ? 3 : 0;
    const bits = (st.mode >> shift) & 7;
    const want = (mode & R_OK ? 4 : 0) | (mode & W_OK ? 2 : 0) | (mode & X_OK ? 1 : 0);
    if ((bits & want) !== want) throw nodeError("EACCES", "access", p);
  }

  private cacheNames(key: string, names: string[]): void {
    if (this.nameCache.size >= NAME_CACHE_DIRS) this.nameCache.clear();
    this.nameCache.set(key, names);
  }

  readdirSync(
    path: PathLike,
    options?: ReaddirOptions | BufferEncoding | "buffer",
  ): string[] | Buffer[] | fs.Dirent[] {
    const p = toPath(path);
    const opts = typeof options === "object" && options !== null ? options : {};
    const enc = encodingOf(options);
    const namesOnly = !opts.recursive && !opts.withFileTypes && enc !== "buffer";
    if (namesOnly) {
      // A path that one lookup resolved in an immutable mount lists the same names until the
      // mount table changes (which empties the cache): no walk at all.
      const known = this.nameCache.get(p);
      if (known !== undefined) return known.slice();
    }
    const direct = this.walker.lookupStructural(p, true, "scandir", p);
    const loc = direct ?? this.walker.resolve(p, true, "scandir", p);
    if (loc.st.type !== "directory") throw nodeError("ENOTDIR", "scandir", p);
    if (!opts.recursive) {
      // Immutable mounts never change while mounted: their name lists are built once, copied out.
      // Keys: "<mount id>\0<path in the mount>", and the caller's path for one-lookup paths
      // (never containing NUL, so the two cannot collide).
      if (namesOnly && loc.mount.fs.capabilities.immutable === true && !loc.synthetic) {
        const key = `${loc.mount.id}\0${loc.rel}`;
        let names = this.nameCache.get(key);
        if (!names) {
          names = this.listDir(loc, "scandir", p).map((e) => e.name);
          this.cacheNames(key, names);
        }
        if (direct) this.cacheNames(p, names);
        return names.slice();
      }
      const entries = this.listDir(loc, "scandir", p);
      if (opts.withFileTypes) return entries.map((e) => toDirent(encodeName(e.name, enc), e.type, p));
      return entries.map((e) => encodeName(e.name, enc)) as string[] | Buffer[];
    }
    // Breadth-first like Node's; symlinks to directories are listed, not entered (no loops).
    const out: (string | Buffer | fs.Dirent)[] = [];
    const queue: { loc: Located; rel: string; shown: string }[] = [{ loc, rel: "", shown: p }];
    for (let q = 0; q < queue.length; q++) {
      const { loc: dir, rel, shown } = queue[q] as { loc: Located; rel: string; shown: string };
      for (const e of this.listDir(dir, "scandir", shown)) {
        const relName = rel === "" ? e.name : `${rel}/${e.name}`;
        if (opts.withFileTypes) out.push(toDirent(encodeName(e.name, enc), e.type, shown));
        else out.push(encodeName(relName, enc));
        if (e.type === "directory") {
          const childV = joinV(dir.vpath, e.name);
          const child = this.walker.resolve(childV, false, "scandir", childV);
          queue.push({
            loc: child,
            rel: relName,
            shown: shown.endsWith("/") ? `${shown}${e.name}` : `${shown}/${e.name}`,
          });
        }
      }
    }
    return out as string[] | Buffer[] | fs.Dirent[];
  }

  opendirSync(path: PathLike, options: { encoding?: Encoding } = {}): VfsDir {
    const p = toPath(path);
    const loc = this.walker.resolve(p, true, "opendir", p);
    if (loc.st.type !== "directory") throw nodeError("ENOTDIR", "opendir", p);
    const enc = options.encoding;
    return new VfsDir(p, () =>
      this.listDir(loc, "opendir", p).map((e) => toDirent(encodeName(e.name, enc), e.type, p)),
    );
  }

  readlinkSync(
    path: PathLike,
    options?: { encoding?: Encoding } | BufferEncoding | "buffer",
  ): string | Buffer {
    const p = toPath(path);
    const loc = this.walker.resolve(p, false, "readlink", p);
    if (loc.st.type !== "symlink") throw nodeError("EINVAL", "readlink", p);
    const target = this.op("readlink", p, () => loc.mount.fs.readlink(loc.rel));
    return encodingOf(options) === "buffer" ? Buffer.from(target) : target;
  }

  realpathSync(
    path: PathLike,
    options?: { encoding?: Encoding } | BufferEncoding | "buffer",
  ): string | Buffer {
    const loc = this.resolve(path, true, "realpath");
    return encodingOf(options) === "buffer" ? Buffer.from(loc.vpath) : loc.vpath;
  }

  statfsSync(path: PathLike, options?: { bigint?: boolean }): fs.StatsFs | fs.BigIntStatsFs {
    const loc = this.resolve(path, true, "statfs");
    const s = loc.mount.fs.statfs?.() ?? {
      type: 0,
      bsize: 4096,
      blocks: 0,
      bfree: 0,
      bavail: 0,
      files: 0,
      ffree: 0,
    };
    if (options?.bigint) {
      return Object.fromEntries(
        Object.entries(s).map(([k, v]) => [k, BigInt(v)]),
      ) as unknown as fs.BigIntStatsFs;
    }
    return { ...s } as fs.StatsFs;
  }

  // ------------------------------------------------------------------ descriptors (sync)

  /** Resolves (and with O_CREAT creates) the file `p` and enters it in the fd table. */
  private openFile(p: string, flags: number, mode: number): OpenFile {
    let loc: Located | undefined;
    let created: FileHandle | undefined;
    if (flags & O_CREAT) {
      let target = p;
      for (let hops = 0; ; hops++) {
        const par = this.parentOf(target, "open");
        if (par.name === "" || Walker.hasTrailingSlash(target)) throw nodeError("EISDIR", "open", p);
        if (par.st === undefined) {
          const fsys = this.writable(par.parent.mount, par.parent.synthetic, "open", p);
          created = this.op("open", p, () => fsys.open(par.rel, flags, mode));
          loc = {
            mount: par.parent.mount,
            rel: par.rel,
            vpath: par.vpath,
            st: this.op("open", p, () => (created as FileHandle).stat()),
            synthetic: false,
          };
          break;
        }
        if (flags & O_EXCL) throw nodeError("EEXIST", "open", p);
        if (par.st.type === "symlink" && !(flags & O_NOFOLLOW)) {
          // Linux creates the target of a dangling symlink.
          if (hops >= MAX_SYMLINK_HOPS) throw nodeError("ELOOP", "open", p);
          const link = this.op("open", p, () => par.parent.mount.fs.readlink(par.rel));
          if (link === "") throw nodeError("ENOENT", "open", p);
          target = link.startsWith("/") ? link : joinV(par.parent.vpath, link);
          continue;
        }
        loc = this.walker.resolve(par.vpath, false, "open", p);
        break;
      }
    } else {
      loc = this.walker.resolve(p, !(flags & O_NOFOLLOW), "open", p);
    }
    const st = loc.st;
    if (st.type === "symlink") throw nodeError("ELOOP", "open", p);
    if (flags & O_DIRECTORY && st.type !== "directory") throw nodeError("ENOTDIR", "open", p);
    const writing = isWriting(flags) && !created;
    if (st.type === "directory") {
      if (canWrite(flags) || flags & (O_TRUNC | O_APPEND)) throw nodeError("EISDIR", "open", p);
      return this.fds.add(
        {
          mount: loc.mount,
          vpath: loc.vpath,
          rel: loc.rel,
          handle: null,
          dirStat: st,
          flags,
          position: 0,
          readable: true,
          writable: false,
          append: false,
        },
        "open",
        p,
      );
    }
    if (writing && canWrite(flags)) this.writable(loc.mount, loc.synthetic, "open", p);
    else if (flags & O_TRUNC && !created) this.writable(loc.mount, loc.synthetic, "open", p);
    const l = loc;
    const handle = created ?? this.op("open", p, () => l.mount.fs.open(l.rel, flags, mode));
    try {
      if (flags & O_TRUNC && canWrite(flags) && !created) {
        if (!handle.truncate) throw nodeError("EROFS", "open", p);
        handle.truncate(0);
      }
      return this.fds.add(
        {
          mount: loc.mount,
          vpath: loc.vpath,
          rel: loc.rel,
          handle,
          dirStat: null,
          flags,
          position: 0,
          readable: canRead(flags),
          writable: canWrite(flags),
          append: (flags & O_APPEND) !== 0,
        },
        "open",
        p,
      );
    } catch (e) {
      handle.close();
      throw toNodeError(e, "open", p);
    }
  }

  openSync(path: PathLike, flags?: string | number, mode?: number): number {
    const p = toPath(path);
    return this.openFile(p, parseFlags(flags), mode ?? 0o666).fd;
  }

  closeSync(fd: number): void {
    const f = this.fds.remove(fd, "close");
    if (f.handle) this.op("close", undefined, () => (f.handle as FileHandle).close());
  }

  /** Normalizes Node's three readSync/read signatures to (buffer, offset, length, position). */
  private readArgs(
    buffer: unknown,
    offsetOrOptions: unknown,
    length: unknown,
    position: unknown,
  ): [Uint8Array, number, number, number | null] {
    let buf = buffer as Uint8Array;
    let offset: unknown = offsetOrOptions;
    let len = length;
    let pos = position;
    if (!(buf instanceof Uint8Array)) {
      if (buffer && typeof buffer === "object" && "buffer" in buffer) {
        const o = buffer as {
          buffer: Uint8Array;
          offset?: number;
          length?: number;
          position?: number | bigint | null;
        };
        buf = o.buffer;
        offset = o.offset;
        len = o.length;
        pos = o.position;
      } else {
        throw argError('The "buffer" argument must be an instance of Buffer, TypedArray, or DataView.');
      }
    } else if (offsetOrOptions && typeof offsetOrOptions === "object") {
      const o = offsetOrOptions as { offset?: number; length?: number; position?: number | bigint | null };
      offset = o.offset;
      len = o.length;
      pos = o.position;
    }
    const off = offset === undefined || offset === null ? 0 : Number(offset);
    if (!Number.isInteger(off) || off < 0 || off > buf.byteLength)
      throw rangeError("offset", offset, `>= 0 && <= ${buf.byteLength}`);
    const n = len === undefined || len === null ? buf.byteLength - off : Number(len);
    if (!Number.isInteger(n) || n < 0 || n > buf.byteLength - off) {
      throw rangeError("length", len, `>= 0 && <= ${buf.byteLength - off}`);
    }
    let at: number | null = null;
    if (typeof pos === "bigint") at = Number(pos);
    else if (typeof pos === "number" && pos >= 0) at = pos;
    if (at !== null && !Number.isSafeInteger(at))
      throw rangeError("position", pos, `>= 0 && <= ${Number.MAX_SAFE_INTEGER}`);
    return [buf, off, n, at];
  }

  private readable(fd: number, syscall: string): OpenFile {
    const f = this.fds.get(fd, syscall);
    if (!f.readable) throw nodeError("EBADF", syscall);
    if (!f.handle) throw nodeError("EISDIR", syscall);
    return f;
  }

  readSync(
    fd: number,
    buffer: Uint8Array,
    offset?: number | object,
    length?: number,
    position?: number | bigint | null,
  ): number;
  readSync(fd: number, buffer: unknown, offset?: unknown, length?: unknown, position?: unknown): number {
    if (
      buffer instanceof Uint8Array &&
      typeof position === "number" &&
      Number.isSafeInteger(position) &&
      position >= 0 &&
      typeof offset === "number" &&
      typeof length === "number" &&
      Number.isInteger(offset) &&
      Number.isInteger(length) &&
      offset >= 0 &&
      length > 0 &&
      offset + length <= buffer.byteLength
    ) {
      // A pread with plain numbers that readArgs would accept unchanged, without its argument
      // tuple and closure: allocating in a 1 us read loop costs more in collections than the read.
      const f = this.readable(fd, "read");
      try {
        return (f.handle as FileHandle).read(buffer, offset, length, position);
      } catch (e) {
        throw toNodeError(e, "read");
      }
    }
    const [buf, off, len, pos] = this.readArgs(buffer, offset, length, position);
    const f = this.readable(fd, "read");
    if (len === 0) return 0;
    const at = pos ?? f.position;
    const n = this.op("read", undefined, () => (f.handle as FileHandle).read(buf, off, len, at));
    if (pos === null) f.position += n;
    return n;
  }

  private writeTarget(fd: number): OpenFile {
    const f = this.fds.get(fd, "write");
    if (!f.writable || !f.handle) throw nodeError("EBADF", "write");
    if (!f.handle.write) throw nodeError("EROFS", "write");
    return f;
  }

  /** Normalizes writeSync's buffer and string signatures. */
  private writeArgs(
    data: unknown,
    a: unknown,
    b: unknown,
    c: unknown,
  ): [Uint8Array, number, number, number | null] {
    if (typeof data === "string") {
      const buf = Buffer.from(data, (typeof b === "string" ? b : "utf8") as BufferEncoding);
      const pos = typeof a === "number" && a >= 0 ? a : null;
      return [buf, 0, buf.length, pos];
    }
    if (!(data instanceof Uint8Array)) {
      throw argError(
        'The "buffer" argument must be of type string or an instance of Buffer, TypedArray, or DataView.',
      );
    }
    if (a && typeof a === "object") {
      const o = a as { offset?: number; length?: number; position?: number | null };
      return this.readArgs(data, o.offset, o.length, o.position);
    }
    return this.readArgs(data, a, b, c);
  }

  writeSync(
    fd: number,
    buffer: Uint8Array | string,
    offset?: unknown,
    length?: unknown,
    position?: unknown,
  ): number {
    const [buf, off, len, pos] = this.writeArgs(buffer, offset, length, position);
    const f = this.writeTarget(fd);
    const h = f.handle as FileHandle & { write: NonNullable<FileHandle["write"]> };
    // O_APPEND writes at the end whatever the position, as Linux does.
    const at = f.append ? h.stat().size : (pos ?? f.position);
    const n = this.op("write", undefined, () => h.write(buf, off, len, at));
    if (pos === null || f.append) f.position = at + n;
    return n;
  }

  /**
   * Moves a descriptor's offset like lseek(2) (node:fs has no seek): `whence` is "set", "cur" or
   * "end" (or SEEK_SET/SEEK_CUR/SEEK_END = 0/1/2). Returns the new offset; a negative result is EINVAL.
   */
  seekSync(fd: number, offset: number, whence: "set" | "cur" | "end" | 0 | 1 | 2 = "set"): number {
    const f = this.fds.get(fd, "lseek");
    if (!Number.isSafeInteger(offset)) throw rangeError("offset", offset, "a safe integer");
    let base: number;
    if (whence === "set" || whence === 0) base = 0;
    else if (whence === "cur" || whence === 1) base = f.position;
    else if (whence === "end" || whence === 2)
      base = f.handle ? this.op("lseek", undefined, () => (f.handle as FileHandle).stat().size) : 0;
    else throw nodeError("EINVAL", "lseek");
    const next = base + offset;
    if (next < 0) throw nodeError("EINVAL", "lseek");
    f.position = next;
    return next;
  }

  ftruncateSync(fd: number, len = 0): void {
    const f = this.fds.get(fd, "ftruncate");
    if (!f.writable || !f.handle) throw nodeError("EINVAL", "ftruncate");
    const h = f.handle;
    if (!h.truncate) throw nodeError("EROFS", "ftruncate");
    this.op("ftruncate", undefined, () => h.truncate?.(len));
  }

  fsyncSync(fd: number): void {
    const f = this.fds.get(fd, "fsync");
    this.op("fsync", undefined, () => f.handle?.sync?.());
  }

  fdatasyncSync(fd: number): void {
    this.fsyncSync(fd);
  }

  /**
   * syncfs(2) for the filesystem holding `path`: a type that stages changes (a writable container)
   * commits them. Rejects with the commit's error, as fsync does.
   */
  async syncfsAsync(path: string): Promise<void> {
    const loc = this.walker.resolve(path, true, "syncfs", path);
    const fsys = loc.mount.fs;
    try {
      await fsys.sync?.();
    } catch (e) {
      this.op("syncfs", path, () => {
        throw e;
      });
    }
  }

  /** fsync that waits for types whose flush is asynchronous (a writable container commits). */
  async fsyncAsync(fd: number): Promise<void> {
    const f = this.fds.get(fd, "fsync");
    const h = f.handle;
    if (h?.syncAsync) {
      try {
        await h.syncAsync();
      } catch (e) {
        this.op("fsync", undefined, () => {
          throw e;
        });
      }
      return;
    }
    this.fsyncSync(fd);
  }

  fchmodSync(fd: number, mode: number | string): void {
    const f = this.fds.get(fd, "fchmod");
    const m = typeof mode === "string" ? Number.parseInt(mode, 8) : mode;
    if (f.mount.readonly) throw nodeError("EROFS", "fchmod");
    if (!f.handle) {
      this.chmodSync(f.vpath, m);
      return;
    }
    const h = f.handle;
    if (!h.chmod) throw nodeError("EROFS", "fchmod");
    this.op("fchmod", undefined, () => h.chmod?.(m & 0o7777));
  }

  futimesSync(fd: number, atime: number | string | Date, mtime: number | string | Date): void {
    const f = this.fds.get(fd, "futime");
    if (f.mount.readonly) throw nodeError("EROFS", "futime");
    const a = timeToNs(atime, "atime");
    const m = timeToNs(mtime, "mtime");
    if (!f.handle) {
      this.utimesCore(f.vpath, a, m, true, "futime");
      return;
    }
    const h = f.handle;
    if (!h.utimes) throw nodeError("EROFS", "futime");
    this.op("futime", undefined, () => h.utimes?.(a, m));
  }

  // ------------------------------------------------------------------ whole files (sync)

  readFileSync(
    path: PathLike | number,
    options?: { encoding?: Encoding; flag?: string | number } | BufferEncoding,
  ): string | Buffer {
    const enc = encodingOf(options);
    const flag = typeof options === "object" && options ? options.flag : undefined;
    let data: Buffer;
    if (typeof path === "number") data = this.readAllFromFd(path);
    else {
      const p = toPath(path);
      const flags = parseFlags(flag);
      if (isWriting(flags)) {
        const fd = this.openSync(p, flags);
        try {
          data = this.readAllFromFd(fd);
        } finally {
          this.closeSync(fd);
        }
      } else {
        const loc = this.walker.resolve(p, true, "open", p);
        if (loc.st.type === "directory") throw nodeError("EISDIR", "read");
        const fsys = loc.mount.fs;
        if (fsys.readFile) data = this.op("read", p, () => (fsys.readFile as (r: string) => Buffer)(loc.rel));
        else {
          const fd = this.openSync(p, flags);
          try {
            data = this.readAllFromFd(fd);
          } finally {
            this.closeSync(fd);
          }
        }
      }
    }
    return enc && enc !== "buffer" ? data.toString(enc) : data;
  }

  private readAllFromFd(fd: number): Buffer {
    const f = this.readable(fd, "read");
    const size = (f.handle as FileHandle).stat().size;
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const want = Math.max(64 * 1024, size - f.position);
      const buf = Buffer.allocUnsafe(Math.min(want, 0x7fffffff));
      const n = this.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      chunks.push(n === buf.length ? buf : buf.subarray(0, n));
      total += n;
    }
    return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total);
  }

  writeFileSync(
    path: PathLike | number,
    data: string | Uint8Array,
    options?: { encoding?: BufferEncoding | null; mode?: number; flag?: string | number } | BufferEncoding,
  ): void {
    const opts = typeof options === "string" ? { encoding: options } : (options ?? {});
    const buf = typeof data === "string" ? Buffer.from(data, opts.encoding ?? "utf8") : data;
    const own = typeof path !== "number";
    const fd = own ? this.openSync(path, opts.flag ?? "w", opts.mode ?? 0o666) : path;
    try {
      let off = 0;
      while (off < buf.byteLength) off += this.writeSync(fd, buf, off, buf.byteLength - off, null);
    } finally {
      if (own) this.closeSync(fd);
    }
  }

  appendFileSync(
    path: PathLike | number,
    data: string | Uint8Array,
    options?: { encoding?: BufferEncoding | null; mode?: number; flag?: string | number } | BufferEncoding,
  ): void {
    const opts = typeof options === "string" ? { encoding: options } : (options ?? {});
    this.writeFileSync(path, data, { ...opts, flag: opts.flag ?? "a" });
  }

  copyFileSync(src: PathLike, dest: PathLike, mode = 0): void {
    const s = toPath(src, "src");
    const d = toPath(dest, "dest");
    const data = this.readFileSync(s) as Buffer;
    const st = this.statSync(s);
    this.writeFileSync(d, data, { flag: mode & COPYFILE_EXCL ? "wx" : "w", mode: st.mode & 0o7777 });
  }

  // ------------------------------------------------------------------ mutations (sync)

  mkdirSync(
    path: PathLike,
    options?: { recursive?: boolean; mode?: number | string } | number,
  ): string | undefined {
    const p = toPath(path);
    const opts = typeof options === "number" ? { mode: options } : (options ?? {});
    const mode = typeof opts.mode === "string" ? Number.parseInt(opts.mode, 8) : (opts.mode ?? 0o777);
    if (!opts.recursive) {
      this.mkdirOne(p, mode, p);
      return undefined;
    }
    // Walk up to the deepest existing directory, then create downwards.
    const abs = p.startsWith("/") ? p : `/${p}`;
    const parts = abs.split("/").filter((s) => s !== "" && s !== ".");
    let first: string | undefined;
    for (let k = 1; k <= parts.length; k++) {
      const sub = `/${parts.slice(0, k).join("/")}`;
      if (parts[k - 1] === "..") continue;
      let st: NodeStat | undefined;
      try {
        st = this.walker.resolve(sub, true, "mkdir", p).st;
      } catch (e) {
        if ((e as BfcError).code !== "ENOENT") throw e;
      }
      if (st) {
        if (st.type !== "directory") throw nodeError(k === parts.length ? "EEXIST" : "ENOTDIR", "mkdir", p);
        continue;
      }
      this.mkdirOne(sub, mode, p);
      first ??= sub;
    }
    return first;
  }

  private mkdirOne(p: string, mode: number, shown: string): void {
    const par = this.parentOf(p, "mkdir");
    if (par.name === "" || par.st !== undefined || par.mountPoint) throw nodeError("EEXIST", "mkdir", shown);
    const fsys = this.writable(par.parent.mount, par.parent.synthetic, "mkdir", shown);
    if (!fsys.mkdir) throw nodeError("EROFS", "mkdir", shown);
    this.op("mkdir", shown, () => fsys.mkdir?.(par.rel, mode & 0o7777));
  }

  rmdirSync(path: PathLike, options?: { recursive?: boolean }): void {
    const p = toPath(path);
    if (options?.recursive) {
      this.rmSync(p, { recursive: true, force: true });
      return;
    }
    const par = this.parentOf(p, "rmdir");
    if (par.name === "" || par.mountPoint) throw nodeError("EBUSY", "rmdir", p);
    if (par.st === undefined) throw nodeError("ENOENT", "rmdir", p);
    if (par.st.type !== "directory") throw nodeError("ENOTDIR", "rmdir", p);
    const fsys = this.writable(par.parent.mount, par.parent.synthetic, "rmdir", p);
    if (!fsys.rmdir) throw nodeError("EROFS", "rmdir", p);
    this.op("rmdir", p, () => fsys.rmdir?.(par.rel));
  }

  unlinkSync(path: PathLike): void {
    const p = toPath(path);
    const par = this.parentOf(p, "unlink");
    if (par.name === "") throw nodeError("EISDIR", "unlink", p);
    if (par.st === undefined) throw nodeError("ENOENT", "unlink", p);
    if (par.mountPoint) throw nodeError("EBUSY", "unlink", p);
    const fsys = this.writable(par.parent.mount, par.parent.synthetic, "unlink", p);
    if (par.st.type === "directory") throw nodeError("EISDIR", "unlink", p);
    if (!fsys.unlink) throw nodeError("EROFS", "unlink", p);
    this.op("unlink", p, () => fsys.unlink?.(par.rel));
  }

  rmSync(path: PathLike, options: { recursive?: boolean; force?: boolean } = {}): void {
    const p = toPath(path);
    let loc: Located;
    try {
      loc = this.walker.resolve(p, false, "rm", p);
    } catch (e) {
      if (options.force && isMissing(e)) return;
      throw e;
    }
    if (loc.st.type !== "directory") {
      this.unlinkSync(p);
      return;
    }
    if (!options.recursive) throw nodeError("EISDIR", "rm", p);
    for (const e of this.listDir(loc, "rm", p)) this.rmSync(joinV(loc.vpath, e.name), { recursive: true });
    this.rmdirSync(loc.vpath);
  }

  renameSync(oldPath: PathLike, newPath: PathLike): void {
    const from = toPath(oldPath, "oldPath");
    const to = toPath(newPath, "newPath");
    // Node reports every rename failure as `rename 'from' -> 'to'`, whichever path was at fault.
    const a = this.twoPaths("rename", from, to, () => this.parentOf(from, "rename"));
    const b = this.twoPaths("rename", from, to, () => this.parentOf(to, "rename"));
    if (a.name === "" || b.name === "" || a.mountPoint || b.mountPoint)
      throw nodeError("EBUSY", "rename", from, to);
    if (a.st === undefined) throw nodeError("ENOENT", "rename", from, to);
    if (a.parent.mount !== b.parent.mount) throw nodeError("EXDEV", "rename", from, to);
    const fsys = this.writable(a.parent.mount, a.parent.synthetic || b.parent.synthetic, "rename", from, to);
    if (!fsys.rename) throw nodeError("EROFS", "rename", from, to);
    this.op("rename", from, () => fsys.rename?.(a.rel, b.rel), to);
  }

  symlinkSync(target: PathLike, path: PathLike, _type?: string | null): void {
    const t = toPath(target, "target");
    const p = toPath(path);
    const par = this.twoPaths("symlink", t, p, () => this.parentOf(p, "symlink"));
    if (par.name === "" || par.st !== undefined || par.mountPoint) throw nodeError("EEXIST", "symlink", t, p);
    const fsys = this.writable(par.parent.mount, par.parent.synthetic, "symlink", t, p);
    if (!fsys.symlink || !fsys.capabilities.symlinks) throw nodeError("EPERM", "symlink", t, p);
    this.op("symlink", t, () => fsys.symlink?.(t, par.rel), p);
  }

  chmodSync(path: PathLike, mode: number | string): void {
    const p = toPath(path);
    const m = typeof mode === "string" ? Number.parseInt(mode, 8) : mode;
    const loc = this.walker.resolve(p, true, "chmod", p);
    const fsys = this.writable(loc.mount, loc.synthetic, "chmod", p);
    if (!fsys.chmod) throw nodeError("EROFS", "chmod", p);
    this.op("chmod", p, () => fsys.chmod?.(loc.rel, m & 0o7777));
  }

  private utimesCore(p: string, atimeNs: bigint, mtimeNs: bigint, follow: boolean, syscall: string): void {
    const loc = this.walker.resolve(p, follow, syscall, p);
    const fsys = this.writable(loc.mount, loc.synthetic, syscall, p);
    if (!fsys.utimes) throw nodeError("EROFS", syscall, p);
    this.op(syscall, p, () => fsys.utimes?.(loc.rel, atimeNs, mtimeNs));
  }

  utimesSync(path: PathLike, atime: number | string | Date, mtime: number | string | Date): void {
    this.utimesCore(toPath(path), timeToNs(atime, "atime"), timeToNs(mtime, "mtime"), true, "utime");
  }

  lutimesSync(path: PathLike, atime: number | string | Date, mtime: number | string | Date): void {
    this.utimesCore(toPath(path), timeToNs(atime, "atime"), timeToNs(mtime, "mtime"), false, "lutime");
  }

  truncateSync(path: PathLike, len = 0): void {
    const p = toPath(path);
    const loc = this.walker.resolve(p, true, "open", p);
    if (loc.st.type === "directory") throw nodeError("EISDIR", "open", p);
    const fsys = this.writable(loc.mount, loc.synthetic, "open", p);
    if (fsys.truncate) {
      this.op("ftruncate", p, () => fsys.truncate?.(loc.rel, len));
      return;
    }
    const fd = this.openSync(p, "r+");
    try {
      this.ftruncateSync(fd, len);
    } finally {
      this.closeSync(fd);
    }
  }

  // ------------------------------------------------------------------ streams

  createReadStream(path: PathLike | null, options?: ReadStreamOptions | BufferEncoding): VfsReadStream {
    const opts = typeof options === "string" ? { encoding: options } : (options ?? {});
    return new VfsReadStream(this, path === null ? undefined : toPath(path), opts);
  }

  createWriteStream(path: PathLike | null, options?: WriteStreamOptions | BufferEncoding): VfsWriteStream {
    const opts = typeof options === "string" ? { encoding: options } : (options ?? {});
    return new VfsWriteStream(this, path === null ? undefined : toPath(path), opts);
  }

  // ------------------------------------------------------------------ async descriptor I/O (FdIo)

  async openFdAsync(path: string, flags: string | number, mode?: number): Promise<number> {
    const p = toPath(path);
    const fl = parseFlags(flags);
    return this.openFile(p, fl, mode ?? 0o666).fd;
  }

  async readFdAsync(
    fd: number,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number | null,
  ): Promise<number> {
    const f = this.readable(fd, "read");
    if (length === 0) return 0;
    const h = f.handle as FileHandle;
    const at = position ?? f.position;
    let n: number;
    try {
      n = h.readAsync ? await h.readAsync(buffer, offset, length, at) : h.read(buffer, offset, length, at);
    } catch (e) {
      throw toNodeError(e, "read");
    }
    if (position === null) f.position = at + n;
    return n;
  }

  /**
   * A read answered synchronously when the file's type says that is cheap (one pread or a copy),
   * else through its async path. For callers that own a thread anyway, such as the FUSE adapter,
   * where a hop through the thread pool costs more than the read.
   */
  /** Whether a sync read of `fd` costs at most a pread or a copy (see `FileHandle.syncReadCheap`). */
  syncReadCheap(fd: number): boolean {
    return this.readable(fd, "read").handle?.syncReadCheap === true;
  }

  readFdFast(
    fd: number,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number | null,
  ): number | Promise<number> {
    const f = this.readable(fd, "read");
    if (!f.handle?.syncReadCheap) return this.readFdAsync(fd, buffer, offset, length, position);
    return this.readSync(fd, buffer, offset, length, position);
  }

  async writeFdAsync(
    fd: number,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number | null,
  ): Promise<number> {
    const f = this.writeTarget(fd);
    const h = f.handle as FileHandle & { write: NonNullable<FileHandle["write"]> };
    const at = f.append ? h.stat().size : (position ?? f.position);
    if (position === null || f.append) f.position = at + length;
    let n: number;
    try {
      n = h.writeAsync ? await h.writeAsync(buffer, offset, length, at) : h.write(buffer, offset, length, at);
    } catch (e) {
      throw toNodeError(e, "write");
    }
    if (position === null || f.append) f.position = at + n;
    return n;
  }

  async closeFdAsync(fd: number): Promise<void> {
    const f = this.fds.remove(fd, "close");
    if (!f.handle) return;
    try {
      if (f.handle.closeAsync) await f.handle.closeAsync();
      else f.handle.close();
    } catch (e) {
      throw toNodeError(e, "close");
    }
  }

  /** Whole-file async read: the type's async fast path when it has one. */
  async readFileAsyncInternal(p: string, flag: string | number | undefined): Promise<Buffer> {
    const flags = parseFlags(flag);
    if (!isWriting(flags)) {
      const loc = this.walker.resolve(p, true, "open", p);
      if (loc.st.type === "directory") throw nodeError("EISDIR", "read");
      const fsys = loc.mount.fs;
      if (fsys.readFileAsync) {
        try {
          return await fsys.readFileAsync(loc.rel);
        } catch (e) {
          throw toNodeError(e, "read", p);
        }
      }
    }
    const fd = await this.openFdAsync(p, flags);
    try {
      return await this.readAllFromFdAsync(fd);
    } finally {
      await this.closeFdAsync(fd);
    }
  }

  async readAllFromFdAsync(fd: number): Promise<Buffer> {
    const f = this.readable(fd, "read");
    const size = (f.handle as FileHandle).stat().size;
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const want = Math.min(Math.max(64 * 1024, size - f.position), 0x7fffffff);
      const buf = Buffer.allocUnsafe(want);
      const n = await this.readFdAsync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      chunks.push(n === buf.length ? buf : buf.subarray(0, n));
      total += n;
    }
    return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total);
  }

  async writeAllAsync(fd: number, buf: Uint8Array): Promise<void> {
    let off = 0;
    while (off < buf.byteLength) off += await this.writeFdAsync(fd, buf, off, buf.byteLength - off, null);
  }

  // ------------------------------------------------------------------ callback forms

  private cb(args: unknown[], run: (...a: unknown[]) => Promise<unknown>, spread = false): void {
    const callback = args.pop();
    if (typeof callback !== "function") throw argError('The "cb" argument must be of type function.');
    run(...args).then(
      (v) => {
        if (spread) (callback as (...a: unknown[]) => void)(null, ...(v as unknown[]));
        else (callback as Callback<unknown>)(null, v);
      },
      (e: Error) => (callback as Callback<unknown>)(e),
    );
  }

  stat(path: PathLike, ...rest: unknown[]): void {
    this.cb(rest, (o) => this.promises.stat(path, o as StatOptions));
  }
  lstat(path: PathLike, ...rest: unknown[]): void {
    this.cb(rest, (o) => this.promises.lstat(path, o as StatOptions));
  }
  fstat(fd: number, ...rest: unknown[]): void {
    this.cb(rest, async (o) => this.fstatSync(fd, o as StatOptions));
  }
  access(path: PathLike, ...rest: unknown[]): void {
    this.cb(rest, (m) => this.promises.access(path, m as number | undefined));
  }
  /** Node's legacy form: the callback gets only a boolean. */
  exists(path: PathLike, callback: (exists: boolean) => void): void {
    Promise.resolve().then(() => callback(this.existsSync(path)));
  }
  readdir(path: PathLike, ...rest: unknown[]): void {
    this.cb(rest, (o) => this.promises.readdir(path, o as ReaddirOptions));
  }
  opendir(path: PathLike, ...rest: unknown[]): void {
    this.cb(rest, (o) => this.promises.opendir(path, o as { encoding?: Encoding }));
  }
  open(path: PathLike, ...rest: unknown[]): void {
    this.cb(rest, async (flags, mode) =>
      this.openFdAsync(toPath(path), (flags as string | number) ?? "r", mode as number),
    );
  }
  close(fd: number, callback?: (err: Error | null) => void): void {
    this.closeFdAsync(fd).then(
      () => callback?.(null),
      (e: Error) => callback?.(e),
    );
  }
  read(fd: number, ...rest: unknown[]): void {
    this.cb(
      rest,
      async (buffer, offset, length, position) => {
        const [buf, off, len, pos] = this.readArgs(buffer ?? Buffer.alloc(16384), offset, length, position);
        const n = await this.readFdAsync(fd, buf, off, len, pos);
        return [n, buf];
      },
      true,
    );
  }
  write(fd: number, ...rest: unknown[]): void {
    this.cb(
      rest,
      async (data, a, b, c) => {
        const [buf, off, len, pos] = this.writeArgs(data, a, b, c);
        const n = await this.writeFdAsync(fd, buf, off, len, pos);
        return [n, data];
      },
      true,
    );
  }
  readFile(path: PathLike | number, ...rest: unknown[]): void {
    this.cb(rest, (o) => this.promises.readFile(path, o as { encoding?: Encoding }));
  }
  writeFile(path: PathLike | number, data: string | Uint8Array, ...rest: unknown[]): void {
    this.cb(rest, (o) => this.promises.writeFile(path, data, o as { encoding?: BufferEncoding }));
  }
  appendFile(path: PathLike | number, data: string | Uint8Array, ...rest: unknown[]): void {
    this.cb(rest, (o) => this.promises.appendFile(path, data, o as { encoding?: BufferEncoding }));
  }
  readlink(path: PathLike, ...rest: unknown[]): void {
    this.cb(rest, (o) => this.promises.readlink(path, o as { encoding?: Encoding }));
  }
  realpath(path: PathLike, ...rest: unknown[]): void {
    this.cb(rest, (o) => this.promises.realpath(path, o as { encoding?: Encoding }));
  }
  mkdir(path: PathLike, ...rest: unknown[]): void {
    this.cb(rest, (o) => this.promises.mkdir(path, o as { recursive?: boolean; mode?: number }));
  }
  rm(path: PathLike, ...rest: unknown[]): void {
    this.cb(rest, (o) => this.promises.rm(path, o as { recursive?: boolean; force?: boolean }));
  }
  rmdir(path: PathLike, ...rest: unknown[]): void {
    this.cb(rest, (o) => this.promises.rmdir(path, o as { recursive?: boolean }));
  }
  unlink(path: PathLike, ...rest: unknown[]): void {
    this.cb(rest, () => this.promises.unlink(path));
  }
  rename(oldPath: PathLike, newPath: PathLike, ...rest: unknown[]): void {
    this.cb(rest, () => this.promises.rename(oldPath, newPath));
  }
  symlink(target: PathLike, path: PathLike, ...rest: unknown[]): void {
    this.cb(rest, () => this.promises.symlink(target, path));
  }
  chmod(path: PathLike, mode: number | string, ...rest: unknown[]): void {
    this.cb(rest, () => this.promises.chmod(path, mode));
  }
  utimes(
    path: PathLike,
    atime: number | string | Date,
    mtime: number | string | Date,
    ...rest: unknown[]
  ): void {
    this.cb(rest, () => this.promises.utimes(path, atime, mtime));
  }
  truncate(path: PathLike, ...rest: unknown[]): void {
    this.cb(rest, (len) => this.promises.truncate(path, len as number | undefined));
  }
  copyFile(src: PathLike, dest: PathLike, ...rest: unknown[]): void {
    this.cb(rest, (mode) => this.promises.copyFile(src, dest, mode as number | undefined));
  }
  statfs(path: PathLike, ...rest: unknown[]): void {
    this.cb(rest, (o) => this.promises.statfs(path, o as { bigint?: boolean }));
  }
  fsync(fd: number, callback: (err: Error | null) => void): void {
    this.cb([callback], async () => this.fsyncAsync(fd));
  }
  ftruncate(fd: number, ...rest: unknown[]): void {
    this.cb(rest, async (len) => this.ftruncateSync(fd, len as number | undefined));
  }
}

function isMissing(e: unknown): boolean {
  const code = (e as { code?: ErrnoCode }).code;
  return code === "ENOENT" || code === "ENOTDIR";
}

/** `fs.promises.FileHandle`'s shape over a VFS descriptor. */
export class VfsFileHandle {
  readonly fd: number;
  private readonly vfs: Vfs;
  private closed = false;

  constructor(vfs: Vfs, fd: number) {
    this.vfs = vfs;
    this.fd = fd;
  }

  async read(
    buffer?: Uint8Array | { buffer?: Uint8Array; offset?: number; length?: number; position?: number | null },
    offset?: number | null,
    length?: number | null,
    position?: number | bigint | null,
  ): Promise<{ bytesRead: number; buffer: Uint8Array }> {
    let buf: Uint8Array;
    let off = offset ?? 0;
    let len = length;
    let pos: number | bigint | null | undefined = position;
    if (buffer === undefined || !(buffer instanceof Uint8Array)) {
      const o = buffer ?? {};
      buf = o.buffer ?? Buffer.alloc(16384);
      off = o.offset ?? 0;
      len = o.length;
      pos = o.position;
    } else buf = buffer;
    const n = len ?? buf.byteLength - off;
    const at = typeof pos === "bigint" ? Number(pos) : typeof pos === "number" && pos >= 0 ? pos : null;
    const bytesRead = await this.vfs.readFdAsync(this.fd, buf, off, n, at);
    return { bytesRead, buffer: buf };
  }

  async write(
    data: Uint8Array | string,
    offset?: number | null,
    length?: number | null,
    position?: number | null,
  ): Promise<{ bytesWritten: number; buffer: Uint8Array | string }> {
    const buf = typeof data === "string" ? Buffer.from(data) : data;
    const off = typeof data === "string" ? 0 : (offset ?? 0);
    const len = typeof data === "string" ? buf.byteLength : (length ?? buf.byteLength - off);
    const pos = typeof data === "string" ? (typeof offset === "number" ? offset : null) : (position ?? null);
    const bytesWritten = await this.vfs.writeFdAsync(this.fd, buf, off, len, pos);
    return { bytesWritten, buffer: data };
  }

  async readFile(options?: { encoding?: Encoding } | BufferEncoding): Promise<string | Buffer> {
    const data = await this.vfs.readAllFromFdAsync(this.fd);
    const enc = encodingOf(options);
    return enc && enc !== "buffer" ? data.toString(enc) : data;
  }

  async writeFile(
    data: string | Uint8Array,
    options?: { encoding?: BufferEncoding } | BufferEncoding,
  ): Promise<void> {
    const enc = typeof options === "string" ? options : options?.encoding;
    await this.vfs.writeAllAsync(this.fd, typeof data === "string" ? Buffer.from(data, enc ?? "utf8") : data);
  }

  async appendFile(
    data: string | Uint8Array,
    options?: { encoding?: BufferEncoding } | BufferEncoding,
  ): Promise<void> {
    await this.writeFile(data, options);
  }

  async stat(options?: StatOptions): Promise<fs.Stats | fs.BigIntStats> {
    return this.vfs.fstatSync(this.fd, options);
  }

  async truncate(len = 0): Promise<void> {
    this.vfs.ftruncateSync(this.fd, len);
  }

  async sync(): Promise<void> {
    await this.vfs.fsyncAsync(this.fd);
  }

  async datasync(): Promise<void> {
    await this.vfs.fsyncAsync(this.fd);
  }

  async chmod(mode: number | string): Promise<void> {
    this.vfs.fchmodSync(this.fd, mode);
  }

  async utimes(atime: number | string | Date, mtime: number | string | Date): Promise<void> {
    this.vfs.futimesSync(this.fd, atime, mtime);
  }

  createReadStream(options: Omit<ReadStreamOptions, "fd"> = {}): VfsReadStream {
    return this.vfs.createReadStream(null, { ...options, fd: this.fd });
  }

  createWriteStream(options: Omit<WriteStreamOptions, "fd"> = {}): VfsWriteStream {
    return this.vfs.createWriteStream(null, { ...options, fd: this.fd });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.vfs.closeFdAsync(this.fd);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** `vfs.promises`: the `fs.promises` shape. */
export class VfsPromises {
  private readonly vfs: Vfs;

  constructor(vfs: Vfs) {
    this.vfs = vfs;
  }

  async stat(path: PathLike, options?: StatOptions): Promise<fs.Stats | fs.BigIntStats> {
    return this.vfs.statSync(path, { ...options, throwIfNoEntry: true }) as fs.Stats | fs.BigIntStats;
  }
  async lstat(path: PathLike, options?: StatOptions): Promise<fs.Stats | fs.BigIntStats> {
    return this.vfs.lstatSync(path, { ...options, throwIfNoEntry: true }) as fs.Stats | fs.BigIntStats;
  }
  async access(path: PathLike, mode?: number): Promise<void> {
    this.vfs.accessSync(path, mode);
  }
  async exists(path: PathLike): Promise<boolean> {
    return this.vfs.existsSync(path);
  }
  async readdir(
    path: PathLike,
    options?: ReaddirOptions | BufferEncoding,
  ): Promise<string[] | Buffer[] | fs.Dirent[]> {
    return this.vfs.readdirSync(path, options);
  }
  async opendir(path: PathLike, options?: { encoding?: Encoding }): Promise<VfsDir> {
    return this.vfs.opendirSync(path, options);
  }
  async open(path: PathLike, flags?: string | number, mode?: number): Promise<VfsFileHandle> {
    const fd = await this.vfs.openFdAsync(toPath(path), flags ?? "r", mode);
    return new VfsFileHandle(this.vfs, fd);
  }
  async readFile(
    path: PathLike | number | VfsFileHandle,
    options?: { encoding?: Encoding; flag?: string | number } | BufferEncoding,
  ): Promise<string | Buffer> {
    const enc = encodingOf(options);
    let data: Buffer;
    if (path instanceof VfsFileHandle) data = await this.vfs.readAllFromFdAsync(path.fd);
    else if (typeof path === "number") data = await this.vfs.readAllFromFdAsync(path);
    else
      data = await this.vfs.readFileAsyncInternal(
        toPath(path),
        typeof options === "object" ? options?.flag : undefined,
      );
    return enc && enc !== "buffer" ? data.toString(enc) : data;
  }
  async writeFile(
    path: PathLike | number | VfsFileHandle,
    data: string | Uint8Array,
    options?: { encoding?: BufferEncoding | null; mode?: number; flag?: string | number } | BufferEncoding,
  ): Promise<void> {
    const opts = typeof options === "string" ? { encoding: options } : (options ?? {});
    const buf = typeof data === "string" ? Buffer.from(data, opts.encoding ?? "utf8") : data;
    if (path instanceof VfsFileHandle || typeof path === "number") {
      await this.vfs.writeAllAsync(typeof path === "number" ? path : path.fd, buf);
      return;
    }
    const fd = await this.vfs.openFdAsync(toPath(path), opts.flag ?? "w", opts.mode ?? 0o666);
    try {
      await this.vfs.writeAllAsync(fd, buf);
    } finally {
      await this.vfs.closeFdAsync(fd);
    }
  }
  async appendFile(
    path: PathLike | number | VfsFileHandle,
    data: string | Uint8Array,
    options?: { encoding?: BufferEncoding | null; mode?: number; flag?: string | number } | BufferEncoding,
  ): Promise<void> {
    const opts = typeof options === "string" ? { encoding: options } : (options ?? {});
    await this.writeFile(path, data, { ...opts, flag: opts.flag ?? "a" });
  }
  async readlink(
    path: PathLike,
    options?: { encoding?: Encoding } | BufferEncoding,
  ): Promise<string | Buffer> {
    return this.vfs.readlinkSync(path, options);
  }
  async realpath(
    path: PathLike,
    options?: { encoding?: Encoding } | BufferEncoding,
  ): Promise<string | Buffer> {
    return this.vfs.realpathSync(path, options);
  }
  async mkdir(
    path: PathLike,
    options?: { recursive?: boolean; mode?: number | string } | number,
  ): Promise<string | undefined> {
    return this.vfs.mkdirSync(path, options);
  }
  async rm(path: PathLike, options?: { recursive?: boolean; force?: boolean }): Promise<void> {
    this.vfs.rmSync(path, options);
  }
  async rmdir(path: PathLike, options?: { recursive?: boolean }): Promise<void> {
    this.vfs.rmdirSync(path, options);
  }
  async unlink(path: PathLike): Promise<void> {
    this.vfs.unlinkSync(path);
  }
  async rename(oldPath: PathLike, newPath: PathLike): Promise<void> {
    this.vfs.renameSync(oldPath, newPath);
  }
  async symlink(target: PathLike, path: PathLike, type?: string | null): Promise<void> {
    this.vfs.symlinkSync(target, path, type);
  }
  async chmod(path: PathLike, mode: number | string): Promise<void> {
    this.vfs.chmodSync(path, mode);
  }
  async utimes(path: PathLike, atime: number | string | Date, mtime: number | string | Date): Promise<void> {
    this.vfs.utimesSync(path, atime, mtime);
  }
  async lutimes(path: PathLike, atime: number | string | Date, mtime: number | string | Date): Promise<void> {
    this.vfs.lutimesSync(path, atime, mtime);
  }
  async truncate(path: PathLike, len?: number): Promise<void> {
    this.vfs.truncateSync(path, len);
  }
  async copyFile(src: PathLike, dest: PathLike, mode?: number): Promise<void> {
    const s = toPath(src, "src");
    const data = (await this.readFile(s)) as Buffer;
    const st = this.vfs.statSync(s);
    await this.writeFile(toPath(dest, "dest"), data, {
      flag: (mode ?? 0) & COPYFILE_EXCL ? "wx" : "w",
      mode: st.mode & 0o7777,
    });
  }
  async statfs(path: PathLike, options?: { bigint?: boolean }): Promise<fs.StatsFs | fs.BigIntStatsFs> {
    return this.vfs.statfsSync(path, options);
  }
}
