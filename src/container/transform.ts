import { sealSync } from "../codec/aead.ts";
import { crc32c } from "../codec/crc32c.ts";
import { zstdCompressSync } from "../codec/zstd.ts";

/** One file's stored payload: compressed when that makes it smaller, then sealed with the key. */
export function transformOne(
  src: Buffer,
  level: number,
  key: Buffer | null,
  aad: Uint8Array,
): { payload: Buffer; comp: number; crc: number } {
  const crc = crc32c(src);
  let payload: Buffer = src;
  let comp = 0;
  if (level > 0) {
    const frame = zstdCompressSync(src, level);
    if (frame.length < src.length) {
      payload = frame;
      comp = 1;
    }
  }
  if (key) payload = sealSync(key, payload, Buffer.from(aad));
  return { payload, comp, crc };
}
