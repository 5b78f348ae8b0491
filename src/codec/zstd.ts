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
/**
 * A zstd stream whose native handle can be driven synchronously, with its errors reported to
 * `onError`; undefined when node:zlib does not have the expected internals.
 */
function syncStream(onError: (e: Error) => void): ZlibInternals | undefined {
  const z = zlib.createZstdDecompress() as unknown as Partial<ZlibInternals>;
  const ok =
    typeof z._handle?.writeSync === "function" &&
    z._writeState instanceof Uint32Array &&
    typeof z._finishFlushFlag === "number";
  if (!ok) return undefined;
  const full = z as ZlibInternals;
  full._handle.onerror = (message, errno) => onError(Object.assign(new Error(message), { errno }));
  return full;
}

class FrameDecoder {
  private z: ZlibInternals | undefined;
  private failure: Error | undefined;
  /** Output buffer kept between calls that say so. */
  private kept: Buffer | undefined;

  private stream(): ZlibInternals | undefined {
    this.z ??= syncStream((e) => {
      this.failure = e;
    });
    return this.z;
  }

  /**
   * `frame` decoded to at most `max` bytes: RangeError when it holds more, Error when corrupt. With
   * `reuse` the bytes are a view of a buffer kept for the next such call.
   */
  decode(frame: Uint8Array, max: number, reuse = false): Buffer {
    const z = this.stream();
    if (!z) return zlib.zstdDecompressSync(frame, { maxOutputLength: Math.max(1, max) });
    // One byte of room beyond `max` tells "exactly max" from "more".
    let out: Buffer;
    if (reuse) {
      if (!this.kept || this.kept.length < max + 1) this.kept = Buffer.allocUnsafe(max + 1);
      out = this.kept.subarray(0, max + 1);
    } else out = Buffer.allocUnsafe(max + 1);
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
 * allocated (a bomb cannot allocate more than the entry claims). `reuse`: the result is a view of a
 * buffer this thread reuses for the next such call (no allocation per file for a caller that
 * copies the bytes out at once).
 */
export function zstdDecompressSync(data: Uint8Array, expected: number, reuse = false): Buffer {
  return frames.decode(data, expected, reuse);
}

export function createZstdDecoder(): zlib.ZstdDecompress {
  return zlib.createZstdDecompress({ chunkSize: 256 * 1024 });
}

/** Magic number at the start of every zstd frame (little-endian 0xFD2FB528). */
export function looksLikeZstd(data: Uint8Array): boolean {
  return data.length >= 4 && data[0] === 0x28 && data[1] === 0xb5 && data[2] === 0x2f && data[3] === 0xfd;
}

/**
 * A synchronous streaming zstd decoder (the same driven handle as the frame decoder above): input
 * goes in pieces, output comes out in pieces of at most `chunk` bytes, all from one reused buffer,
 * so memory stays bounded however far a frame expands. For threads that may block (a verification
 * pass of a large entry in a FUSE serving thread); node:zlib's own streams are asynchronous only.
 */
export class ZstdStreamDecoder {
  private readonly z: ZlibInternals;
  private readonly out: Buffer;
  private failure: Error | undefined;

  private constructor(chunk: number) {
    const z = syncStream((e) => {
      this.failure = e;
    });
    if (!z) throw new Error("node:zlib has no synchronous zstd stream here");
    this.z = z;
    this.out = Buffer.allocUnsafe(chunk);
  }

  private static usable: boolean | undefined;

  /** Whether decoders can be made here (checked once). */
  static available(): boolean {
    ZstdStreamDecoder.usable ??= ZstdStreamDecoder.create(16) !== undefined;
    return ZstdStreamDecoder.usable;
  }

  /** A decoder, or undefined where node:zlib lacks the internals it drives. */
  static create(chunk = 1024 * 1024): ZstdStreamDecoder | undefined {
    try {
      return new ZstdStreamDecoder(chunk);
    } catch {
      return undefined;
    }
  }

  /**
   * Decodes `input`; `last` says the frame's input ends here (a frame cut short is then an error).
   * Each yielded piece is a view of the reused output buffer, valid until the next step. Throws on
   * corrupt data; the decoder is then unusable.
   */
  *decode(input: Uint8Array, last: boolean): Generator<Buffer> {
    const { z, out } = this;
    const flush = last ? z._finishFlushFlag : 0;
    let inOff = 0;
    let inLen = input.length;
    for (;;) {
      this.failure = undefined;
      z._handle.writeSync(flush, input, inOff, inLen, out, 0, out.length);
      if (this.failure) throw this.failure;
      const availOut = z._writeState[0] as number;
      const availIn = z._writeState[1] as number;
      const got = out.length - availOut;
      const consumed = inLen - availIn;
      inOff += consumed;
      inLen = availIn;
      if (got > 0) yield out.subarray(0, got);
      // Output room left over means the decoder wanted more input: this piece is done (input left
      // over then lies after the frame's end, which ends decoding as one-shot decoding does).
      if (availOut > 0 && (inLen === 0 || (consumed === 0 && got === 0))) return;
    }
  }
}
