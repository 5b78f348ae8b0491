import { crc32c } from "../codec/crc32c.ts";
import { BfcError } from "../errors.ts";
import { INDEX_ENTRY_TAIL, INDEX_HEADER_SIZE, INDEX_VERSION } from "../format/constants.ts";
import { type IndexRecord, writeIndexEntryTail } from "../format/index-table.ts";
import { ByteArena } from "./byte-arena.ts";

/** An index record's fields but its path. */
export type RecordFields = Omit<IndexRecord, "pathBytes">;

/** Bytes of index handed out at a time. */
const PIECE = 64 * 1024;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * The index records a writer collects until it finishes, packed: fields in typed arrays, path
 * bytes in the writer's arena, and the path string the writer keeps anyway for its lookups. An
 * object, a Buffer view, a BigInt and a heap number per entry cost ~250 bytes of heap, all live
 * until the end (35k entries: ~9 MiB); this is ~60 bytes an entry, outside the JS heap but for the
 * string's slot.
 */
export class RecordStore {
  private readonly arena: ByteArena;
  private n = 0;
  private objOffset = new Float64Array(0);
  private objSize = new Float64Array(0);
  private origSize = new Float64Array(0);
  private pathRef = new Float64Array(0);
  private mtimeNs = new BigInt64Array(0);
  private mode = new Uint32Array(0);
  private comp = new Uint32Array(0);
  private enc = new Uint32Array(0);
  private crc = new Uint32Array(0);
  private pathLen = new Uint32Array(0);
  private readonly paths: string[] = [];

  constructor(arena: ByteArena) {
    this.arena = arena;
  }

  get count(): number {
    return this.n;
  }

  /** The path of record `i`. */
  path(i: number): string {
    return this.paths[i] as string;
  }

  /**
   * Appends a record named `path`, whose bytes are `pathLen` bytes at `pathRef` in the arena;
   * returns its number.
   */
  push(path: string, pathRef: number, pathLen: number, f: RecordFields): number {
    if (f.mtimeNs < INT64_MIN || f.mtimeNs > INT64_MAX) {
      throw new BfcError("EINVAL", "INVALID_ARGUMENT", `'${path}': mtime ${f.mtimeNs} ns is out of range`, {
        path,
      });
    }
    const i = this.n;
    if (i === this.objOffset.length) this.grow();
    this.paths.push(path);
    this.pathRef[i] = pathRef;
    this.pathLen[i] = pathLen;
    this.objOffset[i] = f.objOffset;
    this.objSize[i] = f.objSize;
    this.origSize[i] = f.origSize;
    this.mtimeNs[i] = f.mtimeNs;
    this.mode[i] = f.mode >>> 0;
    this.comp[i] = f.comp >>> 0;
    this.enc[i] = f.enc >>> 0;
    this.crc[i] = f.crc >>> 0;
    this.n = i + 1;
    return i;
  }

  /** The fields of record `i`. */
  fields(i: number): RecordFields {
    return {
      objOffset: this.objOffset[i] as number,
      objSize: this.objSize[i] as number,
      mode: this.mode[i] as number,
      mtimeNs: this.mtimeNs[i] as bigint,
      comp: this.comp[i] as number,
      enc: this.enc[i] as number,
      origSize: this.origSize[i] as number,
      crc: this.crc[i] as number,
    };
  }

  /** Record numbers in the index's order: byte-wise order of the UTF-8 paths (C strcmp). */
  sorted(): number[] {
    const order = Array.from({ length: this.n }, (_, i) => i);
    const { arena, pathRef, pathLen } = this;
    order.sort((a, b) => {
      const ra = pathRef[a] as number;
      const rb = pathRef[b] as number;
      const oa = ByteArena.offset(ra);
      const ob = ByteArena.offset(rb);
      return arena
        .chunk(ra)
        .compare(arena.chunk(rb), ob, ob + (pathLen[b] as number), oa, oa + (pathLen[a] as number));
    });
    return order;
  }

  /**
   * Writes the index (its header, the records in `order`, then `extension`) to `out` in pieces,
   * each valid until `out` returns (one buffer serves them all: no blob of the whole index at the
   * writer's peak); returns its size and CRC-32C.
   */
  writeIndex(
    order: readonly number[],
    extension: Buffer,
    out: (piece: Buffer) => void,
  ): { size: number; crc: number } {
    let piece = Buffer.allocUnsafe(PIECE);
    let p = INDEX_HEADER_SIZE;
    let size = 0;
    let crc = 0;
    const flush = () => {
      const b = piece.subarray(0, p);
      crc = crc32c(b, crc);
      size += p;
      out(b);
      p = 0;
    };
    piece.writeUInt32LE(INDEX_VERSION, 0);
    piece.writeUInt32LE(order.length, 4);
    for (const i of order) {
      const ref = this.pathRef[i] as number;
      const len = this.pathLen[i] as number;
      const need = 4 + len + INDEX_ENTRY_TAIL;
      if (p + need > piece.length) {
        flush();
        if (need > piece.length) piece = Buffer.allocUnsafe(need);
      }
      const at = ByteArena.offset(ref);
      piece.writeUInt32LE(len, p);
      p += 4 + this.arena.chunk(ref).copy(piece, p + 4, at, at + len);
      p = writeIndexEntryTail(piece, p, this.fields(i));
    }
    flush();
    if (extension.length > 0) {
      crc = crc32c(extension, crc);
      size += extension.length;
      out(extension);
    }
    return { size, crc };
  }

  private grow(): void {
    const cap = Math.max(1024, this.objOffset.length * 2);
    const f64 = (a: Float64Array) => {
      const b = new Float64Array(cap);
      b.set(a);
      return b;
    };
    const u32 = (a: Uint32Array) => {
      const b = new Uint32Array(cap);
      b.set(a);
      return b;
    };
    this.objOffset = f64(this.objOffset);
    this.objSize = f64(this.objSize);
    this.origSize = f64(this.origSize);
    this.pathRef = f64(this.pathRef);
    const m = new BigInt64Array(cap);
    m.set(this.mtimeNs);
    this.mtimeNs = m;
    this.mode = u32(this.mode);
    this.comp = u32(this.comp);
    this.enc = u32(this.enc);
    this.crc = u32(this.crc);
    this.pathLen = u32(this.pathLen);
  }
}
