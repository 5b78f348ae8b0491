import { corrupt } from "../errors.ts";
import { FOOTER_END_TAG, FOOTER_SIZE, FOOTER_START_TAG } from "./constants.ts";
import { readU64, writeU64 } from "./u64.ts";

/** The 56-byte footer at the end of the file. */
export interface Footer {
  indexSize: number;
  indexCrc: number;
  indexOffset: number;
}

export function encodeFooter(f: Footer): Buffer {
  const buf = Buffer.alloc(FOOTER_SIZE);
  FOOTER_START_TAG.copy(buf, 0);
  writeU64(buf, f.indexSize, 8);
  buf.writeUInt32LE(f.indexCrc >>> 0, 16);
  writeU64(buf, f.indexOffset, 20);
  FOOTER_END_TAG.copy(buf, 48);
  return buf;
}

/**
 * Decodes the footer and checks it against the file size exactly as the reference does
 * (tags, then index_offset < size, index_size != 0, index end <= size - 56).
 */
export function decodeFooter(buf: Buffer, fileSize: number): Footer {
  if (buf.length !== FOOTER_SIZE) throw corrupt("TRUNCATED", "footer is truncated", { field: "footer" });
  if (!buf.subarray(0, 8).equals(FOOTER_START_TAG) || !buf.subarray(48, 56).equals(FOOTER_END_TAG)) {
    throw corrupt("BAD_FOOTER", "no BFC footer at end of file (truncated or not a container)", {
      field: "footer.tag",
    });
  }
  const indexSize = readU64(buf, 8);
  const indexOffset = readU64(buf, 20);
  if (indexSize <= 0) {
    throw corrupt("BAD_FOOTER", "footer index_size is zero or out of range", { field: "footer.index_size" });
  }
  if (indexOffset < 0 || indexOffset >= fileSize) {
    throw corrupt("BAD_FOOTER", "footer index_offset is beyond the end of the file", {
      field: "footer.index_offset",
    });
  }
  if (indexOffset + indexSize > fileSize - FOOTER_SIZE) {
    throw corrupt("BAD_FOOTER", "footer describes an index that runs past the footer", {
      field: "footer.index_size",
    });
  }
  return { indexSize, indexCrc: buf.readUInt32LE(16), indexOffset };
}
