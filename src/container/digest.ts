/**
 * The root digest: one SHA-256 over every entry's metadata and content hash, in index order
 * (docs/format.md, "Root digest"). It depends on what the container holds, not on how it is stored,
 * so a plain and a zstd+encrypted container of the same tree agree, and it can be pinned: CRC-32C
 * only catches accidents, while matching this digest means nobody changed a path, mode, time or byte.
 */
import { createHash } from "node:crypto";
import { BfcError, corrupt } from "../errors.ts";
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from "../format/constants.ts";
import type { Reader } from "./reader.ts";

export const ROOT_DIGEST_PREFIX = "bfc-root-digest-v1\0";

export interface RootDigestOptions {
  onProgress?: (p: RootDigestProgress) => void;
}

export interface RootDigestProgress {
  entries: number;
  totalEntries: number;
  bytes: number;
  totalBytes: number;
}

export interface RootDigest {
  /** 64 lowercase hex digits. */
  digest: string;
  entries: number;
  /** File content bytes hashed (decoded, original sizes). */
  bytes: number;
}

/** Files up to this size (original and stored) are decoded whole, in batches of neighbours. */
const SMALL = 4 * 1024 * 1024;
/** Stored bytes fetched per batch; readFilesSync places every batch's objects in this scratch. */
const BATCH = 8 * 1024 * 1024;
const ZERO_HASH = Buffer.alloc(32);

/** The type byte of an entry record: the object-header codes, 0 for anything else. */
export function digestTypeOf(mode: number): number {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 1;
    case S_IFDIR:
      return 2;
    case S_IFLNK:
      return 3;
    default:
      return 0;
  }
}

/** One entry's record in the digest stream (everything but the content hash, which follows it). */
export function encodeDigestRecord(
  pathBytes: Uint8Array,
  mode: number,
  mtimeNs: bigint,
  size: number,
): Buffer {
  const rec = Buffer.allocUnsafe(4 + pathBytes.length + 4 + 8 + 1 + 8);
  let o = rec.writeUInt32LE(pathBytes.length, 0);
  rec.set(pathBytes, o);
  o += pathBytes.length;
  o = rec.writeUInt32LE(mode >>> 0, o);
  o = rec.writeBigInt64LE(mtimeNs, o);
  o = rec.writeUInt8(digestTypeOf(mode), o);
  rec.writeBigUInt64LE(BigInt(size), o);
  return rec;
}

function sha256(data: Uint8Array): Buffer {
  return createHash("sha256").update(data).digest();
}

/**
 * Computes the root digest. Every entry goes through the Reader's verification (object header,
 * size, CRC, tag) on the way, so a damaged entry throws its BfcError instead of producing a
 * digest; encrypted containers need the reader opened with the key.
 */
export async function rootDigest(reader: Reader, options: RootDigestOptions = {}): Promise<RootDigest> {
  const ix = reader.index;
  const n = ix.count;
  await reader.unlock();
  let totalBytes = 0;
  for (let i = 0; i < n; i++) if ((ix.mode(i) & S_IFMT) === S_IFREG) totalBytes += ix.origSize(i);
  const outer = createHash("sha256").update(ROOT_DIGEST_PREFIX, "latin1");
  const scratch = Buffer.allocUnsafe(BATCH);
  // Compressed contents are decoded here (fresh memory for each would cost more than decoding).
  const decoded = Buffer.allocUnsafe(BATCH);
  let done = 0;
  let bytes = 0;
  const progress = () => options.onProgress?.({ entries: done, totalEntries: n, bytes, totalBytes });

  const isSmall = (i: number) => ix.origSize(i) <= SMALL && ix.objSize(i) <= SMALL;
  let i = 0;
  while (i < n) {
    // A window of index positions whose small files fit one batch; a large file ends it.
    const small: number[] = [];
    let stored = 0;
    let size = 0;
    let end = i;
    while (end < n) {
      if ((ix.mode(end) & S_IFMT) === S_IFREG) {
        if (!isSmall(end)) {
          if (end === i) end++;
          break;
        }
        const d = ix.comp(end) !== 0 ? ix.origSize(end) : 0;
        if (small.length > 0 && (stored + ix.objSize(end) > BATCH || size + d > BATCH)) break;
        stored += ix.objSize(end);
        size += d;
        small.push(end);
      }
      end++;
    }
    const hashes = new Map<number, Buffer>();
    if (small.length > 0) {
      // File order, so back-to-back objects become one read even where index order differs.
      small.sort((a, b) => ix.objOffset(a) - ix.objOffset(b));
      const out = reader.readFilesSync(small, scratch, decoded);
      for (let k = 0; k < small.length; k++) {
        const r = out[k] as Buffer | BfcError;
        if (r instanceof BfcError) throw r;
        hashes.set(small[k] as number, sha256(r));
      }
    }
    for (let j = i; j < end; j++) {
      const fmt = ix.mode(j) & S_IFMT;
      let h: Buffer;
      if (fmt === S_IFREG) {
        const batched = hashes.get(j);
        if (batched) h = batched;
        else {
          // Large: streamed with bounded memory; contentChunks checks size, CRC and tag at the end.
          const inner = createHash("sha256");
          const base = bytes;
          for await (const chunk of reader.contentChunks(j, { reuse: true, thread: true })) {
            inner.update(chunk);
            bytes += chunk.length;
            progress();
          }
          h = inner.digest();
          bytes = base;
        }
        bytes += ix.origSize(j);
      } else if (fmt === S_IFLNK) {
        h = sha256(reader.readlinkBytesAtSync(j));
      } else if (fmt === S_IFDIR) {
        // No payload, but the object header is still checked against the index.
        await reader.verifyEntry(j);
        h = ZERO_HASH;
      } else {
        // The reader cannot check such an entry's object, so it cannot vouch for it either.
        throw corrupt(
          "BAD_OBJECT",
          `'${ix.path(j)}': entry of unsupported type (mode 0o${ix.mode(j).toString(8)})`,
          { path: ix.path(j) },
        );
      }
      outer.update(encodeDigestRecord(ix.pathBytes(j), ix.mode(j), ix.mtimeNs(j), ix.origSize(j)));
      outer.update(h);
      done++;
    }
    progress();
    i = end;
  }
  return { digest: outer.digest("hex"), entries: n, bytes };
}
