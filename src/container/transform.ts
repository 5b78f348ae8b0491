import { sealInto, sealSync } from "../codec/aead.ts";
import { crc32c } from "../codec/crc32c.ts";
import { ZstdFrameEncoder, zstdCompressSync } from "../codec/zstd.ts";
import { NONCE_SIZE, TAG_SIZE } from "../format/constants.ts";

export interface Transformed {
  payload: Buffer;
  comp: number;
  crc: number;
}

/** What is sealed or stored: the content's zstd frame (null: not compressed) when smaller, else the content. */
function smaller(src: Buffer, frame: Buffer | null): { payload: Buffer; comp: number } {
  return frame !== null && frame.length < src.length
    ? { payload: frame, comp: 1 }
    : { payload: src, comp: 0 };
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
  const { payload, comp } = smaller(src, level > 0 ? zstdCompressSync(src, level) : null);
  return { payload: key ? sealSync(key, payload, aad) : payload, comp, crc };
}

/**
 * transformOne on the calling thread through one reused zstd context and output buffer per level,
 * and one reused buffer for sealed payloads: many small files allocate nothing per file. The
 * payload may be a view of those buffers (or of `src`), valid until the next call.
 */
export class InlineTransformer {
  private readonly encoders = new Map<number, ZstdFrameEncoder>();
  private sealed = Buffer.alloc(0);

  transform(src: Buffer, level: number, key: Buffer | null, aad: Uint8Array): Transformed {
    const crc = crc32c(src);
    const frame =
      level > 0 ? forLevel(this.encoders, level, (l) => new ZstdFrameEncoder(l)).encode(src) : null;
    const { payload, comp } = smaller(src, frame);
    if (!key) return { payload, comp, crc };
    const need = NONCE_SIZE + payload.length + TAG_SIZE;
    // Grown in steps of 1 MiB, so files of similar sizes keep using the same pages.
    if (this.sealed.length < need) this.sealed = Buffer.allocUnsafe(Math.ceil(need / 1048576) * 1048576);
    const n = sealInto(key, payload, aad, this.sealed, 0);
    return { payload: this.sealed.subarray(0, n), comp, crc };
  }

  close(): void {
    for (const e of this.encoders.values()) e.close();
    this.encoders.clear();
  }
}
