import { crc32c } from "../codec/crc32c.ts";
import { corrupt } from "../errors.ts";
import {
  DEFAULT_BLOCK_SIZE,
  FEATURE_AEAD,
  FEATURE_ZSTD,
  HEADER_MAGIC,
  HEADER_SIZE,
  SALT_OFFSET,
  SALT_SIZE,
} from "./constants.ts";
import { saltIsSet } from "./salt.ts";

/** The 4096-byte container header. */
export interface Header {
  blockSize: number;
  /** Feature bits (bit 0 zstd, bit 1 AEAD). The reference never reads them; we report them. */
  features: number;
  uuid: Buffer;
  /** 32 bytes; all zero unless the container is password-encrypted. */
  salt: Buffer;
}

export interface DecodedHeader extends Header {
  storedCrc: number;
  computedCrc: number;
}

export function encodeHeader(h: Header): Buffer {
  const buf = Buffer.alloc(HEADER_SIZE);
  HEADER_MAGIC.copy(buf, 0);
  buf.writeUInt32LE(h.blockSize || DEFAULT_BLOCK_SIZE, 12);
  buf.writeUInt32LE(h.features >>> 0, 16);
  buf.writeUInt32LE(Math.floor(h.features / 0x100000000) >>> 0, 20);
  if (h.uuid.length !== 16) throw new RangeError("uuid must be 16 bytes");
  h.uuid.copy(buf, 24);
  if (h.salt.length !== SALT_SIZE) throw new RangeError(`salt must be ${SALT_SIZE} bytes`);
  h.salt.copy(buf, SALT_OFFSET);
  buf.writeUInt32LE(crc32c(buf.subarray(12)), 8);
  return buf;
}

/** Decodes and checks magic; the CRC result is returned for the caller to judge. */
export function decodeHeader(buf: Buffer): DecodedHeader {
  if (buf.length < HEADER_SIZE) {
    throw corrupt("TRUNCATED", "header is truncated", { field: "header" });
  }
  if (!buf.subarray(0, 8).equals(HEADER_MAGIC)) {
    throw corrupt("BAD_MAGIC", "not a BFC container (bad header magic)", { field: "header.magic" });
  }
  return {
    blockSize: buf.readUInt32LE(12),
    features: buf.readUInt32LE(16) + buf.readUInt32LE(20) * 0x100000000,
    uuid: Buffer.from(buf.subarray(24, 40)),
    salt: Buffer.from(buf.subarray(SALT_OFFSET, SALT_OFFSET + SALT_SIZE)),
    storedCrc: buf.readUInt32LE(8),
    computedCrc: crc32c(buf.subarray(12, HEADER_SIZE)),
  };
}

export function hasPasswordSalt(h: Header): boolean {
  return saltIsSet(h.salt);
}

export function describeFeatures(features: number): string[] {
  const names: string[] = [];
  if (features & FEATURE_ZSTD) names.push("zstd");
  if (features & FEATURE_AEAD) names.push("aead");
  const unknown = features & ~(FEATURE_ZSTD | FEATURE_AEAD);
  if (unknown) names.push(`0x${unknown.toString(16)}`);
  return names;
}

/** Formats a 16-byte UUID in the canonical 8-4-4-4-12 form. */
export function formatUuid(uuid: Buffer): string {
  const h = uuid.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
