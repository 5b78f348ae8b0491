import { sealSync } from "../codec/aead.ts";
import { crc32c } from "../codec/crc32c.ts";
import { ZstdFramer, zstdCompressSync } from "../codec/zstd.ts";

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
    let frame: Buffer | null = null;
    if (level > 0) {
      let f = this.framers.get(level);
      if (f === undefined) {
        f = new ZstdFramer(level);
        this.framers.set(level, f);
      }
      frame = await f.compress(src);
    }
    return finish(src, crc, frame, key, aad);
  }

  close(): void {
    for (const f of this.framers.values()) f.close();
    this.framers.clear();
  }
}
