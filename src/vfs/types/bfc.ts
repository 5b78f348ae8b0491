import fs from "node:fs";
import { ExtendedEntries, makeRdev, specialType } from "../../container/extended-entries.ts";
import type { Credentials } from "../../container/keys.ts";
import { type Entry, Reader } from "../../container/reader.ts";
import { BfcError } from "../../errors.ts";
import type { EntryAttrs, SpecialEntry } from "../../format/extension.ts";
import { parentOf } from "../../format/path.ts";
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
  /** Read this commit instead of the latest (read-only mounts). */
  commit?: number;
  /** Decoded-content cache budget in bytes (default 64 MiB). */
  cacheBytes?: number;
  /**
   * Owner reported for every entry; default: the owner recorded in the container's entry
   * attributes (an imported disk image has them), else the container file's owner.
   */
  uid?: number;
  gid?: number;
}

/** Entries up to this size are decoded whole by the Reader anyway (its WHOLE_DECODE_LIMIT). */
const WHOLE_DECODE_LIMIT = 8 * 1024 * 1024;

const CAPS: Capabilities = { readonly: true, symlinks: true, structuralLookup: true };

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
  /** Subdirectory counts by entry index (for st_nlink), -1 until asked. */
  private readonly subdirs: Int32Array;
  private readonly implicitSubdirs = new Map<string, number>();
  /** Listings already built (the container never changes), bounded by total entries listed. */
  private readonly listings = new Map<string, DirEntry[]>();
  private listedEntries = 0;
  /** Special entries, hard links and attributes from the extension area; null without any. */
  private readonly extended: ExtendedEntries | null;
  private readonly ownerGiven: { uid: boolean; gid: boolean };

  constructor(reader: Reader, options: Omit<BfcMountOptions, "path">) {
    this.reader = reader;
    const st = fs.statSync(reader.path, { bigint: true });
    this.uid = options.uid ?? Number(st.uid);
    this.gid = options.gid ?? Number(st.gid);
    // A container the reference could write but no tree can hold ("a" a file and "a/b" present) is
    // walked component by component, so such entries are unreachable instead of half-visible.
    this.capabilities = reader.index.hasEntriesBelowNonDirectories()
      ? { ...CAPS, structuralLookup: false }
      : CAPS;
    this.subdirs = new Int32Array(reader.count).fill(-1);
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

  private countSubdirs(dir: string): number {
    let n = 0;
    for (const e of this.children(dir)) if (e.type === "directory") n++;
    return n;
  }

  private nlinkOf(i: number, path: string): number {
    if (i >= 0) {
      let n = this.subdirs[i] as number;
      if (n < 0) {
        n = this.countSubdirs(path);
        this.subdirs[i] = n;
      }
      return 2 + n;
    }
    let n = this.implicitSubdirs.get(path);
    if (n === undefined) {
      n = this.countSubdirs(path);
      this.implicitSubdirs.set(path, n);
    }
    return 2 + n;
  }

  private statOf(e: Entry): NodeStat {
    const type = typeOfMode(e.mode);
    const st: NodeStat = {
      type,
      mode: e.mode,
      size: type === "directory" ? 0 : e.size,
      ino: e.index + 2,
      nlink: type === "directory" ? this.nlinkOf(e.index, e.path) : 1,
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
    if (x.impliedDirs.has(path))
      return { ...this.rootStat, ino: 2 ** 48 + fnv1a(path), nlink: this.nlinkOf(-1, path) };
    return undefined;
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
    return {
      ...this.rootStat,
      ino: 2 ** 48 + fnv1a(path),
      nlink: this.nlinkOf(-1, path),
    };
  }

  /** Immediate children straight from the index blob (no Entry objects), in byte order. */
  private children(dir: string): DirEntry[] {
    const ix = this.reader.index;
    const b = ix.blob;
    const prefix = Buffer.from(dir);
    const [lo, hi] = ix.descendantRange(prefix);
    const base = dir === "" ? 0 : prefix.length + 1;
    const out: DirEntry[] = [];
    let last = "";
    let j = lo;
    while (j < hi) {
      const s = ix.pathStart(j) + base;
      const e = ix.pathEnd(j);
      const slash = b.indexOf(0x2f, s);
      if (slash < 0 || slash >= e) {
        const name = b.toString("utf8", s, e);
        if (name !== last) out.push({ name, type: typeOfMode(ix.mode(j)) });
        last = name;
        j++;
        continue;
      }
      // A deeper entry: its first component is a child directory (explicit or implicit).
      const name = b.toString("utf8", s, slash);
      if (name !== last) out.push({ name, type: "directory" });
      last = name;
      const [, end] = ix.descendantRange(b.subarray(ix.pathStart(j), slash));
      j = Math.max(j + 1, end);
    }
    if (this.extended !== null) this.addExtended(dir, out);
    // "a.txt" sorts before "a/x" in the index but "a" before "a.txt" by name: restore name order.
    let sorted = true;
    for (let k = 1; k < out.length && sorted; k++) {
      if (compareNames((out[k - 1] as DirEntry).name, (out[k] as DirEntry).name) >= 0) sorted = false;
    }
    if (!sorted) {
      const seen = new Map<string, DirEntry>();
      for (const d of out) {
        const prev = seen.get(d.name);
        if (!prev || d.type === "directory") seen.set(d.name, d);
      }
      return [...seen.values()].sort((x, y) => compareNames(x.name, y.name));
    }
    return out;
  }

  /** Adds a directory's special entries, and directories that only special entries imply. */
  private addExtended(dir: string, out: DirEntry[]): void {
    const x = this.extended as ExtendedEntries;
    const base = dir === "" ? 0 : dir.length + 1;
    for (const s of x.specialsIn(dir))
      out.push({ name: s.path.slice(base), type: specialType(s.mode) as FileType });
    for (const d of x.impliedDirs) {
      if (parentOf(d) === dir) out.push({ name: d.slice(base), type: "directory" });
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
    return {
      // Sync reads of a large compressed entry decode it whole; everything else is one pread or a copy.
      syncReadCheap: e.compression === "none" || e.size <= WHOLE_DECODE_LIMIT,
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

function hasCredentials(options: Credentials): boolean {
  return options.password !== undefined || options.key !== undefined;
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
      const { path, writable: _w, commit, ...rest } = options;
      if (commit !== undefined) {
        throw new BfcError(
          "EINVAL",
          "INVALID_ARGUMENT",
          "a writable mount shows the latest commit; use {from} to restore an older one",
        );
      }
      return WritableBfcFileSystem.open(path, rest);
    }
    const { path, writable: _w, commitInterval: _c, compression: _z, level: _l, ...rest } = options;
    const reader = await Reader.open(path, rest);
    try {
      // Derive a password's key now so later sync reads never block on Argon2id.
      await reader.unlock();
      if (reader.encrypted && hasCredentials(rest)) {
        const probe = smallestEncrypted(reader);
        if (probe >= 0) await reader.verifyEntry(probe);
      }
      return new BfcFileSystem(reader, rest);
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
    const { path, writable: _w, commitInterval: _c, compression: _z, level: _l, ...rest } = options;
    const reader = Reader.openSync(path, rest);
    try {
      if (reader.encrypted && hasCredentials(rest)) {
        const probe = smallestEncrypted(reader);
        if (probe >= 0) reader.readFileAtSync(probe, { owned: true });
      }
      return new BfcFileSystem(reader, rest);
    } catch (e) {
      reader.close();
      throw e;
    }
  },
};
