import type zlib from "node:zlib";
import { lazyZlib } from "./builtins.ts";
import { drivenStream, type ZlibInternals } from "./zlib-handle.ts";

export const ZSTD_MIN_LEVEL = 1;
export const ZSTD_MAX_LEVEL = 22;
export const ZSTD_DEFAULT_LEVEL = 3;

function compressOptions(level: number, size: number): zlib.ZstdOptions {
  const c = lazyZlib().constants;
  return {
    params: {
      [c.ZSTD_c_compressionLevel]: level,
      // The reference's one-shot encoder records the content size and no checksum; so do we.
      [c.ZSTD_c_checksumFlag]: 0,
      [c.ZSTD_c_contentSizeFlag]: 1,
    },
    pledgedSrcSize: size,
  };
}

/** One zstd frame for a whole buffer. */
export function zstdCompressSync(data: Uint8Array, level: number): Buffer {
  return lazyZlib().zstdCompressSync(data, compressOptions(level, data.length));
}

/**
 * A zstd compression context driven synchronously (zlib-handle.ts), or undefined where node:zlib lacks it. `size` >= 0 is pledged for every frame's header.
 */
function syncEncoder(level: number, size: number, onError: (e: Error) => void): ZlibInternals | undefined {
  const options = compressOptions(level, size);
  if (size < 0) delete options.pledgedSrcSize;
  return drivenStream(lazyZlib().createZstdCompress(options), onError);
}

/**
 * One zstd frame per whole buffer, synchronously, through one context and one output buffer kept
 * across calls: compressing many small files allocates nothing per file (a context or an output
 * buffer per file is garbage that piles up until the collector runs). The frames are
 * zstdCompressSync's byte for byte (the whole input goes in with ZSTD_e_end, so zstd records its
 * size as a pledged one-shot compression does). Where node:zlib lacks the internals, or a call
 * fails inside the context, zstdCompressSync answers instead.
 */
export class ZstdFrameEncoder {
  private readonly level: number;
  private z: ZlibInternals | undefined;
  private unsupported = false;
  private failed = false;
  private out = Buffer.allocUnsafeSlow(0);

  constructor(level: number) {
    this.level = level;
  }

  /** The frame of `data`: a view of a buffer that the next call reuses. */
  encode(data: Uint8Array): Buffer {
    if (!this.z && !this.unsupported) {
      this.z = syncEncoder(this.level, -1, () => {
        this.failed = true;
      });
      this.unsupported = this.z === undefined;
    }
    const z = this.z;
    if (!z) return zstdCompressSync(data, this.level);
    const room = zstdCompressBound(data.length);
    if (this.out.length < room) this.out = Buffer.allocUnsafeSlow(Math.max(room, 64 * 1024));
    this.failed = false;
    try {
      z._handle.writeSync(z._finishFlushFlag, data, 0, data.length, this.out, 0, room);
    } catch {
      this.failed = true;
    }
    // Room left over and no input left: the frame is complete (zstd fills the output otherwise).
    if (this.failed || z._writeState[0] === 0 || z._writeState[1] !== 0) {
      this.close();
      return zstdCompressSync(data, this.level);
    }
    return this.out.subarray(0, room - (z._writeState[0] as number));
  }

  close(): void {
    (this.z as unknown as zlib.ZstdCompress | undefined)?.destroy();
    this.z = undefined;
  }
}

/**
 * One frame across a large content's chunks, compressed synchronously into one reused output
 * buffer (no buffer per chunk). `size` is pledged, so the header records it as createZstdEncoder's
 * does, and the bytes are that stream's. Undefined from `create` where node:zlib lacks the internals.
 */
export class ZstdChunkEncoder {
  private readonly z: ZlibInternals;
  private readonly out: Buffer;
  private failure: Error | undefined;

  private constructor(z: ZlibInternals, chunk: number) {
    this.z = z;
    this.out = Buffer.allocUnsafeSlow(chunk);
  }

  static create(level: number, size: number, chunk = 256 * 1024): ZstdChunkEncoder | undefined {
    let self: ZstdChunkEncoder | undefined;
    const z = syncEncoder(level, size, (e) => {
      if (self) self.failure ??= e;
    });
    if (!z) return undefined;
    self = new ZstdChunkEncoder(z, chunk);
    return self;
  }

  /**
   * Compresses `input` (`last`: and ends the frame), handing out the frame's bytes as they come:
   * each piece is a view of the reused output buffer, valid until `emit` returns.
   */
  write(input: Uint8Array, last: boolean, emit: (piece: Buffer) => void): void {
    const { z, out } = this;
    const flush = last ? z._finishFlushFlag : 0;
    let inOff = 0;
    let inLen = input.length;
    for (;;) {
      z._handle.writeSync(flush, input, inOff, inLen, out, 0, out.length);
      if (this.failure) throw this.failure;
      const availOut = z._writeState[0] as number;
      const availIn = z._writeState[1] as number;
      const consumed = inLen - availIn;
      inOff += consumed;
      inLen = availIn;
      if (availOut < out.length) emit(out.subarray(0, out.length - availOut));
      // Output room left over: zstd took all it could and has nothing more to give for this call.
      if (availOut > 0 && inLen === 0) return;
      if (availOut === out.length && consumed === 0) throw new Error("zstd made no progress");
    }
  }

  close(): void {
    (this.z as unknown as zlib.ZstdCompress).destroy();
  }
}

/** zstd's bound on the frame size of `n` input bytes (ZSTD_COMPRESSBOUND). */
export function zstdCompressBound(n: number): number {
  const small = 128 * 1024;
  return n + Math.floor(n / 256) + (n < small ? Math.floor((small - n) / 2048) : 0);
}

/** A streaming encoder producing one frame; `size` is pledged so the frame header carries it. */
export function createZstdEncoder(level: number, size: number): zlib.ZstdCompress {
  return lazyZlib().createZstdCompress({ ...compressOptions(level, size), chunkSize: 256 * 1024 });
}

/**
 * One zstd decoder set up once and reused frame after frame. zlib.zstdDecompressSync builds and
 * tears down a whole stream per call, which costs several times more than decoding a file of a few
 * KiB (reading many small files is dominated by it). This keeps one stream and drives its native
 * handle (see zlib-handle.ts): any surprise (an error, more output than expected) replaces the
 * decoder; without the internals, zlib.zstdDecompressSync is used.
 *
 * One zstd decoding context kept per thread, for complete frames whose
 * header declares the expected size: zstd then decodes in one pass straight into our buffer and
 * leaves the context at a frame boundary. Any error, output of another size or input left over
 * discards the context and answers undefined, so the caller can ask the one-shot call instead.
 */
export class ReusableZstdDecoder {
  private z: ZlibInternals | undefined;
  private failed = false;
  private unsupported = false;
  /** Output buffer kept between calls that say so. */
  private kept: Buffer | undefined;

  private stream(): ZlibInternals | undefined {
    if (this.z || this.unsupported) return this.z;
    this.z = drivenStream(lazyZlib().createZstdDecompress(), () => {
      this.failed = true;
    });
    if (!this.z) this.unsupported = true;
    return this.z;
  }

  private discard(): void {
    (this.z as unknown as zlib.ZstdDecompress | undefined)?.destroy();
    this.z = undefined;
  }

  /**
   * `frame` decoded to exactly `expected` bytes, or undefined. With `reuse` the bytes are a view of
   * a buffer kept for the next such call.
   */
  decode(frame: Uint8Array, expected: number, reuse = false): Buffer | undefined {
    if (!this.stream()) return undefined;
    let out: Buffer;
    if (reuse) {
      if (!this.kept || this.kept.length < expected) this.kept = Buffer.allocUnsafe(expected);
      out = this.kept.subarray(0, expected);
    } else out = Buffer.allocUnsafe(expected);
    return this.decodeInto(frame, out) ? out : undefined;
  }

  /**
   * Decodes `frame` into `out`, which it must fill exactly; false (with `out` undefined) when it
   * does not, or fails, or the context is unavailable.
   */
  decodeInto(frame: Uint8Array, out: Uint8Array): boolean {
    const z = this.stream();
    if (!z) return false;
    this.failed = false;
    try {
      // The finish flag makes a frame that ends early an error instead of a decoder left mid-frame.
      z._handle.writeSync(z._finishFlushFlag, frame, 0, frame.length, out, 0, out.length);
    } catch {
      this.failed = true;
    }
    // Write state: output room left, input left. Both zero: the whole frame became `out`'s bytes.
    if (this.failed || z._writeState[0] !== 0 || z._writeState[1] !== 0) {
      this.discard();
      return false;
    }
    return true;
  }
}

const frames = new ReusableZstdDecoder();

/**
 * Decodes one complete frame into `out` through this thread's reused context when it yields exactly
 * `out.length` bytes; false otherwise (then `out` holds garbage and the caller decodes another way,
 * which also gives the error).
 */
export function zstdDecompressInto(frame: Uint8Array, out: Uint8Array): boolean {
  return out.length > 0 && frames.decodeInto(frame, out);
}

/**
 * Decodes frames whose output must be exactly `expected` bytes; anything longer fails before more is
 * allocated (a bomb cannot allocate more than the entry claims). `reuse`: the result may be a view
 * of a buffer this thread reuses for the next such call (no allocation per file for a caller that
 * copies the bytes out at once).
 */
export function zstdDecompressSync(data: Uint8Array, expected: number, reuse = false): Buffer {
  // The reused context takes only what both writers produce: one complete frame declaring the
  // entry's size. Anything else, and any frame that fails there, gets node:zlib's one-shot call,
  // so results and errors are the one-shot call's.
  if (expected > 0 && isSingleFrameOf(data, expected)) {
    const out = frames.decode(data, expected, reuse);
    if (out) return out;
  }
  const out = lazyZlib().zstdDecompressSync(data, { maxOutputLength: Math.max(1, expected) });
  // maxOutputLength cannot be 0: an entry of 0 bytes whose frame holds one is caught here.
  if (out.length > expected) throw new RangeError(`zstd frame decodes to more than ${expected} bytes`);
  return out;
}

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
  return lazyZlib().createZstdDecompress({ chunkSize: 256 * 1024 });
}

/** Magic number at the start of every zstd frame (little-endian 0xFD2FB528). */
export function looksLikeZstd(data: Uint8Array): boolean {
  return data.length >= 4 && data[0] === 0x28 && data[1] === 0xb5 && data[2] === 0x2f && data[3] === 0xfd;
}

/**
 * A synchronous streaming zstd decoder (the same driven handle as ReusableZstdDecoder): input
 * goes in pieces, output comes out in pieces of at most `chunk` bytes, all from one reused buffer,
 * so memory stays bounded however far a frame expands. For threads that may block (a verification
 * pass of a large entry in a FUSE serving thread); node:zlib's own streams are asynchronous only.
 */
export class ZstdStreamDecoder {
  private readonly z: ZlibInternals;
  private readonly out: Buffer;
  private failure: Error | undefined;

  private constructor(chunk: number) {
    const z = drivenStream(lazyZlib().createZstdDecompress(), (e) => {
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
    const { out } = this;
    let inOff = 0;
    for (;;) {
      const r = this.step(input, inOff, input.length - inOff, out, 0, out.length, last);
      inOff += r.consumed;
      if (r.got > 0) yield out.subarray(0, r.got);
      if (r.done) return;
    }
  }

  /**
   * One call into the decoder: input[inOff, inOff + inLen) into out[outOff, outOff + outLen).
   * `done` says this input needs no further call: it is used up with output room to spare, or
   * nothing moved (what is left lies after the frame's end, which ends decoding as one-shot
   * decoding does). Throws on corrupt data; the decoder is then unusable.
   */
  step(
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
    last: boolean,
  ): { got: number; consumed: number; done: boolean } {
    const { z } = this;
    this.failure = undefined;
    z._handle.writeSync(last ? z._finishFlushFlag : 0, input, inOff, inLen, out, outOff, outLen);
    if (this.failure) throw this.failure;
    const availOut = z._writeState[0] as number;
    const availIn = z._writeState[1] as number;
    const got = outLen - availOut;
    const consumed = inLen - availIn;
    return { got, consumed, done: availOut > 0 && (availIn === 0 || (consumed === 0 && got === 0)) };
  }

  /** Frees the zstd context now rather than when the collector finds it (its window is MiBs). */
  close(): void {
    (this.z as unknown as zlib.ZstdDecompress).destroy();
  }
}
