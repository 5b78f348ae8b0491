import { corrupt } from "../errors.ts";
import { align16, OBJECT_HEADER_SIZE } from "./constants.ts";
import { readU64, writeU64 } from "./u64.ts";

/** The 40-byte header in front of every object (docs/format.md §4). */
export interface ObjectHeader {
  type: number;
  comp: number;
  enc: number;
  nameLen: number;
  mode: number;
  mtimeNs: bigint;
  origSize: number;
  encSize: number;
  crc: number;
}

export function encodeObjectHeader(h: ObjectHeader, into?: Buffer, at = 0): Buffer {
  const buf = into ?? Buffer.alloc(OBJECT_HEADER_SIZE);
  buf.fill(0, at, at + OBJECT_HEADER_SIZE);
  buf[at] = h.type;
  buf[at + 1] = h.comp;
  buf[at + 2] = h.enc;
  buf.writeUInt16LE(h.nameLen, at + 4);
  buf.writeUInt32LE(h.mode >>> 0, at + 8);
  buf.writeBigInt64LE(h.mtimeNs, at + 12);
  writeU64(buf, h.origSize, at + 20);
  writeU64(buf, h.encSize, at + 28);
  buf.writeUInt32LE(h.crc >>> 0, at + 36);
  return buf;
}

export function decodeObjectHeader(buf: Buffer, at = 0): ObjectHeader {
  if (buf.length - at < OBJECT_HEADER_SIZE) {
    throw corrupt("TRUNCATED", "object header is truncated", { field: "object" });
  }
  const origSize = readU64(buf, at + 20);
  const encSize = readU64(buf, at + 28);
  if (origSize < 0 || encSize < 0) {
    throw corrupt("BAD_OBJECT", "object header size out of range", { field: "object.size" });
  }
  return {
    type: buf[at],
    comp: buf[at + 1],
    enc: buf[at + 2],
    nameLen: buf.readUInt16LE(at + 4),
    mode: buf.readUInt32LE(at + 8),
    mtimeNs: buf.readBigInt64LE(at + 12),
    origSize,
    encSize,
    crc: buf.readUInt32LE(at + 36),
  };
}

/** Where content starts, relative to the object: the name is padded to 16 from the object's start. */
export function contentOffset(nameLen: number): number {
  return align16(OBJECT_HEADER_SIZE + nameLen);
}

/** Size of the object header plus name plus padding, the whole object for a directory. */
export function objectPrefixSize(nameLen: number): number {
  return align16(OBJECT_HEADER_SIZE + nameLen);
}
