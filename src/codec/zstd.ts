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

/** The parts of a node:zlib stream that its own synchronous path drives (see FrameDecoder). */
interface ZlibInternals {
  _handle: {
    writeSync(
      flush: number,
      input: Uint8Array,
      inOff: number,
      inLen: number,
      out: Uint8Array,
      outOff: number,
      outLen: number,
    ): void;
    onerror: (message: string, errno: number) => void;
  };
  _writeState: Uint32Array;
  _finishFlushFlag: number;
}

/**
 * One zstd decoder set up once and reused frame after frame. zlib.zstdDecompressSync builds and
 * tears down a whole stream per call, which costs several times more than decoding a file of a few
 * KiB (reading many small files is dominated by it). This keeps one stream and drives its native
 * handle the way node:zlib's own sync path does (`handle.writeSync` and the stream's write state):
 * node:zlib's internal interface, so it is checked for before use and any surprise (an error, more
 * output than expected) replaces the decoder; without it, zlib.zstdDecompressSync is used.
 */
class FrameDecoder {
  private z: ZlibInternals | undefined;
  private failure: Error | undefined;

  private stream(): ZlibInternals | undefined {
    if (this.z) return this.z;
    const z = zlib.createZstdDecompress() as unknown as Partial<ZlibInternals>;
    const ok =
      typeof z._handle?.writeSync === "function" &&
      z._writeState instanceof Uint32Array &&
      typeof z._finishFlushFlag === "number";
    if (!ok) return undefined;
    const full = z as ZlibInternals;
    full._handle.onerror = (message, errno) => {
      this.failure = Object.assign(new Error(message), { errno });
    };
    this.z = full;
    return full;
  }

  /** `frame` decoded to at most `max` bytes: RangeError when it holds more, Error when corrupt. */
  decode(frame: Uint8Array, max: number): Buffer {
    const z = this.stream();
    if (!z) return zlib.zstdDecompressSync(frame, { maxOutputLength: Math.max(1, max) });
    // One byte of room beyond `max` tells "exactly max" from "more".
    const out = Buffer.allocUnsafe(max + 1);
    this.failure = undefined;
    // The finish flag makes a frame that ends early an error instead of a decoder left mid-frame.
    z._handle.writeSync(z._finishFlushFlag, frame, 0, frame.length, out, 0, out.length);
    const produced = out.length - (z._writeState[0] as number);
    if (this.failure || produced > max) {
      this.z = undefined;
      if (this.failure) throw this.failure;
      throw new RangeError(`zstd frame decodes to more than ${max} bytes`);
    }
    return out.subarray(0, produced);
  }
}

const frames = new FrameDecoder();

/**
 * Decodes frames whose output must be exactly `expected` bytes; anything longer fails before more is
 * allocated (a bomb cannot allocate more than the entry claims).
 */
export function zstdDecompressSync(data: Uint8Array, expected: number): Buffer {
  return frames.decode(data, expected);
}

export function createZstdDecoder(): zlib.ZstdDecompress {
  return zlib.createZstdDecompress({ chunkSize: 256 * 1024 });
}

/** Magic number at the start of every zstd frame (little-endian 0xFD2FB528). */
export function looksLikeZstd(data: Uint8Array): boolean {
  return data.length >= 4 && data[0] === 0x28 && data[1] === 0xb5 && data[2] === 0x2f && data[3] === 0xfd;
}
