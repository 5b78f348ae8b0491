import zlib from "node:zlib";

export const ZSTD_MIN_LEVEL = 1;
export const ZSTD_MAX_LEVEL = 22;
export const ZSTD_DEFAULT_LEVEL = 3;

function compressOptions(level: number, size: number): zlib.ZstdOptions {
  return {
    params: {
      [zlib.constants.ZSTD_c_compressionLevel]: level,
      // The reference's one-shot encoder records the content size and no checksum; so do we.
      [zlib.constants.ZSTD_c_checksumFlag]: 0,
      [zlib.constants.ZSTD_c_contentSizeFlag]: 1,
    },
    pledgedSrcSize: size,
  };
}

/** One zstd frame for a whole buffer. */
export function zstdCompressSync(data: Uint8Array, level: number): Buffer {
  return zlib.zstdCompressSync(data, compressOptions(level, data.length));
}

/** A streaming encoder producing one frame; `size` is pledged so the frame header carries it. */
export function createZstdEncoder(level: number, size: number): zlib.ZstdCompress {
  return zlib.createZstdCompress({ ...compressOptions(level, size), chunkSize: 256 * 1024 });
}

/**
 * Decodes frames whose output must be exactly `expected` bytes; anything longer is cut off by
 * maxOutputLength (a bomb cannot allocate more than the entry claims).
 *
 * A payload that is exactly one complete frame declaring `expected` bytes (what both writers
 * produce) is decoded by one reused decoder context straight into a buffer of that size; anything
 * else, and any frame that fails there, goes through node:zlib's one-shot call, so results and
 * errors are the one-shot call's.
 */
export function zstdDecompressSync(data: Uint8Array, expected: number): Buffer {
  if (expected > 0 && isSingleFrameOf(data, expected)) {
    const out = sharedDecoder.decode(data, expected);
    if (out) return out;
  }
  return zlib.zstdDecompressSync(data, { maxOutputLength: Math.max(1, expected) });
}

/** What node:zlib's native zstd handle offers to its own synchronous path (lib/zlib.js). */
interface NativeZstdHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOffset: number,
    inLength: number,
    output: Uint8Array,
    outOffset: number,
    outLength: number,
  ): void;
  onerror: (message: string, errno: number, code: string) => void;
}

/**
 * One zstd decoding context kept for the process. `zlib.zstdDecompressSync` builds (and frees) a
 * context per call, which costs several times the decoding of a 4 KiB frame; a context that ends
 * each frame cleanly needs no reset (zstd starts the next frame by itself), and `reset()` would
 * rebuild it anyway. It is driven like node:zlib drives it internally (the handle's `writeSync`
 * and the two-slot write state: output then input left), only for complete frames whose header
 * declares the expected size: zstd then decodes in one pass straight into our buffer and leaves
 * the context at a frame boundary, holding no window buffers. Any error, short output or input
 * left over discards the context. Where node:zlib lacks these internals the decoder is off.
 */
export class ReusableZstdDecoder {
  private engine: zlib.ZstdDecompress | null = null;
  private handle: NativeZstdHandle | null = null;
  private state: Uint32Array | null = null;
  private failed = false;
  private unsupported = false;

  private open(): boolean {
    if (this.handle) return true;
    if (this.unsupported) return false;
    // chunkSize: the stream's own output buffer is never used here; keep it at the minimum.
    const engine = zlib.createZstdDecompress({ chunkSize: 64 });
    const internals = engine as unknown as { _handle?: NativeZstdHandle; _writeState?: unknown };
    const handle = internals._handle;
    const state = internals._writeState;
    if (
      !handle ||
      typeof handle.writeSync !== "function" ||
      !(state instanceof Uint32Array) ||
      state.length !== 2
    ) {
      this.unsupported = true;
      engine.destroy();
      return false;
    }
    // Record errors instead of letting the stream destroy itself and emit them later.
    handle.onerror = () => {
      this.failed = true;
    };
    engine.on("error", () => {});
    this.engine = engine;
    this.handle = handle;
    this.state = state;
    return true;
  }

  private discard(): void {
    this.engine?.destroy();
    this.engine = null;
    this.handle = null;
    this.state = null;
  }

  /** The frame's `expected` bytes, or undefined when the one-shot path must answer instead. */
  decode(frame: Uint8Array, expected: number): Buffer | undefined {
    if (!this.open()) return undefined;
    const handle = this.handle as NativeZstdHandle;
    const state = this.state as Uint32Array;
    const out = Buffer.allocUnsafe(expected);
    this.failed = false;
    try {
      handle.writeSync(zlib.constants.ZSTD_e_end, frame, 0, frame.length, out, 0, expected);
    } catch {
      this.failed = true;
    }
    // state[0]: output space left; state[1]: input left. Both zero: the whole frame became
    // exactly `expected` bytes.
    if (this.failed || state[0] !== 0 || state[1] !== 0) {
      this.discard();
      return undefined;
    }
    return out;
  }
}

const sharedDecoder = new ReusableZstdDecoder();

const ZSTD_MAGIC = 0xfd2fb528;

/**
 * Whether `data` is exactly one complete zstd frame whose header declares `expected` content
 * bytes: the header, then blocks up to the last-block flag, then the checksum if flagged, ending
 * at the last byte. Only the structure is read (block headers), never the compressed bytes.
 */
export function isSingleFrameOf(data: Uint8Array, expected: number): boolean {
  const n = data.length;
  if (n < 6 || (data[0] | (data[1] << 8) | (data[2] << 16) | (data[3] << 24)) >>> 0 !== ZSTD_MAGIC) {
    return false;
  }
  const fhd = data[4] as number;
  if (fhd & 0x08) return false; // reserved bit
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  const dictIdSize = [0, 1, 2, 4][fhd & 3] as number;
  const fcsSize = fcsFlag === 0 ? singleSegment : ([0, 2, 4, 8][fcsFlag] as number);
  if (fcsSize === 0) return false; // content size not recorded
  let p = 5 + (singleSegment ? 0 : 1) + dictIdSize;
  if (p + fcsSize > n) return false;
  let size: number;
  if (fcsSize === 1) size = data[p] as number;
  else if (fcsSize === 2) size = ((data[p] as number) | ((data[p + 1] as number) << 8)) + 256;
  else {
    const lo =
      ((data[p] as number) |
        ((data[p + 1] as number) << 8) |
        ((data[p + 2] as number) << 16) |
        ((data[p + 3] as number) << 24)) >>>
      0;
    const hi =
      fcsSize === 8
        ? ((data[p + 4] as number) |
            ((data[p + 5] as number) << 8) |
            ((data[p + 6] as number) << 16) |
            ((data[p + 7] as number) << 24)) >>>
          0
        : 0;
    size = hi * 0x100000000 + lo;
  }
  if (size !== expected) return false;
  p += fcsSize;
  for (;;) {
    if (p + 3 > n) return false;
    const h = (data[p] as number) | ((data[p + 1] as number) << 8) | ((data[p + 2] as number) << 16);
    const type = (h >> 1) & 3;
    if (type === 3) return false; // reserved block type
    p += 3 + (type === 1 ? 1 : h >>> 3); // an RLE block stores one byte
    if (p > n) return false;
    if (h & 1) break;
  }
  if (fhd & 0x04) p += 4; // content checksum
  return p === n;
}

export function createZstdDecoder(): zlib.ZstdDecompress {
  return zlib.createZstdDecompress({ chunkSize: 256 * 1024 });
}

/** Magic number at the start of every zstd frame (little-endian 0xFD2FB528). */
export function looksLikeZstd(data: Uint8Array): boolean {
  return data.length >= 4 && data[0] === 0x28 && data[1] === 0xb5 && data[2] === 0x2f && data[3] === 0xfd;
}
