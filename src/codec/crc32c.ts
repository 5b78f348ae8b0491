import { crc32c as crc32cStandard } from "@node-rs/crc32";

/**
 * CRC-32C as BFC computes it: Castagnoli polynomial, reflected, but initial value 0 and no final
 * inversion (the reference feeds the hardware instruction an accumulator of 0 and never inverts).
 * The library computes the textbook variant, whose state is the complement of ours, so we convert
 * at the boundary. `previous` continues a running checksum.
 */
export function crc32c(data: Uint8Array, previous = 0): number {
  return ~crc32cStandard(data as Buffer, ~previous >>> 0) >>> 0;
}

/** The textbook CRC-32C (init and xorout 0xFFFFFFFF), written by the reference on CPUs without SSE4.2. */
export function crc32cTextbook(data: Uint8Array): number {
  return crc32cStandard(data as Buffer) >>> 0;
}
