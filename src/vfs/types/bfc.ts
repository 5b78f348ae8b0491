import fs from "node:fs";
import { ExtendedEntries, makeRdev, specialType } from "../../container/extended-entries.ts";
import type { Credentials } from "../../container/keys.ts";
import { type Entry, Reader, type ReaderOptions, type ReaderShare } from "../../container/reader.ts";
import { type SpillShare, SpillStore } from "../../container/spill.ts";
import { BfcError } from "../../errors.ts";
import type { EntryAttrs, SpecialEntry } from "../../format/extension.ts";
import { parentOf } from "../../format/path.ts";
import { fsError } from "../errors.ts";
import {
  type Capabilities,
  D_TYPES,
  type DirEntry,
  type EncodedListing,
  type FileHandle,
  type FileSystem,
  type FileSystemType,
  type FileType,
  type NodeStat,
  type StatFs,
} from "../filesystem.ts";
import { compareNames, fnv1a } from "../names.ts";
import { typeOfMode } from "../stats.ts";

const { S_IFDIR } = fs.constants;

export interface BfcMountOptions extends Credentials {
  /** The container file. */
  path: string;
  /** Read-write: changes are staged beside the container and committed (see bfc-writable.ts). */
  writable?: boolean;
  /** Writable mounts: commit every this many seconds as well as on fsync and unmount. */
  commitInterval?: number;
  /** Writable mounts: how new content is stored. */
  compression?: "none" | "zstd" | "auto";
  level?: number;
  /** Writable mounts: told how each commit of the interval timer went (undefined: committed). */
  onTimerCommit?: (error: unknown) => void;
  /** Read this commit instead of the latest (read-only mounts). */
  commit?: number;
  /** The Reader's cache budget in bytes: decoded contents and plain files' blocks (default 64 MiB). */
  cacheBytes?: number;
  /**
   * Decoded copies of large compressed files for cheap random reads (container/spill.ts): a store
   * (its owner makes copies; the caller closes it), or another thread's store to read its copies.
   */
  spill?: SpillStore | SpillShare;
  /**
   * With `spill`: a sync read of a large compressed file may make its copy on the spot (a whole
   * decode, done once), so such files count as cheap to read synchronously. For threads that may
   * block (FUSE serving threads); elsewhere their first read takes the async path.
   */
  spillSync?: boolean;
  /** An open descriptor of the container to read through (the caller closes it; see ReaderOptions.fd). */
  fd?: number;
  /**
   * Read-only mounts: the commit and parsed index of a Reader of the same container in this process
   * (Reader.share), attached instead of read and parsed again (FUSE serving threads).
   */
  shared?: ReaderShare;
  /**
   * Owner reported for every entry; default: the owner recorded in the container's entry
   * attributes (an imported disk image has them), else the container file's owner.
   */
  uid?: number;
  gid?: number;
}

/** Entries up to this size are decoded whole by the Reader anyway (its WHOLE_DECODE_LIMIT). */
const WHOLE_DECODE_LIMIT = 8 * 1024 * 1024;

const CAPS: Capabilities = { readonly: true, symlinks: true, structuralLookup: true, immutable: true };

/**
 * Milliseconds as fs.Stats computes them (seconds * 1e3 + nanoseconds / 1e6): dividing the whole
 * nanosecond count by 1e6 as a double loses the last digits (…250 ms read as …249.9998).
 */
function nsToMs(ns: bigint): number {
  const sec = ns / 1_000_000_000n;
  return Number(sec) * 1e3 + Number(ns - sec * 1_000_000_000n) / 1e6;
}

/** Times recorded in the extension area. */
function withTimes(st: NodeStat, a: EntryAttrs): NodeStat {
  if (a.atimeNs !== undefined) {
    st.atimeNs = a.atimeNs;
    st.atimeMs = nsToMs(a.atimeNs);
  }
  if (a.ctimeNs !== undefined) {
    st.ctimeNs = a.ctimeNs;
    st.ctimeMs = nsToMs(a.ctimeNs);
  }
  if (a.birthtimeNs !== undefined) {
    st.birthtimeNs = a.birthtimeNs;
    st.birthtimeMs = nsToMs(a.birthtimeNs);
  }
  return st;
}

/** A copy of `a` with room for `n` elements. */
function widened<T extends Int32Array | Uint8Array | Float64Array>(a: T, n: number): T {
  const w = new (a.constructor as new (length: number) => T)(n);
  w.set(a);
  return w;
}

/** Byte order of b[as, ae) against b[bs, be). */
function compareBytes(b: Buffer, as: number, ae: number, bs: number, be: number): number {
  const n = Math.min(ae - as, be - bs);
  for (let k = 0; k < n; k++) {
    const d = (b[as + k] as number) - (b[bs + k] as number);
    if (d !== 0) return d;
  }
  return ae - as - (be - bs);
}

/** Inode number of a directory that exists only because entries lie beneath it. */
function implicitIno(path: string): number {
  return 2 ** 48 + fnv1a(path);
}

/**
 * A BFC container as a read-only filesystem, straight over the index: lookups are binary searches
 * in the index blob, reads go to the Reader (verified once per entry, decoded with an LRU).
 */
export class BfcFileSystem implements FileSystem {
  readonly capabilities: Capabilities;
  readonly reader: Reader;
  private readonly uid: number;
  private readonly gid: number;
  private readonly rootStat: NodeStat;
  /** Subdirectory counts (for st_nlink) of the directories stat'ed so far. */
  private readonly subdirCounts = new Map<string, number>();
  /** Listings already built (the container never changes), bounded by total entries listed. */
  private readonly listings = new Map<string, DirEntry[]>();
  private listedEntries = 0;
  /** Special entries, hard links and attributes from the extension area; null without any. */
  private readonly extended: ExtendedEntries | null;
  private readonly ownerGiven: { uid: boolean; gid: boolean };

  private readonly spill: SpillStore | undefined;
  private readonly spillSync: boolean;

  constructor(reader: Reader, options: Omit<BfcMountOptions, "path">, spill?: SpillStore) {
    this.reader = reader;
    this.spill = spill;
    this.spillSync = spill !== undefined && options.spillSync === true;
    const st = fs.statSync(reader.path, { bigint: true });
    this.uid = options.uid ?? Number(st.uid);
    this.gid = options.gid ?? Number(st.gid);
    // A container the reference could write but no tree can hold ("a" a file and "a/b" present) is
    // walked component by component, so such entries are unreachable instead of half-visible.
    this.capabilities = reader.index.hasEntriesBelowNonDirectories()
      ? { ...CAPS, structuralLookup: false }
      : CAPS;
    this.extended = ExtendedEntries.of(reader);
    this.ownerGiven = { uid: options.uid !== undefined, gid: options.gid !== undefined };
    const ms = nsToMs(st.mtimeNs);
    this.rootStat = {
      type: "directory",
      mode: S_IFDIR | 0o755,
      size: 0,
      ino: 1,
      nlink: 2 + this.countSubdirs(""),
      uid: this.uid,
      gid: this.gid,
      rdev: 0,
      blocks: 0,
      mtimeMs: ms,
      mtimeNs: st.mtimeNs,
    };
  }

  private nlinkOf(path: string): number {
    if (path === "") return this.rootStat.nlink;
    let n = this.subdirCounts.get(path);
    if (n === undefined) {
      n = this.countSubdirs(path);
      this.subdirCounts.set(path, n);
    }
    return 2 + n;
  }

  /**
   * Immediate subdirectories of `dir`, counted over its stretch of the index: names are decoded
   * for directories only, and each subdirectory's own entries are skipped with a binary search. A
   * directory's stat costs a pass over its children, not over the whole container.
   */
  private countSubdirs(dir: string): number {
    const ix = this.reader.index;
    const b = ix.blob;
    const prefix = Buffer.from(dir);
    const [lo, hi] = ix.descendantRange(prefix);
    const base = dir === "" ? 0 : prefix.length + 1;
    // By name: an explicit directory entry "a" and the entries under it ("a/x") may be apart
    // ("a.txt" sorts between them).
    const subdirs = new Set<string>();
    for (let j = lo; j < hi; ) {
      const s = ix.pathStart(j) + base;
      const e = ix.pathEnd(j);
      let slash = s;
      while (slash < e && b[slash] !== 0x2f) slash++;
      if (slash === e) {
        if ((ix.mode(j) & 0o170000) === S_IFDIR) subdirs.add(b.toString("utf8", s, e));
        j++;
        continue;
      }
      subdirs.add(b.toString("utf8", s, slash));
      j = this.pastSubtree(j, slash);
    }
    if (this.extended !== null) {
      for (const d of this.extended.impliedDirs)
        if (parentOf(d) === dir) subdirs.add(d.slice(dir === "" ? 0 : dir.length + 1));
    }
    return subdirs.size;
  }

  private statOf(e: Entry): NodeStat {
    const type = typeOfMode(e.mode);
    const st: NodeStat = {
      type,
      mode: e.mode,
      size: type === "directory" ? 0 : e.size,
      ino: e.index + 2,
      nlink: type === "directory" ? this.nlinkOf(e.path) : 1,
      uid: this.uid,
      gid: this.gid,
      rdev: 0,
      blocks: type === "file" ? Math.ceil(e.storedSize / 512) : 0,
      mtimeMs: nsToMs(e.mtimeNs),
      mtimeNs: e.mtimeNs,
    };
    const x = this.extended;
    if (x !== null) {
      if (type === "file") {
        // Hard links share their target's inode number, as names of one file do.
        st.ino = x.inodeOf(e.index) + 2;
        st.nlink = x.nlink(e.index);
      }
      this.withAttrs(st, x.attrs(e.index));
    }
    return st;
  }

  /** Owner and times recorded in the extension area (an owner given at mount wins). */
  private withAttrs(st: NodeStat, a: EntryAttrs | undefined): NodeStat {
    if (a === undefined) return st;
    if (a.uid !== undefined && !this.ownerGiven.uid) st.uid = a.uid;
    if (a.gid !== undefined && !this.ownerGiven.gid) st.gid = a.gid;
    return withTimes(st, a);
  }

  /** A device node, fifo or socket kept in the extension area: listed and stat-able, never opened. */
  private specialStat(s: SpecialEntry, k: number): NodeStat {
    const st: NodeStat = {
      type: specialType(s.mode) as FileType,
      mode: s.mode,
      size: 0,
      ino: this.reader.count + 2 + k,
      nlink: 1,
      uid: this.uid,
      gid: this.gid,
      rdev: makeRdev(s.rdevMajor, s.rdevMinor),
      blocks: 0,
      mtimeMs: nsToMs(s.mtimeNs),
      mtimeNs: s.mtimeNs,
    };
    return this.withAttrs(st, s.attrs);
  }

  /** A special entry or a directory implied by special entries only; undefined otherwise. */
  private extendedStat(path: string): NodeStat | undefined {
    const x = this.extended;
    if (x === null) return undefined;
    const s = x.special(path);
    if (s !== undefined) return this.specialStat(s, x.specialIndex(path));
    if (x.impliedDirs.has(path)) return this.implicitStat(path);
    return undefined;
  }

  /** statOf for index position `j`, read from the blob without building an Entry. */
  private statAt(j: number, dir: string, name: string): NodeStat {
    if (this.extended !== null) return this.statOf(this.reader.entryAt(j));
    const ix = this.reader.index;
    const mode = ix.mode(j);
    const type = typeOfMode(mode);
    const mtimeNs = ix.mtimeNs(j);
    return {
      type,
      mode,
      size: type === "directory" ? 0 : ix.origSize(j),
      ino: j + 2,
      nlink: type === "directory" ? this.nlinkOf(dir === "" ? name : `${dir}/${name}`) : 1,
      uid: this.uid,
      gid: this.gid,
      rdev: 0,
      blocks: type === "file" ? Math.ceil(this.reader.storedSizeAt(j) / 512) : 0,
      mtimeMs: nsToMs(mtimeNs),
      mtimeNs,
    };
  }

  private implicitStat(path: string): NodeStat {
    return { ...this.rootStat, ino: implicitIno(path), nlink: this.nlinkOf(path) };
  }

  lstat(path: string): NodeStat | undefined {
    if (path === "") return this.rootStat;
    const ix = this.reader.index;
    const key = Buffer.from(path);
    const i = ix.find(key);
    if (i >= 0) return this.statOf(this.reader.entryAt(i));
    const [lo, hi] = ix.descendantRange(key);
    if (lo >= hi) return this.extendedStat(path);
    // A directory that exists only because entries lie beneath it.
    return this.implicitStat(path);
  }

  /**
   * Immediate children with their names left as bytes of the index (no string per child), for a
   * container without special entries or hard links. Undefined where the index order is not the
   * name order ("a.txt" sorts between "a" and "a/x"): `readdir` sorts those.
   */
  readdirEncoded(dir: string): EncodedListing | undefined {
    if (this.extended !== null) return undefined;
    const ix = this.reader.index;
    const b = ix.blob;
    const prefix = Buffer.from(dir);
    const [lo, hi] = ix.descendantRange(prefix);
    const base = dir === "" ? 0 : prefix.length + 1;
    // Sized for the children, not for every entry below (the root's stretch is the whole index).
    let cap = Math.min(hi - lo, 256);
    let starts = new Int32Array(cap);
    let ends = new Int32Array(cap);
    let types = new Uint8Array(cap);
    let inos = new Float64Array(cap);
    let n = 0;
    for (let j = lo; j < hi; ) {
      const s = ix.pathStart(j) + base;
      const e = ix.pathEnd(j);
      let slash = s;
      while (slash < e && b[slash] !== 0x2f) slash++;
      if (n > 0) {
        // Strictly after the previous name, or a repeat of it ("a" and then "a/x"), or out of order.
        const c = compareBytes(b, starts[n - 1] as number, ends[n - 1] as number, s, slash);
        if (c > 0) return undefined;
        if (c === 0) {
          j = slash === e ? j + 1 : this.pastSubtree(j, slash);
          continue;
        }
      }
      if (n === cap) {
        cap = Math.min(hi - lo, cap * 2);
        starts = widened(starts, cap);
        ends = widened(ends, cap);
        types = widened(types, cap);
        inos = widened(inos, cap);
      }
      starts[n] = s;
      ends[n] = slash;
      if (slash === e) {
        types[n] = D_TYPES[typeOfMode(ix.mode(j))];
        inos[n] = j + 2;
        j++;
      } else {
        // A directory implied by deeper entries.
        types[n] = D_TYPES.directory;
        const name = b.toString("utf8", s, slash);
        inos[n] = implicitIno(dir === "" ? name : `${dir}/${name}`);
        j = this.pastSubtree(j, slash);
      }
      n++;
    }
    return { count: n, bytes: b, starts, ends, types, inos };
  }

  /** The first index position after the subtree that entry j lies in, named by its path up to `slash`. */
  private pastSubtree(j: number, slash: number): number {
    const ix = this.reader.index;
    const [, end] = ix.descendantRange(ix.blob.subarray(ix.pathStart(j), slash));
    return Math.max(j + 1, end);
  }

  /** Immediate children straight from the index blob (no Entry objects), in name order. */
  private children(dir: string): DirEntry[] {
    return this.childPositions(dir).map((c) => c.entry);
  }

  /**
   * Immediate children with their index positions (-1: a directory implied by deeper entries or by
   * special entries; -2: a special entry), in name order.
   */
  private childPositions(dir: string): { entry: DirEntry; at: number }[] {
    const ix = this.reader.index;
    const b = ix.blob;
    const prefix = Buffer.from(dir);
    const [lo, hi] = ix.descendantRange(prefix);
    const base = dir === "" ? 0 : prefix.length + 1;
    const out: { entry: DirEntry; at: number }[] = [];
    let last = "";
    let j = lo;
    while (j < hi) {
      const s = ix.pathStart(j) + base;
      const e = ix.pathEnd(j);
      const slash = b.indexOf(0x2f, s);
      if (slash < 0 || slash >= e) {
        const name = b.toString("utf8", s, e);
        if (name !== last) {
          const type = typeOfMode(ix.mode(j));
          const ino = type === "file" && this.extended ? this.extended.inodeOf(j) + 2 : j + 2;
          out.push({ entry: { name, type, ino }, at: j });
        }
        last = name;
        j++;
        continue;
      }
      // A deeper entry: its first component is a child directory (explicit or implicit).
      const name = b.toString("utf8", s, slash);
      if (name !== last) {
        out.push({
          entry: { name, type: "directory", ino: implicitIno(dir === "" ? name : `${dir}/${name}`) },
          at: -1,
        });
      }
      last = name;
      j = this.pastSubtree(j, slash);
    }
    if (this.extended !== null) this.addExtended(dir, out);
    // "a.txt" sorts before "a/x" in the index but "a" before "a.txt" by name: restore name order.
    let sorted = true;
    for (let k = 1; k < out.length && sorted; k++) {
      if (compareNames(out[k - 1]!.entry.name, out[k]!.entry.name) >= 0) sorted = false;
    }
    if (!sorted) {
      const seen = new Map<string, { entry: DirEntry; at: number }>();
      for (const d of out) {
        const prev = seen.get(d.entry.name);
        // A directory wins over a file of its name; its own entry over the one deeper entries imply
        // (that is the inode number lstat reports).
        if (!prev || (d.entry.type === "directory" && (prev.entry.type !== "directory" || prev.at === -1)))
          seen.set(d.entry.name, d);
      }
      return [...seen.values()].sort((x, y) => compareNames(x.entry.name, y.entry.name));
    }
    return out;
  }

  /** Adds a directory's special entries, and directories that only special entries imply. */
  private addExtended(dir: string, out: { entry: DirEntry; at: number }[]): void {
    const x = this.extended as ExtendedEntries;
    const base = dir === "" ? 0 : dir.length + 1;
    for (const s of x.specialsIn(dir)) {
      const ino = this.reader.count + 2 + x.specialIndex(s.path);
      out.push({ entry: { name: s.path.slice(base), type: specialType(s.mode) as FileType, ino }, at: -2 });
    }
    for (const d of x.impliedDirs) {
      if (parentOf(d) === dir)
        out.push({ entry: { name: d.slice(base), type: "directory", ino: implicitIno(d) }, at: -1 });
    }
  }

  readdir(path: string): DirEntry[] {
    const cached = this.listings.get(path);
    if (cached) return cached;
    const list = this.children(path);
    // Keep listings until they add up to the container's size: enough for every directory once.
    if (this.listedEntries + list.length <= this.reader.count + 1024) {
      Object.freeze(list);
      this.listings.set(path, list);
      this.listedEntries += list.length;
    }
    return list;
  }

  readdirStats(path: string): { name: string; stat: NodeStat }[] {
    return this.childPositions(path).map(({ entry, at }) => ({
      name: entry.name,
      stat:
        at >= 0
          ? this.statAt(at, path, entry.name)
          : at === -2
            ? (this.extendedStat(path === "" ? entry.name : `${path}/${entry.name}`) as NodeStat)
            : this.implicitStat(path === "" ? entry.name : `${path}/${entry.name}`),
    }));
  }

  readlink(path: string): string {
    const i = this.reader.index.find(Buffer.from(path));
    if (i < 0) throw fsError("ENOENT");
    return this.reader.readlinkAtSync(i);
  }

  private fileAt(path: string): number {
    const i = this.reader.index.find(Buffer.from(path));
    // Device nodes, fifos and sockets have no content here; opening one must never reach the host.
    if (i < 0)
      throw this.extended?.special(path)
        ? fsError("ENXIO", `'${path}' is not a regular file`)
        : fsError("ENOENT");
    const t = typeOfMode(this.reader.index.mode(i));
    if (t === "directory") throw fsError("EISDIR");
    if (t !== "file") throw fsError("ENXIO", `'${path}' is not a regular file`);
    return i;
  }

  open(path: string): FileHandle {
    const i = this.fileAt(path);
    const reader = this.reader;
    const e = reader.entryAt(i);
    const st = this.statOf(e);
    const cheap =
      e.compression === "none" ||
      e.size <= WHOLE_DECODE_LIMIT ||
      (this.spillSync && this.spill?.fits(e.size));
    const spill = this.spill;
    return {
      // Sync reads of a large compressed entry decode it whole unless it has a decoded copy;
      // everything else is one pread or a copy.
      get syncReadCheap() {
        return cheap || (spill?.has(i) ?? false);
      },
      stat: () => st,
      read: (buffer, offset, length, position) => reader.readIntoAtSync(i, buffer, offset, length, position),
      readAsync: (buffer, offset, length, position) => reader.readIntoAt(i, buffer, offset, length, position),
      close: () => {},
    };
  }

  readFile(path: string): Buffer {
    // One-shot: the caller owns the bytes, so neither cache them nor copy them out of a cache.
    return this.reader.readFileAtSync(this.fileAt(path), { owned: true });
  }

  readFileAsync(path: string): Promise<Buffer> {
    return this.reader.readFileAt(this.fileAt(path));
  }

  statfs(): StatFs {
    return {
      type: 0x42464331, // "BFC1"
      bsize: 4096,
      blocks: Math.ceil(this.reader.fileSize / 4096),
      bfree: 0,
      bavail: 0,
      files: this.reader.count,
      ffree: 0,
    };
  }

  close(): void {
    this.reader.close();
  }
}

/**
 * With credentials given, proves them on the smallest encrypted file so a wrong password fails the
 * mount (EACCES, AUTH_FAILED) instead of every later read; -1 when nothing is encrypted.
 */
function smallestEncrypted(reader: Reader): number {
  const ix = reader.index;
  let best = -1;
  for (let i = 0; i < ix.count; i++) {
    if (
      ix.enc(i) !== 0 &&
      (ix.mode(i) & 0o170000) === 0o100000 &&
      (best < 0 || ix.origSize(i) < ix.origSize(best))
    )
      best = i;
  }
  return best;
}

function spillStore(option: BfcMountOptions["spill"]): ReaderOptions["spill"] {
  if (option === undefined || option instanceof SpillStore) return option;
  if (SpillStore.isShare(option)) return SpillStore.attach(option);
  throw new BfcError("EINVAL", "INVALID_ARGUMENT", "spill must be a SpillStore or a SpillStore's share()");
}

function hasCredentials(options: Credentials): boolean {
  return options.password !== undefined || options.key !== undefined;
}

/** A read-only mount's options: the path, the spill option, and what goes to the Reader. */
function readOnlyParts(options: BfcMountOptions) {
  const { path, writable: _w, commitInterval: _c, compression: _z, level: _l, spill, ...rest } = options;
  return { path, spillOption: spill, rest };
}

function checkOptions(options: BfcMountOptions): void {
  if (!options || typeof options.path !== "string" || options.path === "") {
    throw new BfcError("EINVAL", "INVALID_ARGUMENT", "the bfc type needs {path: <container file>}");
  }
}

export const bfcType: FileSystemType<BfcMountOptions> = {
  name: "bfc",
  capabilities: CAPS,
  async create(options) {
    checkOptions(options);
    if (options.writable) {
      const { WritableBfcFileSystem } = await import("./bfc-writable.ts");
      const {
        path,
        writable: _w,
        commit,
        spill: _sp,
        spillSync: _ss,
        fd: _fd,
        shared: _sh,
        ...rest
      } = options;
      if (commit !== undefined) {
        throw new BfcError(
          "EINVAL",
          "INVALID_ARGUMENT",
          "a writable mount shows the latest commit; use {from} to restore an older one",
        );
      }
      return WritableBfcFileSystem.open(path, rest);
    }
    const { path, spillOption, rest } = readOnlyParts(options);
    const spill = spillStore(spillOption);
    const reader = await Reader.open(path, { ...rest, spill });
    try {
      // Derive a password's key now so later sync reads never block on Argon2id.
      await reader.unlock();
      if (reader.encrypted && hasCredentials(rest)) {
        const probe = smallestEncrypted(reader);
        if (probe >= 0) await reader.verifyEntry(probe);
      }
      return new BfcFileSystem(reader, rest, spill);
    } catch (e) {
      reader.close();
      throw e;
    }
  },
  createSync(options) {
    checkOptions(options);
    if (options.writable) {
      throw new BfcError(
        "EINVAL",
        "INVALID_ARGUMENT",
        "a writable bfc mount opens asynchronously: use mount(), not mountSync()",
      );
    }
    const { path, spillOption, rest } = readOnlyParts(options);
    const spill = spillStore(spillOption);
    const reader = Reader.openSync(path, { ...rest, spill });
    try {
      if (reader.encrypted && hasCredentials(rest)) {
        const probe = smallestEncrypted(reader);
        if (probe >= 0) reader.readFileAtSync(probe, { owned: true });
      }
      return new BfcFileSystem(reader, rest, spill);
    } catch (e) {
      reader.close();
      throw e;
    }
  },
};
