import { extCrc } from "./checksum.ts";
import { badFs, checksumMismatch } from "./corruption.ts";

/** A directory entry (never "." or ".."). */
export interface ExtDirEntry {
  /** The name decoded as UTF-8 (invalid sequences become U+FFFD; `nameBytes` keeps the original). */
  readonly name: string;
  readonly nameBytes: Buffer;
  readonly ino: number;
  /** The entry's file type byte (1 reg, 2 dir, 3 chr, 4 blk, 5 fifo, 6 sock, 7 lnk); 0 if unknown. */
  readonly fileType: number;
}

export const FT_NAMES = ["", "file", "directory", "character", "block", "fifo", "socket", "symlink"] as const;

/** The 12-byte dirent that ends every leaf block under metadata_csum: inode 0, rec_len 12, type 0xDE. */
const TAIL_SIZE = 12;
const TAIL_FT = 0xde;
const ZERO4 = Buffer.alloc(4);

export interface DirParse {
  label: string;
  dirIno: number;
  blockSize: number;
  inodesCount: number;
  /** Inode numbers below this (except the root, 2) are reserved and never appear in directories. */
  firstIno: number;
  /** The filetype feature: name_len is one byte and the next byte is the type. */
  filetype: boolean;
  /** This region starts the directory: its first two entries may be "." and "..". */
  first: boolean;
}

/** rec_len as stored: with 64 KiB blocks, 0 and 65535 mean 65536 and the low 2 bits hold bits 16–17. */
export function decodeRecLen(v: number, blockSize: number): number {
  if (blockSize < 65536) return v;
  if (v === 65535 || v === 0) return blockSize;
  return (v & 65532) | ((v & 3) << 16);
}

/**
 * Parses the entries of one directory block (or an inline-data region) into `out`, skipping unused
 * slots (inode 0), "." and "..". Every entry is validated as the kernel does: rec_len at least 12,
 * 4-aligned, within the region and large enough for the name; inode numbers in range and not
 * reserved; names non-empty, without '/' or NUL, and "." / ".." only in their slots.
 */
export function parseDirEntries(
  buf: Buffer,
  start: number,
  end: number,
  p: DirParse,
  out: ExtDirEntry[],
): void {
  let pos = start;
  let n = 0;
  while (pos < end) {
    const where = () => `directory inode ${p.dirIno}, entry at byte ${pos - start} of a block`;
    if (pos + 8 > end) throw badFs(p.label, `${where()}: truncated entry`);
    const ino = buf.readUInt32LE(pos);
    const recLen = decodeRecLen(buf.readUInt16LE(pos + 4), p.blockSize);
    const nameLen = p.filetype ? (buf[pos + 6] as number) : buf.readUInt16LE(pos + 6);
    const fileType = p.filetype ? (buf[pos + 7] as number) : 0;
    if (recLen < 12 || recLen % 4 !== 0 || pos + recLen > end) {
      throw badFs(p.label, `${where()}: invalid record length ${recLen}`, "rec_len");
    }
    if (nameLen + 8 > recLen) {
      throw badFs(
        p.label,
        `${where()}: name length ${nameLen} does not fit its record of ${recLen} bytes`,
        "name_len",
      );
    }
    if (ino !== 0) {
      if (ino > p.inodesCount || (ino < p.firstIno && ino !== 2)) {
        throw badFs(p.label, `${where()}: inode number ${ino} is out of range`);
      }
      if (nameLen === 0) throw badFs(p.label, `${where()}: empty name`);
      const nameBytes = buf.subarray(pos + 8, pos + 8 + nameLen);
      const dots = nameLen <= 2 && nameBytes[0] === 0x2e && (nameLen === 1 || nameBytes[1] === 0x2e);
      if (dots) {
        if (!(p.first && n === nameLen - 1)) {
          throw badFs(p.label, `${where()}: '${nameLen === 1 ? "." : ".."}' outside its slot`);
        }
      } else {
        if (nameBytes.indexOf(0x2f) >= 0 || nameBytes.indexOf(0) >= 0) {
          throw badFs(p.label, `${where()}: name contains '/' or NUL`);
        }
        // A view, not a copy: blocks from the cache are never written to.
        out.push({
          name: nameBytes.toString("utf8"),
          nameBytes,
          ino,
          fileType: fileType <= 7 ? fileType : 0,
        });
      }
    }
    n++;
    pos += recLen;
  }
}

/**
 * Verifies a directory block's metadata_csum checksum: the dirent tail of a leaf block, or the
 * dx_tail of an htree node (the root block, or an interior node that looks like one empty dirent
 * spanning the block).
 */
export function verifyDirBlock(b: Buffer, seed: number, indexed: boolean, label: string, what: string): void {
  const bs = b.length;
  const t = bs - TAIL_SIZE;
  if (
    b.readUInt32LE(t) === 0 &&
    b.readUInt16LE(t + 4) === TAIL_SIZE &&
    b[t + 6] === 0 &&
    b[t + 7] === TAIL_FT
  ) {
    if (extCrc(seed, b.subarray(0, t)) !== b.readUInt32LE(t + 8)) throw checksumMismatch(label, what);
    return;
  }
  if (indexed) {
    let countOffset = -1;
    const rec0 = decodeRecLen(b.readUInt16LE(4), bs);
    if (rec0 === bs) countOffset = 8;
    else if (
      rec0 === 12 &&
      decodeRecLen(b.readUInt16LE(16), bs) === bs - 12 &&
      b.readUInt32LE(24) === 0 &&
      b[29] === 8
    ) {
      countOffset = 32;
    }
    if (countOffset > 0) {
      const limit = b.readUInt16LE(countOffset);
      const count = b.readUInt16LE(countOffset + 2);
      const tail = countOffset + limit * 8;
      if (count > limit || tail + 8 > bs)
        throw badFs(label, `${what}: htree node count ${count} / limit ${limit} invalid`);
      let c = extCrc(seed, b.subarray(0, countOffset + count * 8));
      // Then dt_reserved and, in place of dt_checksum, four zero bytes.
      c = extCrc(c, b.subarray(tail, tail + 4));
      c = extCrc(c, ZERO4);
      if (c !== b.readUInt32LE(tail + 4)) throw checksumMismatch(label, what);
      return;
    }
  }
  throw badFs(label, `${what}: no room for the directory block checksum`);
}
