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

/**
 * One zstd frame per call through a single long-lived compression context. zstdCompressSync makes
 * a context per call that Node frees only when the garbage collector gets to it, so compressing
 * many small files that way holds tens of MiB of dead contexts; this keeps one. Each call hands the
 * whole input with ZSTD_e_end, so zstd records the content size exactly as a pledged one-shot
 * compression does (the frames are identical to zstdCompressSync's). Calls run one at a time, on
 * libuv's thread pool.
 */
export class ZstdFramer {
  private readonly stream: zlib.ZstdCompress;
  private parts: Buffer[] = [];
  private chain: Promise<unknown> = Promise.resolve();

  constructor(level: number) {
    this.stream = zlib.createZstdCompress({
      params: compressOptions(level, 0).params,
      flush: zlib.constants.ZSTD_e_end,
      chunkSize: 64 * 1024,
    });
    this.stream.on("data", (d: Buffer) => this.parts.push(d));
    // Errors also reach each write's callback; this keeps an unhandled 'error' event from throwing.
    this.stream.on("error", () => {});
  }

  compress(data: Uint8Array): Promise<Buffer> {
    const run = this.chain.then(
      () =>
        new Promise<Buffer>((resolve, reject) => {
          this.parts = [];
          this.stream.write(data, (e) => {
            if (e) return reject(e);
            const p = this.parts;
            resolve(p.length === 1 ? (p[0] as Buffer) : Buffer.concat(p));
          });
        }),
    );
    this.chain = run.catch(() => {});
    return run;
  }

  close(): void {
    this.stream.destroy();
  }
}

/** A streaming encoder producing one frame; `size` is pledged so the frame header carries it. */
export function createZstdEncoder(level: number, size: number): zlib.ZstdCompress {
  return zlib.createZstdCompress({ ...compressOptions(level, size), chunkSize: 256 * 1024 });
}

/**
 * Decodes frames whose output must be exactly `expected` bytes; anything longer is cut off by
 * maxOutputLength (a bomb cannot allocate more than the entry claims).
 */
export function zstdDecompressSync(data: Uint8Array, expected: number): Buffer {
  return zlib.zstdDecompressSync(data, { maxOutputLength: Math.max(1, expected) });
}

export function createZstdDecoder(): zlib.ZstdDecompress {
  return zlib.createZstdDecompress({ chunkSize: 256 * 1024 });
}

/** Magic number at the start of every zstd frame (little-endian 0xFD2FB528). */
export function looksLikeZstd(data: Uint8Array): boolean {
  return data.length >= 4 && data[0] === 0x28 && data[1] === 0xb5 && data[2] === 0x2f && data[3] === 0xfd;
}
