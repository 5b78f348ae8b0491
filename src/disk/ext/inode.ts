import { extCrc, extCrcU32 } from "./checksum.ts";
import { badFs, checksumMismatch } from "./corruption.ts";
import { RO_COMPAT_HUGE_FILE, type Superblock } from "./superblock.ts";

/** The kinds of inode (the same names as the VFS's file types). */
export type ExtFileType = "file" | "directory" | "symlink" | "character" | "block" | "fifo" | "socket";

export const S_IFMT = 0o170000;
/** The file type of i_mode's type bits (a switch: biome rewrites octal object keys wrongly). */
function typeOfMode(mode: number): ExtFileType | undefined {
  switch (mode & S_IFMT) {
    case 0x1000:
      return "fifo";
    case 0x2000:
      return "character";
    case 0x4000:
      return "directory";
    case 0x6000:
      return "block";
    case 0x8000:
      return "file";
    case 0xa000:
      return "symlink";
    case 0xc000:
      return "socket";
    default:
      return undefined;
  }
}

export const INODE_FLAG_ENCRYPT = 0x800;
export const INODE_FLAG_INDEX = 0x1000;
export const INODE_FLAG_HUGE_FILE = 0x40000;
export const INODE_FLAG_EXTENTS = 0x80000;
export const INODE_FLAG_EA_INODE = 0x200000;
export const INODE_FLAG_INLINE_DATA = 0x10000000;

/** Offset of i_block (60 bytes: block map, extent root, inline data, fast symlink or device number). */
export const I_BLOCK = 0x28;
export const I_BLOCK_SIZE = 60;
/** Size of the fixed part of every inode; larger inodes carry extra fields and in-inode xattrs. */
export const GOOD_OLD_INODE_SIZE = 128;

export interface Inode {
  readonly ino: number;
  /** Full i_mode: type bits and permission bits. */
  readonly mode: number;
  readonly type: ExtFileType;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly linksCount: number;
  /** Space used, in 512-byte units (converted from filesystem blocks for huge_file inodes). */
  readonly blocks: number;
  readonly flags: number;
  readonly generation: number;
  /** Block holding the inode's external xattrs, 0 if none. */
  readonly fileAcl: number;
  readonly atimeNs: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  /** Creation time; only inodes with room for it (256-byte inodes) record one. */
  readonly crtimeNs: bigint | undefined;
  /** Device number of character and block devices, as Linux's st_rdev encodes it; 0 otherwise. */
  readonly rdev: number;
  readonly rdevMajor: number;
  readonly rdevMinor: number;
  /** i_extra_isize: the bytes after the first 128 that hold extra fields (in-inode xattrs follow). */
  readonly extraIsize: number;
  /** The on-disk inode (s_inode_size bytes, a private copy). */
  readonly raw: Buffer;
}

/** An extra field exists only when 128 + i_extra_isize reaches its end. */
function hasExtra(extraIsize: number, fieldEnd: number): boolean {
  return GOOD_OLD_INODE_SIZE + extraIsize >= fieldEnd;
}

/**
 * A timestamp: a signed 32-bit second count, extended by the *_extra field's low 2 bits (epoch bits,
 * added as multiples of 2^32 seconds) and its upper 30 bits (nanoseconds).
 */
function timeNs(raw: Buffer, off: number, extraOff: number, present: boolean): bigint {
  const base = BigInt(raw.readInt32LE(off));
  if (!present) return base * 1_000_000_000n;
  const extra = raw.readUInt32LE(extraOff);
  return (base + (BigInt(extra & 3) << 32n)) * 1_000_000_000n + BigInt(extra >>> 2);
}

const ZERO2 = Buffer.alloc(2);

/** Verifies an inode's metadata_csum checksum (lo16 at 0x7C, hi16 at 0x82 when the inode has room). */
export function verifyInodeChecksum(raw: Buffer, ino: number, sb: Superblock, label: string): void {
  const hasHi = sb.inodeSize > GOOD_OLD_INODE_SIZE && raw.readUInt16LE(0x80) >= 4;
  const stored = raw.readUInt16LE(0x7c) + (hasHi ? raw.readUInt16LE(0x82) * 0x10000 : 0);
  // The checksum fields count as zeros; the inode is checksummed in place around them.
  let c = extCrcU32(sb.checksumSeed, ino);
  c = extCrcU32(c, raw.readUInt32LE(0x64));
  c = extCrc(c, raw.subarray(0, 0x7c));
  c = extCrc(c, ZERO2);
  if (hasHi) {
    c = extCrc(c, raw.subarray(0x7e, 0x82));
    c = extCrc(c, ZERO2);
    c = extCrc(c, raw.subarray(0x84));
  } else {
    c = extCrc(c, raw.subarray(0x7e));
    c &= 0xffff;
  }
  if (c >>> 0 !== stored) throw checksumMismatch(label, `inode ${ino}`);
}

/** The seed of the checksums of blocks an inode owns (extent nodes, directory blocks). */
export function inodeChecksumSeed(sb: Superblock, inode: Inode): number {
  return extCrcU32(extCrcU32(sb.checksumSeed, inode.ino), inode.generation);
}

/**
 * Decodes one on-disk inode. Checks what every later step relies on: a known file type, a link count
 * (0 means the inode was deleted), a plausible extra-field size, a size that fits in a double.
 */
export function parseInode(raw: Buffer, ino: number, sb: Superblock, label: string): Inode {
  const mode = raw.readUInt16LE(0x00);
  const type = typeOfMode(mode);
  if (type === undefined) {
    throw badFs(label, `inode ${ino} is not in use or has an invalid file type (mode 0${mode.toString(8)})`);
  }
  const linksCount = raw.readUInt16LE(0x1a);
  if (linksCount === 0) throw badFs(label, `inode ${ino} is not in use (its link count is 0)`);

  let extraIsize = 0;
  if (sb.inodeSize > GOOD_OLD_INODE_SIZE) {
    extraIsize = raw.readUInt16LE(0x80);
    if (GOOD_OLD_INODE_SIZE + extraIsize > sb.inodeSize || extraIsize % 4 !== 0) {
      throw badFs(label, `inode ${ino}: extra inode size ${extraIsize} is invalid`, "i_extra_isize");
    }
  }
  const flags = raw.readUInt32LE(0x20);
  if (flags & INODE_FLAG_EXTENTS && flags & INODE_FLAG_INLINE_DATA) {
    throw badFs(label, `inode ${ino} claims both extents and inline data`);
  }
  const size = raw.readUInt32LE(0x04) + raw.readUInt32LE(0x6c) * 2 ** 32;
  if (!Number.isSafeInteger(size)) throw badFs(label, `inode ${ino}: size is out of range`, "i_size");

  const blocksLo = raw.readUInt32LE(0x1c);
  const blocksHi = sb.roCompat & RO_COMPAT_HUGE_FILE ? raw.readUInt16LE(0x74) : 0;
  let blocks = blocksLo + blocksHi * 2 ** 32;
  if (flags & INODE_FLAG_HUGE_FILE && sb.roCompat & RO_COMPAT_HUGE_FILE) blocks *= sb.blockSize / 512;

  let rdevMajor = 0;
  let rdevMinor = 0;
  if (type === "character" || type === "block") {
    const old = raw.readUInt32LE(I_BLOCK);
    if (old !== 0) {
      rdevMajor = (old >>> 8) & 0xff;
      rdevMinor = old & 0xff;
    } else {
      const x = raw.readUInt32LE(I_BLOCK + 4);
      rdevMajor = (x & 0xfff00) >>> 8;
      rdevMinor = (x & 0xff) | ((x >>> 12) & 0xfff00);
    }
  }
  // glibc's makedev for majors below 4096 and minors below 2^20 (all ext4 can store).
  const rdev = (rdevMinor & 0xff) + rdevMajor * 256 + (rdevMinor >>> 8) * 2 ** 20;

  return {
    ino,
    mode,
    type,
    uid: raw.readUInt16LE(0x02) + raw.readUInt16LE(0x78) * 0x10000,
    gid: raw.readUInt16LE(0x18) + raw.readUInt16LE(0x7a) * 0x10000,
    size,
    linksCount,
    blocks,
    flags,
    generation: raw.readUInt32LE(0x64),
    fileAcl: raw.readUInt32LE(0x68) + raw.readUInt16LE(0x76) * 2 ** 32,
    ctimeNs: timeNs(raw, 0x0c, 0x84, hasExtra(extraIsize, 0x88)),
    mtimeNs: timeNs(raw, 0x10, 0x88, hasExtra(extraIsize, 0x8c)),
    atimeNs: timeNs(raw, 0x08, 0x8c, hasExtra(extraIsize, 0x90)),
    crtimeNs: hasExtra(extraIsize, 0x94) ? timeNs(raw, 0x90, 0x94, hasExtra(extraIsize, 0x98)) : undefined,
    rdev,
    rdevMajor,
    rdevMinor,
    extraIsize,
    raw,
  };
}
