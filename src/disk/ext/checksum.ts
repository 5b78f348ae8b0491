import { crc32c } from "../../codec/crc32c.ts";

/**
 * ext4's metadata checksums use CRC-32C as the kernel's `crc32c(seed, data)` computes it: the raw
 * register, continued from `seed`, with no final inversion. That is exactly the convention of BFC's
 * `crc32c(data, previous)` (src/codec/crc32c.ts), so no conversion is needed; the "~0" starting
 * value of ext4 is passed explicitly where ext4 uses it.
 */
export function extCrc(seed: number, data: Uint8Array): number {
  return crc32c(data, seed);
}

const scratch = Buffer.alloc(8);

/** Continues `seed` over a little-endian u32. */
export function extCrcU32(seed: number, value: number): number {
  scratch.writeUInt32LE(value >>> 0, 0);
  return crc32c(scratch.subarray(0, 4), seed);
}

/** Continues `seed` over a little-endian u64 (values up to 2^53). */
export function extCrcU64(seed: number, value: number): number {
  scratch.writeUInt32LE(value % 2 ** 32, 0);
  scratch.writeUInt32LE(Math.floor(value / 2 ** 32), 4);
  return crc32c(scratch, seed);
}

/** The per-filesystem seed: s_checksum_seed when csum_seed is set, else crc32c(~0, uuid). */
export function checksumSeedOf(uuid: Uint8Array): number {
  return extCrc(0xffffffff, uuid);
}
