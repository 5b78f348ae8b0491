/**
 * 64-bit little-endian fields read as JS numbers. Sizes and offsets beyond 2^53 cannot describe a
 * real file, so they are reported (as -1) for the caller to reject rather than silently rounded.
 */
export function readU64(buf: Buffer, offset: number): number {
  const lo = buf.readUInt32LE(offset);
  const hi = buf.readUInt32LE(offset + 4);
  if (hi > 0x1fffff) return -1;
  return hi * 0x100000000 + lo;
}

export function writeU64(buf: Buffer, value: number, offset: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`not a u64 size: ${value}`);
  buf.writeUInt32LE(value >>> 0, offset);
  buf.writeUInt32LE(Math.floor(value / 0x100000000), offset + 4);
}
