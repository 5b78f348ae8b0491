import { BfcError } from "../errors.ts";
import { lazyZlib } from "./builtins.ts";
import { zstdDecompressInto } from "./zstd.ts";

// Walking zstd frames without decoding them, so that a byte range holding some complete frames
// followed by unrelated bytes can be decoded. node:zlib (like libzstd's one-shot API) insists that
// its input ends on a frame boundary and fails with "unexpected end of file" otherwise; QCOW2
// compressed clusters are such ranges (their length is only known to the next 512-byte sector, so the
// range usually ends with the head of the next cluster's frame).

const FRAME_MAGIC = 0xfd2fb528;
/** Skippable frames: magic 0x184D2A50..0x184D2A5F, a u32 length, then that many bytes. */
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const DICT_ID_SIZE = [0, 1, 2, 4];
const FCS_SIZE = [0, 2, 4, 8];

function bad(detail: string): BfcError {
  return new BfcError("EIO", "DECOMPRESS_FAILED", `invalid zstd data: ${detail}`);
}

/**
 * Length in bytes of the frame (or skippable frame) starting at `pos`, or -1 if `data` ends before
 * the frame does. Throws on bytes that cannot be a frame.
 */
export function zstdFrameLength(data: Uint8Array, pos: number): number {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const end = data.length;
  if (pos + 4 > end) return -1;
  const magic = dv.getUint32(pos, true);
  if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
    if (pos + 8 > end) return -1;
    const n = 8 + dv.getUint32(pos + 4, true);
    return pos + n > end ? -1 : n;
  }
  if (magic !== FRAME_MAGIC) throw bad(`no frame magic at byte ${pos}`);
  if (pos + 5 > end) return -1;
  const fhd = data[pos + 4];
  if (fhd & 0x08) throw bad(`reserved bit set in the frame header at byte ${pos}`);
  const singleSegment = (fhd & 0x20) !== 0;
  const fcsFlag = fhd >> 6;
  let p =
    pos +
    5 +
    (singleSegment ? 0 : 1) +
    DICT_ID_SIZE[fhd & 3] +
    (fcsFlag === 0 ? (singleSegment ? 1 : 0) : FCS_SIZE[fcsFlag]);
  // Every block header is 3 bytes and advances p, so this loop ends within data.length / 3 steps.
  for (;;) {
    if (p + 3 > end) return -1;
    const h = data[p] | (data[p + 1] << 8) | (data[p + 2] << 16);
    const last = (h & 1) !== 0;
    const type = (h >> 1) & 3;
    const size = h >>> 3;
    if (type === 3) throw bad(`reserved block type at byte ${p}`);
    p += 3 + (type === 1 ? 1 : size);
    if (last) break;
  }
  if (fhd & 0x04) p += 4;
  return p > end ? -1 : p - pos;
}

/**
 * Decodes frames from the start of `data` until exactly `size` bytes have come out; whatever follows
 * the last frame needed is ignored. Fails if the frames run out first or give more than `size`.
 */
export function zstdDecompressFrames(data: Uint8Array, size: number): Buffer {
  const parts: Buffer[] = [];
  let have = 0;
  let pos = 0;
  while (have < size) {
    const n = zstdFrameLength(data, pos);
    if (n < 0) throw bad(`data ends inside a frame after ${have} of ${size} bytes`);
    const frame = data.subarray(pos, pos + n);
    pos += n;
    if (
      (new DataView(frame.buffer, frame.byteOffset, 4).getUint32(0, true) & SKIPPABLE_MASK) >>> 0 ===
      SKIPPABLE_MAGIC
    ) {
      continue;
    }
    let out: Buffer;
    try {
      // One output chunk of the size wanted: no concatenation of 16 KiB pieces afterwards.
      out = lazyZlib().zstdDecompressSync(frame, {
        maxOutputLength: size - have,
        chunkSize: Math.max(64, size - have),
      });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") {
        throw bad(`frames decode to more than ${size} bytes`);
      }
      throw new BfcError("EIO", "DECOMPRESS_FAILED", `invalid zstd data: ${(e as Error).message}`, {
        cause: e,
      });
    }
    parts.push(out);
    have += out.length;
  }
  return parts.length === 1 ? parts[0] : Buffer.concat(parts, have);
}

/**
 * zstdDecompressFrames(data, out.length), decoded into `out` when `data` starts with one frame that
 * yields exactly that many bytes (through the thread's reused context: no allocation); anything
 * else is decoded by zstdDecompressFrames, whose result (or error) is returned instead.
 */
export function zstdDecompressFramesInto(data: Uint8Array, out: Buffer): Buffer {
  const n = out.length > 0 ? zstdFrameLength(data, 0) : -1;
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (n > 0 && dv.getUint32(0, true) === FRAME_MAGIC && zstdDecompressInto(data.subarray(0, n), out)) {
    return out;
  }
  return zstdDecompressFrames(data, out.length);
}
