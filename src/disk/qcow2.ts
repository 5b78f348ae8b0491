import fs from "node:fs";
import zlib from "node:zlib";
import { ReusableRawInflater } from "../codec/raw-inflate.ts";
import { zstdDecompressFramesInto } from "../codec/zstd-frames.ts";
import { ContentCache } from "../container/content-cache.ts";
import { BfcError, corrupt, fromSystemError } from "../errors.ts";
import {
  type BackingPolicy,
  backingRoots,
  fileIdentity,
  MAX_BACKING_DEPTH,
  resolveBackingFile,
} from "./backing-file.ts";
import { type BlockSource, outOfRange, RawFile, readBytes } from "./block-source.ts";
import {
  isQcow2Magic,
  parseQcow2Header,
  QCOW2_PROBE_BYTES,
  type Qcow2Header,
  qcow2ClusterBits,
} from "./qcow2-header.ts";

export interface Qcow2Options {
  /**
   * Where backing files may live. Always: the top image's directory and below (after resolving
   * symlinks). "any" follows every backing file; a list allows those directories (and below) too.
   */
  allowBacking?: BackingPolicy;
  /** Budget of the L2-table cache per image of the chain (default 32 MiB). */
  l2CacheBytes?: number;
  /** Budget of the decompressed-cluster cache per image of the chain (default 32 MiB). */
  clusterCacheBytes?: number;
}

/** One image of a backing chain, for messages and `bfc disk`. */
export interface BackingLink {
  /** The name as recorded in the image above. */
  name: string;
  /** Where it was found (joined to the naming image's directory). */
  path: string;
  format: "raw" | "qcow2";
  /** Whether the format came from the header extension (true) or from probing the file (false). */
  formatRecorded: boolean;
}

interface ChainState {
  roots: "any" | string[];
  seen: Set<string>;
  depth: number;
  options: Qcow2Options;
}

const DEFAULT_L2_CACHE = 32 * 1024 * 1024;
const DEFAULT_CLUSTER_CACHE = 32 * 1024 * 1024;

// What one stretch of the virtual disk maps to (see map()).
const DATA = 0;
const ZERO = 1;
const BACKING = 2;
const COMPRESSED = 3;

const COMPRESSED_FLAG = 1n << 62n;
const ZERO_FLAG = 1n;
/** Host offset bits 9–55 of a standard L2 entry (and of an L1 entry). */
const OFFSET_MASK = 0x00fffffffffffe00n;
const SECTOR = 512;
/**
 * Compressed payloads are packed back to back; once reads of them run sequentially, host bytes are
 * read this much at a time (one pread for many small-cluster payloads instead of one each).
 */
const READAHEAD = 256 * 1024;
/** Evicted cluster buffers kept for reuse (each decode takes one, each cache insert frees about one). */
const SPARE_CLUSTERS = 4;

/**
 * A QCOW2 v2/v3 image as a BlockSource: the virtual disk, with unallocated clusters read from the
 * backing chain (or as zeros). L2 tables are read whole and kept in an LRU; compressed clusters are
 * decoded once into an LRU; runs of contiguous host clusters are read with one pread.
 */
export class Qcow2Image implements BlockSource {
  readonly size: number;
  readonly label: string;
  readonly header: Qcow2Header;
  /** The backing image (raw or qcow2), if the image has one. */
  readonly backing: BlockSource | null = null;
  readonly backingLink: BackingLink | null = null;
  /** Non-fatal findings about this image and its chain. */
  readonly warnings: string[];
  /** Size of the image file itself. */
  readonly fileSize: number;
  private readonly file: BlockSource;
  private readonly clusterSize: number;
  private readonly l1: Buffer;
  private readonly l2Entries: number;
  private readonly entryBytes: number;
  private readonly l2Cache: ContentCache;
  private readonly clusterCache: ContentCache;
  private readonly csizeShift: bigint;
  private readonly csizeMask: bigint;
  private readonly coffsetMask: bigint;
  private closed = false;
  // The last host bytes read for compressed clusters (read-ahead window), in `windowBuffer`.
  private window: Buffer | null = null;
  private windowAt = 0;
  private windowBuffer: Buffer | null = null;
  /**
   * Cluster buffers the cache let go, for the next decoded cluster: a sequential read of a
   * compressed image then allocates nothing per cluster. read() copies a cluster out before it
   * decodes another, and nothing else keeps one, so an evicted buffer is free.
   */
  private readonly spareClusters: Buffer[] = [];
  /** Deflate-compressed clusters are decoded through one reused context. */
  private inflater: ReusableRawInflater | null = null;
  // The result of map(): what the stretch at the asked offset is, where, and how long.
  private kind = DATA;
  private host = 0;
  private span = 0;
  private compLength = 0;

  /** Opens `file` (and its backing chain, within the policy). */
  static open(file: string, options: Qcow2Options = {}): Qcow2Image {
    const state: ChainState = {
      roots: backingRoots(options.allowBacking, file),
      seen: new Set([fileIdentity(file)]),
      depth: 0,
      options,
    };
    return Qcow2Image.openLink(file, state);
  }

  /** A QCOW2 image held by another source (e.g. in memory); it cannot follow a backing file. */
  static fromSource(file: BlockSource, options: Qcow2Options = {}): Qcow2Image {
    return new Qcow2Image(file, null, { roots: [], seen: new Set(), depth: 0, options });
  }

  /** `file` is opened; `namedAs` is where relative backing names are taken from (qemu's rule). */
  private static openLink(file: string, state: ChainState, namedAs = file): Qcow2Image {
    const raw = new RawFile(file);
    try {
      return new Qcow2Image(raw, namedAs, state);
    } catch (e) {
      raw.close();
      throw e;
    }
  }

  private constructor(file: BlockSource, path: string | null, state: ChainState) {
    this.file = file;
    this.label = file.label;
    this.fileSize = file.size;
    const probe = readBytes(file, 0, Math.min(QCOW2_PROBE_BYTES, file.size));
    if (!isQcow2Magic(probe)) {
      throw corrupt("BAD_MAGIC", `${this.label}: not a qcow2 image (bad magic)`, { path: this.label });
    }
    const bits = qcow2ClusterBits(probe, this.label);
    const h = parseQcow2Header(readBytes(file, 0, Math.min(2 ** bits, file.size)), file.size, this.label);
    this.header = h;
    this.size = h.virtualSize;
    this.clusterSize = h.clusterSize;
    this.entryBytes = h.extendedL2 ? 16 : 8;
    this.l2Entries = h.clusterSize / this.entryBytes;
    this.l1 = readBytes(file, h.l1Offset, h.l1Size * 8);
    this.csizeShift = BigInt(62 - (h.clusterBits - 8));
    this.csizeMask = (1n << BigInt(h.clusterBits - 8)) - 1n;
    this.coffsetMask = (1n << this.csizeShift) - 1n;
    const opts = state.options;
    this.l2Cache = new ContentCache(opts.l2CacheBytes ?? DEFAULT_L2_CACHE);
    this.clusterCache = new ContentCache(opts.clusterCacheBytes ?? DEFAULT_CLUSTER_CACHE, (b) => {
      if (b.length === this.clusterSize && this.spareClusters.length < SPARE_CLUSTERS) {
        this.spareClusters.push(b);
      }
    });
    this.warnings = [...h.warnings];
    if (h.backingFile !== null) {
      const opened = this.openBacking(h.backingFile, h.backingFormat, path, state);
      this.backing = opened.source;
      this.backingLink = opened.link;
      if (opened.source instanceof Qcow2Image) this.warnings.push(...opened.source.warnings);
    }
  }

  private openBacking(
    name: string,
    recorded: string | null,
    path: string | null,
    state: ChainState,
  ): { source: BlockSource; link: BackingLink } {
    if (path === null) {
      throw new BfcError(
        "ENOTSUP",
        "UNSUPPORTED",
        `${this.label}: has backing file '${name}', which cannot be followed for an image not opened from a file`,
        { path: this.label },
      );
    }
    if (state.depth + 1 > MAX_BACKING_DEPTH) {
      throw new BfcError(
        "ELOOP",
        "LOOP",
        `${this.label}: backing chain is deeper than ${MAX_BACKING_DEPTH} images (at '${name}')`,
        { path: this.label },
      );
    }
    const where = resolveBackingFile(path, name, state.roots);
    const id = fileIdentity(where.real);
    if (state.seen.has(id)) {
      throw new BfcError(
        "ELOOP",
        "LOOP",
        `${this.label}: backing chain loops: '${name}' (${where.real}) is already in the chain`,
        { path: where.real },
      );
    }
    state.seen.add(id);
    let format: string;
    if (recorded !== null) format = recorded;
    else format = probeIsQcow2(where.real) ? "qcow2" : "raw";
    if (format !== "qcow2" && format !== "raw") {
      throw new BfcError(
        "ENOTSUP",
        "UNSUPPORTED",
        `${this.label}: backing file '${name}' has format '${format}'; only raw and qcow2 are supported`,
        { path: this.label },
      );
    }
    const link: BackingLink = { name, path: where.path, format, formatRecorded: recorded !== null };
    // The checked real path is what gets opened, so a symlink swapped meanwhile cannot redirect it.
    const source =
      format === "qcow2"
        ? Qcow2Image.openLink(where.real, { ...state, depth: state.depth + 1 }, where.path)
        : new RawFile(where.real);
    return { source, link };
  }

  read(buf: Uint8Array, position: number): void {
    const length = buf.length;
    if (!Number.isSafeInteger(position) || position < 0 || position + length > this.size) {
      throw outOfRange(this, position, length);
    }
    if (this.closed) throw new BfcError("EBADF", "CLOSED", `${this.label}: closed`, { path: this.label });
    // A pending run of host-contiguous data (or of backing bytes), read with one call when it ends.
    let runKind = -1;
    let runFrom = 0;
    let runAt = 0;
    let runLength = 0;
    let done = 0;
    while (done < length) {
      const voff = position + done;
      this.map(voff, length - done);
      const span = this.span;
      const kind = this.kind;
      if (kind === DATA || kind === BACKING) {
        const from = kind === DATA ? this.host : voff;
        if (runKind === kind && runFrom + runLength === from) {
          runLength += span;
        } else {
          if (runKind >= 0) this.readRun(runKind, buf, runAt, runLength, runFrom);
          runKind = kind;
          runFrom = from;
          runAt = done;
          runLength = span;
        }
      } else {
        if (runKind >= 0) this.readRun(runKind, buf, runAt, runLength, runFrom);
        runKind = -1;
        if (kind === ZERO) buf.fill(0, done, done + span);
        else {
          const cluster = this.decompressed(this.host, this.compLength, voff);
          const within = voff % this.clusterSize;
          buf.set(cluster.subarray(within, within + span), done);
        }
      }
      done += span;
    }
    if (runKind >= 0) this.readRun(runKind, buf, runAt, runLength, runFrom);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.l2Cache.clear();
    this.clusterCache.clear();
    this.spareClusters.length = 0;
    this.window = null;
    this.windowBuffer = null;
    this.file.close();
    this.backing?.close();
  }

  private readRun(kind: number, buf: Uint8Array, at: number, length: number, from: number): void {
    const part = buf.subarray(at, at + length);
    if (kind === DATA) {
      if (from + length > this.fileSize) {
        throw corrupt(
          "TRUNCATED",
          `${this.label}: data cluster at host offset ${from} runs beyond the end of the file (${this.fileSize} bytes)`,
          { path: this.label },
        );
      }
      this.file.read(part, from);
      return;
    }
    // Unallocated: the backing image's bytes, zeros where it has none (or is shorter).
    const backing = this.backing;
    const have = backing === null ? 0 : Math.max(0, Math.min(length, backing.size - from));
    if (have > 0) backing!.read(part.subarray(0, have), from);
    if (have < length) part.fill(0, have);
  }

  private badTable(voff: number, message: string): BfcError {
    return corrupt("BAD_TABLE", `${this.label}: ${message} (virtual offset ${voff})`, { path: this.label });
  }

  private hostOffset(v: bigint, what: string, voff: number): number {
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.badTable(voff, `${what} ${v} is too large`);
    return Number(v);
  }

  /** The L2 table covering L1 entry `index`, or null when that whole range is unallocated. */
  private l2Table(index: number, voff: number): Buffer | null {
    const offset = this.hostOffset(this.l1.readBigUInt64BE(index * 8) & OFFSET_MASK, "L2 table offset", voff);
    if (offset === 0) return null;
    const cached = this.l2Cache.get(offset);
    if (cached !== undefined) return cached;
    if (offset % this.clusterSize !== 0) {
      throw this.badTable(voff, `L2 table offset ${offset} is not cluster-aligned`);
    }
    if (offset + this.clusterSize > this.fileSize) {
      throw corrupt(
        "TRUNCATED",
        `${this.label}: L2 table at ${offset} is beyond the end of the file (${this.fileSize} bytes)`,
        { path: this.label },
      );
    }
    const table = readBytes(this.file, offset, this.clusterSize);
    this.l2Cache.set(offset, table);
    return table;
  }

  /**
   * Sets kind/host/span (and compLength) for the stretch starting at virtual offset `voff`, at
   * most `max` bytes long and never crossing a cluster (or subcluster) of a different kind.
   */
  private map(voff: number, max: number): void {
    const cs = this.clusterSize;
    const ci = Math.floor(voff / cs);
    const within = voff - ci * cs;
    const span = Math.min(max, cs - within);
    const l2 = this.l2Table(Math.floor(ci / this.l2Entries), voff);
    this.span = span;
    if (l2 === null) {
      this.kind = BACKING;
      return;
    }
    const at = (ci % this.l2Entries) * this.entryBytes;
    const entry = l2.readBigUInt64BE(at);
    if (entry & COMPRESSED_FLAG) {
      this.mapCompressed(entry, voff);
      return;
    }
    const offset = this.hostOffset(entry & OFFSET_MASK, "cluster offset", voff);
    if (offset % cs !== 0) throw this.badTable(voff, `data cluster offset ${offset} is not cluster-aligned`);
    if (this.entryBytes === 16) {
      this.mapSubclusters(l2.readUInt32BE(at + 12), l2.readUInt32BE(at + 8), offset, within, span, voff);
      return;
    }
    if (entry & ZERO_FLAG) {
      // qemu keeps a preallocated host offset beside the zero flag: the flag wins.
      if (this.header.version < 3) throw this.badTable(voff, "zero cluster in a version 2 image");
      this.kind = ZERO;
    } else if (offset === 0) {
      this.kind = BACKING;
    } else {
      this.kind = DATA;
      this.host = offset + within;
    }
  }

  private mapCompressed(entry: bigint, voff: number): void {
    const offset = this.hostOffset(entry & this.coffsetMask, "compressed cluster offset", voff);
    const sectors = Number((entry >> this.csizeShift) & this.csizeMask) + 1;
    // The descriptor gives whole 512-byte sectors from the sector holding the first byte.
    const bound = sectors * SECTOR - (offset % SECTOR);
    if (offset >= this.fileSize) {
      throw corrupt(
        "TRUNCATED",
        `${this.label}: compressed cluster at host offset ${offset} is beyond the end of the file (virtual offset ${voff})`,
        { path: this.label },
      );
    }
    this.kind = COMPRESSED;
    this.host = offset;
    this.compLength = Math.min(bound, this.fileSize - offset);
  }

  /** Extended L2: 32 subclusters, each allocated (alloc bit), zero (zero bit) or unallocated. */
  private mapSubclusters(
    alloc: number,
    zeros: number,
    offset: number,
    within: number,
    span: number,
    voff: number,
  ): void {
    if ((alloc & zeros) !== 0) throw this.badTable(voff, "subcluster marked both allocated and zero");
    if (offset === 0 && alloc !== 0)
      throw this.badTable(voff, "unallocated cluster with allocated subclusters");
    const sc = this.clusterSize / 32;
    const first = Math.floor(within / sc);
    const kindOf = (s: number) =>
      ((alloc >>> s) & 1) !== 0 ? DATA : ((zeros >>> s) & 1) !== 0 ? ZERO : BACKING;
    const kind = kindOf(first);
    let end = first + 1;
    while (end < 32 && end * sc < within + span && kindOf(end) === kind) end++;
    this.kind = kind;
    this.span = Math.min(span, end * sc - within);
    this.host = offset + within;
  }

  /**
   * Host bytes of a compressed payload, through the read-ahead window when reads are sequential.
   * A view of the window's buffer, valid until the next call.
   */
  private compressedBytes(offset: number, length: number): Buffer {
    const w = this.window;
    if (w !== null && offset >= this.windowAt) {
      const from = offset - this.windowAt;
      if (from + length <= w.length) return w.subarray(from, from + length);
      if (from <= w.length + SECTOR) {
        const n = Math.min(Math.max(length, READAHEAD), this.fileSize - offset);
        return this.fillWindow(offset, n).subarray(0, length);
      }
    }
    return this.fillWindow(offset, length);
  }

  /** Reads `length` host bytes at `offset` into the window's (reused) buffer. */
  private fillWindow(offset: number, length: number): Buffer {
    // Invalid until the read has succeeded.
    this.window = null;
    if (this.windowBuffer === null || this.windowBuffer.length < length) {
      this.windowBuffer = Buffer.allocUnsafeSlow(Math.max(length, READAHEAD));
    }
    const w = this.windowBuffer.subarray(0, length);
    this.file.read(w, offset);
    this.window = w;
    this.windowAt = offset;
    return w;
  }

  /** The decoded cluster whose compressed bytes start at host `offset`. */
  private decompressed(offset: number, length: number, voff: number): Buffer {
    const cached = this.clusterCache.get(offset);
    if (cached !== undefined) return cached;
    const data = this.compressedBytes(offset, length);
    const cs = this.clusterSize;
    let out: Buffer;
    try {
      const into = this.spareClusters.pop() ?? Buffer.allocUnsafeSlow(cs);
      if (this.header.compression === "zstd") {
        out = zstdDecompressFramesInto(data, into);
      } else {
        // Raw deflate; the range may end with the next cluster's bytes (ignored) and qemu accepts a
        // stream that fills the cluster without its end marker, hence the sync flush.
        this.inflater ??= new ReusableRawInflater();
        out = this.inflater.inflateInto(data, into)
          ? into
          : zlib.inflateRawSync(data, {
              maxOutputLength: cs,
              chunkSize: cs,
              finishFlush: zlib.constants.Z_SYNC_FLUSH,
            });
      }
    } catch (e) {
      const detail =
        (e as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE"
          ? `decodes to more than the cluster size (${cs} bytes)`
          : (e as Error).message;
      throw new BfcError(
        "EIO",
        "DECOMPRESS_FAILED",
        `${this.label}: compressed cluster at host offset ${offset} (virtual offset ${voff}): ${detail}`,
        { path: this.label, cause: e },
      );
    }
    if (out.length !== cs) {
      throw new BfcError(
        "EIO",
        "DECOMPRESS_FAILED",
        `${this.label}: compressed cluster at host offset ${offset} (virtual offset ${voff}) decodes to ${out.length} bytes, not ${cs}`,
        { path: this.label },
      );
    }
    this.clusterCache.set(offset, out);
    return out;
  }
}

function probeIsQcow2(file: string): boolean {
  let fd: number | null = null;
  try {
    fd = fs.openSync(file, "r");
    const head = Buffer.alloc(4);
    const n = fs.readSync(fd, head, 0, 4, 0);
    return n === 4 && isQcow2Magic(head);
  } catch (e) {
    throw fromSystemError(e, `cannot read '${file}'`, file);
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}
