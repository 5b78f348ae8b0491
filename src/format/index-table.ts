import { corrupt } from "../errors.ts";
import {
  COMP_NONE,
  COMP_ZSTD,
  ENC_CHACHA20_POLY1305,
  ENC_NONE,
  HEADER_SIZE,
  INDEX_ENTRY_TAIL,
  INDEX_HEADER_SIZE,
  INDEX_VERSION,
  MAX_PATH_BYTES,
  OBJECT_HEADER_SIZE,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
} from "./constants.ts";
import { checkStoredPath } from "./path.ts";
import { readU64, writeU64 } from "./u64.ts";

/** One index entry as written. */
export interface IndexRecord {
  pathBytes: Buffer;
  objOffset: number;
  objSize: number;
  /** Full mode, including the file-type bits. */
  mode: number;
  mtimeNs: bigint;
  comp: number;
  enc: number;
  origSize: number;
  crc: number;
}

export type EntryType = "file" | "directory" | "symlink" | "other";

export function typeOfMode(mode: number): EntryType {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "file";
    case S_IFDIR:
      return "directory";
    case S_IFLNK:
      return "symlink";
    default:
      return "other";
  }
}

/** Byte-wise order of the UTF-8 paths (C strcmp), which is not JS string order. */
export function sortRecords(records: IndexRecord[]): void {
  records.sort((a, b) => Buffer.compare(a.pathBytes, b.pathBytes));
}

/** Serializes sorted records into an index blob (header + entries + optional extension bytes). */
export function encodeIndex(records: IndexRecord[], extension?: Buffer): Buffer {
  let size = INDEX_HEADER_SIZE + (extension?.length ?? 0);
  for (const r of records) size += 4 + r.pathBytes.length + INDEX_ENTRY_TAIL;
  const buf = Buffer.allocUnsafe(size);
  buf.writeUInt32LE(INDEX_VERSION, 0);
  buf.writeUInt32LE(records.length, 4);
  let p = INDEX_HEADER_SIZE;
  for (const r of records) {
    buf.writeUInt32LE(r.pathBytes.length, p);
    p += 4;
    r.pathBytes.copy(buf, p);
    p = writeIndexEntryTail(buf, p + r.pathBytes.length, r);
  }
  if (extension) extension.copy(buf, p);
  return buf;
}

/** Writes an entry's fields after its path, at `p`; returns the offset after them. */
export function writeIndexEntryTail(buf: Buffer, p: number, r: Omit<IndexRecord, "pathBytes">): number {
  writeU64(buf, r.objOffset, p);
  writeU64(buf, r.objSize, p + 8);
  buf.writeUInt32LE(r.mode >>> 0, p + 16);
  buf.writeBigInt64LE(r.mtimeNs, p + 20);
  buf.writeUInt32LE(r.comp, p + 28);
  buf.writeUInt32LE(r.enc, p + 32);
  writeU64(buf, r.origSize, p + 36);
  buf.writeUInt32LE(r.crc >>> 0, p + 44);
  return p + INDEX_ENTRY_TAIL;
}

/**
 * A parsed and validated index in shared memory (IndexTable.share): other threads of the process
 * attach to it instead of reading, checking and parsing the index again.
 */
export interface SharedIndex {
  blob: SharedArrayBuffer;
  length: number;
  starts: SharedArrayBuffer;
  count: number;
  entriesEnd: number;
  belowNonDir: boolean;
}

/**
 * A parsed index, kept as the raw blob plus one offset per entry: opening a 100k-entry container
 * validates every entry in one pass but builds no per-entry objects; fields are read on demand.
 */
export class IndexTable {
  readonly blob: Buffer;
  readonly count: number;
  /** Byte offset of each entry's path_len, in byte-wise path order. */
  private readonly starts: Uint32Array;
  /** Where the entries end inside the blob; bytes after this are the extension area. */
  readonly entriesEnd: number;
  private belowNonDir: boolean | undefined;

  private constructor(blob: Buffer, starts: Uint32Array, entriesEnd: number) {
    this.blob = blob;
    this.starts = starts;
    this.count = starts.length;
    this.entriesEnd = entriesEnd;
  }

  /**
   * This index in shared memory, for IndexTable.attach in other threads (copies it once, unless it
   * already lives there).
   */
  share(): SharedIndex {
    let blob: SharedArrayBuffer;
    if (this.blob.buffer instanceof SharedArrayBuffer && this.blob.byteOffset === 0) blob = this.blob.buffer;
    else {
      blob = new SharedArrayBuffer(this.blob.length);
      Buffer.from(blob).set(this.blob);
    }
    let starts: SharedArrayBuffer;
    if (this.starts.buffer instanceof SharedArrayBuffer && this.starts.byteOffset === 0)
      starts = this.starts.buffer;
    else {
      starts = new SharedArrayBuffer(this.starts.byteLength);
      new Uint32Array(starts).set(this.starts);
    }
    return {
      blob,
      length: this.blob.length,
      starts,
      count: this.count,
      entriesEnd: this.entriesEnd,
      belowNonDir: this.hasEntriesBelowNonDirectories(),
    };
  }

  /**
   * The index another thread of this process parsed and validated (see share): nothing is checked
   * again, so `s` must come from share().
   */
  static attach(s: SharedIndex): IndexTable {
    const t = new IndexTable(
      Buffer.from(s.blob, 0, s.length),
      new Uint32Array(s.starts, 0, s.count),
      s.entriesEnd,
    );
    t.belowNonDir = s.belowNonDir;
    return t;
  }

  /**
   * Parses and validates a blob. `objectsEnd` bounds where objects may lie (the index offset),
   * so no entry can point into the header, the index or past the file.
   */
  static parse(blob: Buffer, objectsEnd: number): IndexTable {
    if (blob.length < INDEX_HEADER_SIZE) {
      throw corrupt("BAD_INDEX", "index is shorter than its header", { field: "index" });
    }
    if (blob.length > 0xffffffff) {
      throw corrupt("UNSUPPORTED", "index larger than 4 GiB", { field: "index" });
    }
    const version = blob.readUInt32LE(0);
    if (version !== INDEX_VERSION) {
      throw corrupt("BAD_INDEX", `unsupported index version ${version}`, { field: "index.version" });
    }
    const count = blob.readUInt32LE(4);
    if (count > (blob.length - INDEX_HEADER_SIZE) / (4 + 1 + INDEX_ENTRY_TAIL)) {
      throw corrupt("BAD_INDEX", `index claims ${count} entries, more than fit in its size`, {
        field: "index.count",
      });
    }
    // Shared memory when the blob is: the table is then shared without a copy (share()).
    const starts = new Uint32Array(
      blob.buffer instanceof SharedArrayBuffer
        ? new SharedArrayBuffer(count * 4)
        : new ArrayBuffer(count * 4),
    );
    const len = blob.length;
    const b = blob;
    let p = INDEX_HEADER_SIZE;
    let sorted = true;
    let prevS = 0;
    let prevE = 0;
    const stack = new NonDirStack();
    let below = false;
    // One tight pass: this loop is most of the cost of opening a large container, so it reads
    // bytes directly and compares paths in JS rather than through native calls per entry.
    for (let i = 0; i < count; i++) {
      if (p + 4 > len) throw entryError(i, "entry runs past the end of the index");
      const pathLen = (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
      const s = p + 4;
      const e = s + pathLen;
      if (pathLen === 0 || e + INDEX_ENTRY_TAIL > len) {
        throw entryError(i, pathLen === 0 ? "empty path" : "entry runs past the end of the index");
      }
      // Order and path rules in one walk over each path's bytes. The prefix shared with the
      // previous path is only compared: its whole components were already checked there. The
      // rest, from the start of the component where the paths diverge, is checked here.
      const plen = prevE - prevS;
      let k = 0;
      let cs = s;
      if (i > 0) {
        const n = Math.min(pathLen, plen);
        while (k < n && b[s + k] === b[prevS + k]) {
          if (b[s + k] === 0x2f) cs = s + k + 1;
          k++;
        }
        const cmp = k < n ? b[s + k] - b[prevS + k] : pathLen - plen;
        if (cmp === 0) throw entryError(i, `duplicate path '${safeText(b, s, e)}'`);
        if (cmp < 0) sorted = false;
      }
      if (pathLen > MAX_PATH_BYTES || !quickPathOk(b, s, cs, e)) {
        const bad = checkStoredPath(b, s, e) ?? "invalid path";
        throw entryError(i, `unsafe path '${safeText(b, s, e)}': ${bad}`);
      }

      const offHi = u32(b, e + 4);
      const sizeHi = u32(b, e + 12);
      const objOffset = offHi * 0x100000000 + u32(b, e);
      const objSize = sizeHi * 0x100000000 + u32(b, e + 8);
      if (
        offHi > 0x1fffff ||
        sizeHi > 0x1fffff ||
        objOffset < HEADER_SIZE ||
        objOffset + objSize > objectsEnd
      ) {
        throw entryError(i, `object of '${safeText(b, s, e)}' lies outside the data area`);
      }
      // The object's name may differ from this path (a hard link, or a file renamed by a commit:
      // record 10), so only the smallest possible object is checked here; the reader checks the
      // exact header size against the name the object carries.
      if (objSize < ((OBJECT_HEADER_SIZE + 1 + 15) & ~15)) {
        throw entryError(i, `object of '${safeText(b, s, e)}' is smaller than its header`);
      }
      const comp = u32(b, e + 28);
      const enc = u32(b, e + 32);
      if (comp !== COMP_NONE || enc !== ENC_NONE) {
        if (
          (comp !== COMP_NONE && comp !== COMP_ZSTD) ||
          (enc !== ENC_NONE && enc !== ENC_CHACHA20_POLY1305)
        ) {
          throw corrupt(
            "UNSUPPORTED",
            `entry '${safeText(b, s, e)}' uses unknown compression or encryption`,
            {
              field: `index[${i}]`,
            },
          );
        }
        if ((u32(b, e + 16) & S_IFMT) !== S_IFREG) {
          throw entryError(i, "only regular files can be compressed or encrypted");
        }
      }
      if (u32(b, e + 40) > 0x1fffff) throw entryError(i, "size out of range");
      // In index order the check below needs no second pass (opening a container paid ~15 ms
      // for one on 50,000 entries); out of order, it waits for the sort.
      if (sorted && !below) below = stack.below(b, s, e, (u32(b, e + 16) & S_IFMT) === S_IFDIR);
      starts[i] = p;
      prevS = s;
      prevE = e;
      p = e + INDEX_ENTRY_TAIL;
    }
    if (!sorted) sortStarts(blob, starts);
    const t = new IndexTable(blob, starts, p);
    if (sorted) t.belowNonDir = below;
    return t;
  }

  /**
   * True when some entry lies beneath a file or symlink entry ("a" a file and "a/b" present), which
   * the format does not forbid but no tree can hold. Linear: entries are sorted, so the non-directory
   * entries that are string prefixes of the current path form a stack, and only its top can be the
   * nearest such ancestor.
   */
  hasEntriesBelowNonDirectories(): boolean {
    if (this.belowNonDir !== undefined) return this.belowNonDir;
    const stack = new NonDirStack();
    let found = false;
    for (let i = 0; i < this.count && !found; i++) {
      found = stack.below(this.blob, this.pathStart(i), this.pathEnd(i), (this.mode(i) & S_IFMT) === S_IFDIR);
    }
    this.belowNonDir = found;
    return found;
  }

  /** Extension bytes after the last entry (covered by the index CRC; ignored by the reference). */
  extension(): Buffer {
    return this.blob.subarray(this.entriesEnd);
  }

  private tail(i: number): number {
    const s = this.starts[i];
    return s + 4 + this.blob.readUInt32LE(s);
  }

  pathStart(i: number): number {
    return this.starts[i] + 4;
  }

  pathEnd(i: number): number {
    return this.tail(i);
  }

  path(i: number): string {
    const s = this.starts[i];
    return this.blob.toString("utf8", s + 4, s + 4 + this.blob.readUInt32LE(s));
  }

  pathBytes(i: number): Buffer {
    const s = this.starts[i];
    return this.blob.subarray(s + 4, s + 4 + this.blob.readUInt32LE(s));
  }

  pathByteLength(i: number): number {
    return this.blob.readUInt32LE(this.starts[i]);
  }

  objOffset(i: number): number {
    return readU64(this.blob, this.tail(i));
  }

  objSize(i: number): number {
    return readU64(this.blob, this.tail(i) + 8);
  }

  mode(i: number): number {
    return this.blob.readUInt32LE(this.tail(i) + 16);
  }

  mtimeNs(i: number): bigint {
    return this.blob.readBigInt64LE(this.tail(i) + 20);
  }

  comp(i: number): number {
    return this.blob.readUInt32LE(this.tail(i) + 28);
  }

  enc(i: number): number {
    return this.blob.readUInt32LE(this.tail(i) + 32);
  }

  origSize(i: number): number {
    return readU64(this.blob, this.tail(i) + 36);
  }

  crc(i: number): number {
    return this.blob.readUInt32LE(this.tail(i) + 44);
  }

  record(i: number): IndexRecord {
    const t = this.tail(i);
    const b = this.blob;
    return {
      pathBytes: this.pathBytes(i),
      objOffset: readU64(b, t),
      objSize: readU64(b, t + 8),
      mode: b.readUInt32LE(t + 16),
      mtimeNs: b.readBigInt64LE(t + 20),
      comp: b.readUInt32LE(t + 28),
      enc: b.readUInt32LE(t + 32),
      origSize: readU64(b, t + 36),
      crc: b.readUInt32LE(t + 44),
    };
  }

  /** Compares entry i's path with key bytes [ks, ke): negative if the entry sorts first. */
  compareAt(i: number, key: Buffer, ks = 0, ke = key.length): number {
    const s = this.starts[i];
    const ps = s + 4;
    return this.blob.compare(key, ks, ke, ps, ps + this.blob.readUInt32LE(s));
  }

  /**
   * First position whose path is >= key. Compares bytes in JS (a native Buffer.compare per probe
   * costs more than the bytes it compares) and skips the prefix the key is known to share with both
   * bounds: every entry between two bounds shares at least the shorter of their common prefixes.
   */
  lowerBound(key: Buffer, ks = 0, ke = key.length, from = 0): number {
    const b = this.blob;
    const starts = this.starts;
    const klen = ke - ks;
    let lo = from;
    let hi = this.count;
    let lcpLo = 0;
    let lcpHi = 0;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const s = starts[mid] as number;
      const len =
        (b[s] as number) |
        ((b[s + 1] as number) << 8) |
        ((b[s + 2] as number) << 16) |
        ((b[s + 3] as number) << 24);
      const ps = s + 4;
      const n = Math.min(len, klen);
      let k = Math.min(lcpLo, lcpHi);
      let d = 0;
      while (k < n) {
        d = (b[ps + k] as number) - (key[ks + k] as number);
        if (d !== 0) break;
        k++;
      }
      if (d === 0) d = len - klen;
      if (d < 0) {
        lo = mid + 1;
        lcpLo = k;
      } else {
        hi = mid;
        lcpHi = k;
      }
    }
    return lo;
  }

  /** Position of the exact path, or -1. */
  find(key: Buffer): number {
    const i = this.lowerBound(key);
    return i < this.count && this.compareAt(i, key) === 0 ? i : -1;
  }

  /**
   * The range of entries strictly under a directory: those whose path starts with `prefix` + "/"
   * (or every entry for the root, prefix ""). Byte order keeps them contiguous.
   */
  descendantRange(prefix: Buffer): [number, number] {
    if (prefix.length === 0) return [0, this.count];
    const key = Buffer.allocUnsafe(prefix.length + 1);
    prefix.copy(key);
    key[prefix.length] = 0x2f;
    const lo = this.lowerBound(key);
    key[prefix.length] = 0x30; // '/' + 1: first path past every "prefix/..."
    const hi = this.lowerBound(key, 0, key.length, lo);
    return [lo, hi];
  }
}

/**
 * Non-directory entries that are string prefixes of the path being looked at, for entries in index
 * (byte) order: only the top can be the nearest such ancestor of the next path.
 */
class NonDirStack {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];

  /** Whether the entry at b[s, e) lies beneath a non-directory entry seen before it. */
  below(b: Buffer, s: number, e: number, isDir: boolean): boolean {
    const starts = this.starts;
    const ends = this.ends;
    const len = e - s;
    while (starts.length > 0) {
      const ts = starts[starts.length - 1] as number;
      const tl = (ends[ends.length - 1] as number) - ts;
      if (tl < len && b[ts + tl - 1] === b[s + tl - 1]) {
        let k = 0;
        while (k < tl && b[ts + k] === b[s + k]) k++;
        if (k === tl) {
          if (b[s + tl] === 0x2f) return true;
          break;
        }
      }
      starts.pop();
      ends.pop();
    }
    if (!isDir) {
      starts.push(s);
      ends.push(e);
    }
    return false;
  }
}

/**
 * The common case of checkStoredPath in one allocation-free loop (false: look closer), checking
 * from `from`, a component start at or after `s` (bytes before it are known good).
 */
function quickPathOk(b: Buffer, s: number, from: number, e: number): boolean {
  if (b[s] === 0x2f) return false;
  let compStart = from;
  for (let k = from; k < e; k++) {
    const c = b[k];
    if (c === 0x2f) {
      const n = k - compStart;
      if (n === 0 || (b[compStart] === 0x2e && (n === 1 || (n === 2 && b[compStart + 1] === 0x2e))))
        return false;
      compStart = k + 1;
    } else if (c === 0) return false;
  }
  const n = e - compStart;
  return !(n === 0 || (b[compStart] === 0x2e && (n === 1 || (n === 2 && b[compStart + 1] === 0x2e))));
}

function u32(b: Buffer, p: number): number {
  return (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
}

function entryError(i: number, why: string) {
  return corrupt("BAD_INDEX", `index entry ${i}: ${why}`, { field: `index[${i}]` });
}

function safeText(buf: Buffer, s: number, e: number): string {
  const text = buf.toString("utf8", s, Math.min(e, s + 200));
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

function sortStarts(blob: Buffer, starts: Uint32Array): void {
  const arr = Array.from(starts);
  arr.sort((a, b) => {
    const al = blob.readUInt32LE(a);
    const bl = blob.readUInt32LE(b);
    return blob.compare(blob, b + 4, b + 4 + bl, a + 4, a + 4 + al);
  });
  for (let i = 1; i < arr.length; i++) {
    const a = arr[i - 1];
    const b = arr[i];
    if (blob.compare(blob, b + 4, b + 4 + blob.readUInt32LE(b), a + 4, a + 4 + blob.readUInt32LE(a)) === 0) {
      throw corrupt("BAD_INDEX", `duplicate path '${safeText(blob, b + 4, b + 4 + blob.readUInt32LE(b))}'`, {
        field: "index",
      });
    }
  }
  starts.set(arr);
}
