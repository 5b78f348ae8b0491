import { sealSync } from "../codec/aead.ts";
import { crc32c } from "../codec/crc32c.ts";
import { ZstdFrameEncoder, ZstdFramer, zstdCompressSync } from "../codec/zstd.ts";

export interface Transformed {
  payload: Buffer;
  comp: number;
  crc: number;
}

/** The stored payload from the content and its zstd frame (null: not compressed). */
function finish(
  src: Buffer,
  crc: number,
  frame: Buffer | null,
  key: Buffer | null,
  aad: Uint8Array,
): Transformed {
  let payload: Buffer = src;
  let comp = 0;
  if (frame !== null && frame.length < src.length) {
    payload = frame;
    comp = 1;
  }
  if (key) payload = sealSync(key, payload, Buffer.from(aad));
  return { payload, comp, crc };
}

/** The compressor kept for `level`, made on first use. */
function forLevel<T>(kept: Map<number, T>, level: number, make: (level: number) => T): T {
  let c = kept.get(level);
  if (c === undefined) {
    c = make(level);
    kept.set(level, c);
  }
  return c;
}

/** One file's stored payload: compressed when that makes it smaller, then sealed with the key. */
export function transformOne(src: Buffer, level: number, key: Buffer | null, aad: Uint8Array): Transformed {
  const crc = crc32c(src);
  return finish(src, crc, level > 0 ? zstdCompressSync(src, level) : null, key, aad);
}

/**
 * transformOne through long-lived zstd contexts (one per level): for many files, where a context
 * per file would pile up until the garbage collector frees it.
 */
export class Transformer {
  private readonly framers = new Map<number, ZstdFramer>();

  async transform(src: Buffer, level: number, key: Buffer | null, aad: Uint8Array): Promise<Transformed> {
    const crc = crc32c(src);
    const frame =
      level > 0 ? await forLevel(this.framers, level, (l) => new ZstdFramer(l)).compress(src) : null;
    return finish(src, crc, frame, key, aad);
  }

  close(): void {
    for (const f of this.framers.values()) f.close();
    this.framers.clear();
  }
}

/**
 * transformOne on the calling thread through one reused zstd context and output buffer per level
 * (the writer's `workers: 0`): many small files allocate nothing per file. The payload may be a
 * view of that output buffer (or of `src`), valid until the next call.
 */
export class InlineTransformer {
  private readonly encoders = new Map<number, ZstdFrameEncoder>();

  transform(src: Buffer, level: number, key: Buffer | null, aad: Uint8Array): Transformed {
    const crc = crc32c(src);
    const frame =
      level > 0 ? forLevel(this.encoders, level, (l) => new ZstdFrameEncoder(l)).encode(src) : null;
    return finish(src, crc, frame, key, aad);
  }

  close(): void {
    for (const e of this.encoders.values()) e.close();
    this.encoders.clear();
  }
}
