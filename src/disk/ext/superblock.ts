import { BfcError } from "../../errors.ts";
import { checksumSeedOf, extCrc } from "./checksum.ts";
import { badFs, checksumMismatch, unsupportedFs } from "./corruption.ts";

/** The primary superblock always lies 1024 bytes into the filesystem, whatever the block size. */
export const SUPERBLOCK_OFFSET = 1024;
export const SUPERBLOCK_SIZE = 1024;
export const EXT_MAGIC = 0xef53;

export const COMPAT_HAS_JOURNAL = 0x4;
export const COMPAT_SPARSE_SUPER2 = 0x200;

export const INCOMPAT_COMPRESSION = 0x1;
export const INCOMPAT_FILETYPE = 0x2;
export const INCOMPAT_RECOVER = 0x4;
export const INCOMPAT_JOURNAL_DEV = 0x8;
export const INCOMPAT_META_BG = 0x10;
export const INCOMPAT_EXTENTS = 0x40;
export const INCOMPAT_64BIT = 0x80;
export const INCOMPAT_MMP = 0x100;
export const INCOMPAT_FLEX_BG = 0x200;
export const INCOMPAT_EA_INODE = 0x400;
export const INCOMPAT_DIRDATA = 0x1000;
export const INCOMPAT_CSUM_SEED = 0x2000;
export const INCOMPAT_LARGEDIR = 0x4000;
export const INCOMPAT_INLINE_DATA = 0x8000;
export const INCOMPAT_ENCRYPT = 0x10000;
export const INCOMPAT_CASEFOLD = 0x20000;

export const RO_COMPAT_SPARSE_SUPER = 0x1;
export const RO_COMPAT_HUGE_FILE = 0x8;
export const RO_COMPAT_GDT_CSUM = 0x10;
export const RO_COMPAT_BIGALLOC = 0x200;
export const RO_COMPAT_METADATA_CSUM = 0x400;

/** Incompatible features whose on-disk structures this reader understands. */
const KNOWN_INCOMPAT =
  INCOMPAT_FILETYPE |
  INCOMPAT_RECOVER |
  INCOMPAT_META_BG |
  INCOMPAT_EXTENTS |
  INCOMPAT_64BIT |
  INCOMPAT_MMP |
  INCOMPAT_FLEX_BG |
  INCOMPAT_EA_INODE |
  INCOMPAT_CSUM_SEED |
  INCOMPAT_LARGEDIR |
  INCOMPAT_INLINE_DATA |
  INCOMPAT_ENCRYPT |
  INCOMPAT_CASEFOLD;

export interface Superblock {
  readonly inodesCount: number;
  readonly blocksCount: number;
  readonly freeBlocksCount: number;
  readonly freeInodesCount: number;
  readonly firstDataBlock: number;
  readonly blockSize: number;
  /** log2(blockSize). */
  readonly blockBits: number;
  /** Allocation unit in bytes (blockSize unless bigalloc). */
  readonly clusterSize: number;
  /** Blocks (not clusters) per group. */
  readonly blocksPerGroup: number;
  readonly inodesPerGroup: number;
  readonly groupCount: number;
  readonly state: number;
  readonly revLevel: number;
  readonly firstIno: number;
  readonly inodeSize: number;
  readonly compat: number;
  readonly incompat: number;
  readonly roCompat: number;
  readonly uuid: Buffer;
  readonly volumeName: string;
  /** Group descriptor size: 32, or s_desc_size with 64bit. */
  readonly descSize: number;
  readonly firstMetaBg: number;
  /** sparse_super2's two backup groups. */
  readonly backupBgs: readonly [number, number];
  readonly hashSeed: Buffer;
  readonly defHashVersion: number;
  /** True when metadata_csum is on; `checksumSeed` is then the seed of every metadata checksum. */
  readonly metadataCsum: boolean;
  readonly checksumSeed: number;
  /** Group descriptors carry checksums and the INODE_UNINIT flag is meaningful. */
  readonly groupDescCsum: boolean;
  readonly raw: Buffer;
}

function u32(b: Buffer, off: number): number {
  return b.readUInt32LE(off);
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/**
 * Decodes and sanity-checks the superblock (1024 bytes read from byte 1024). Geometry is checked
 * here so that everything derived from it (group count, inode locations) is finite and bounded;
 * whether the filesystem fits its source is checked by the caller, which knows the source's size.
 */
export function parseSuperblock(raw: Buffer, label: string, verifyChecksum: boolean): Superblock {
  if (raw.length < SUPERBLOCK_SIZE) throw badFs(label, "superblock is truncated");
  if (raw.readUInt16LE(0x38) !== EXT_MAGIC) {
    throw new BfcError(
      "EINVAL",
      "BAD_MAGIC",
      `${label}: not an ext2/ext3/ext4 filesystem (no 0xEF53 magic at byte 1080)`,
      { path: label },
    );
  }
  const compat = u32(raw, 0x5c);
  const revLevel = u32(raw, 0x4c);
  // Revision 0 predates the feature fields; whatever lies there means nothing.
  const incompat = revLevel === 0 ? 0 : u32(raw, 0x60);
  const roCompat = revLevel === 0 ? 0 : u32(raw, 0x64);
  const is64 = (incompat & INCOMPAT_64BIT) !== 0;

  const logBlock = u32(raw, 0x18);
  if (logBlock > 6) throw badFs(label, `block size 1024 << ${logBlock} is outside 1 KiB to 64 KiB`);
  const blockBits = 10 + logBlock;
  const blockSize = 1 << blockBits;

  const bigalloc = (roCompat & RO_COMPAT_BIGALLOC) !== 0;
  const blocksPerGroup = u32(raw, 0x20);
  let clusterSize = blockSize;
  if (bigalloc) {
    const logCluster = u32(raw, 0x1c);
    if (logCluster < logBlock || logCluster > 19) {
      throw badFs(label, `bigalloc cluster size 1024 << ${logCluster} is invalid`);
    }
    clusterSize = 1024 * 2 ** logCluster;
    const clustersPerGroup = u32(raw, 0x24);
    if (clustersPerGroup < 1 || clustersPerGroup > 8 * blockSize) {
      throw badFs(label, `clusters per group (${clustersPerGroup}) is invalid`);
    }
    if (blocksPerGroup !== clustersPerGroup * (clusterSize / blockSize)) {
      throw badFs(
        label,
        `blocks per group (${blocksPerGroup}) does not match ${clustersPerGroup} clusters per group`,
      );
    }
  } else if (blocksPerGroup > 8 * blockSize) {
    throw badFs(label, `blocks per group (${blocksPerGroup}) is invalid`);
  }
  if (blocksPerGroup < 8) throw badFs(label, `blocks per group (${blocksPerGroup}) is invalid`);

  const blocksCount = u32(raw, 0x04) + (is64 ? u32(raw, 0x150) * 2 ** 32 : 0);
  const freeBlocksCount = u32(raw, 0x0c) + (is64 ? u32(raw, 0x158) * 2 ** 32 : 0);
  const firstDataBlock = u32(raw, 0x14);
  if (firstDataBlock > 1 || (firstDataBlock === 1 && blockSize !== 1024)) {
    throw badFs(label, `first data block ${firstDataBlock} is invalid for ${blockSize}-byte blocks`);
  }
  if (blocksCount <= firstDataBlock || !Number.isSafeInteger(blocksCount * blockSize)) {
    throw badFs(label, `block count ${blocksCount} is invalid`);
  }
  const groupCount = Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup);

  const inodesCount = u32(raw, 0x00);
  const inodesPerGroup = u32(raw, 0x28);
  if (inodesPerGroup < 1 || inodesPerGroup > 8 * blockSize) {
    throw badFs(label, `inodes per group (${inodesPerGroup}) is invalid`);
  }
  if (inodesCount !== groupCount * inodesPerGroup) {
    throw badFs(
      label,
      `inode count ${inodesCount} does not match ${groupCount} groups of ${inodesPerGroup} inodes`,
    );
  }

  let inodeSize = 128;
  let firstIno = 11;
  if (revLevel !== 0) {
    inodeSize = raw.readUInt16LE(0x58);
    firstIno = u32(raw, 0x54);
    if (!isPowerOfTwo(inodeSize) || inodeSize < 128 || inodeSize > blockSize) {
      throw badFs(label, `inode size ${inodeSize} is invalid`);
    }
    if (firstIno < 11 || firstIno > inodesCount) {
      throw badFs(label, `first non-reserved inode ${firstIno} is invalid`);
    }
  }

  let descSize = 32;
  if (is64) {
    descSize = raw.readUInt16LE(0xfe);
    if (descSize < 64 || descSize > 1024 || !isPowerOfTwo(descSize) || descSize > blockSize) {
      throw badFs(label, `group descriptor size ${descSize} is invalid`);
    }
  }

  const metadataCsum = (roCompat & RO_COMPAT_METADATA_CSUM) !== 0;
  const uuid = Buffer.from(raw.subarray(0x68, 0x78));
  let checksumSeed = 0;
  if (metadataCsum) {
    if (raw[0x175] !== 1) throw unsupportedFs(label, `unknown metadata checksum type ${raw[0x175]}`);
    checksumSeed = (incompat & INCOMPAT_CSUM_SEED) !== 0 ? u32(raw, 0x270) : checksumSeedOf(uuid);
    if (verifyChecksum && extCrc(0xffffffff, raw.subarray(0, 0x3fc)) !== u32(raw, 0x3fc)) {
      throw checksumMismatch(label, "the superblock");
    }
  }
  const nameEnd = raw.indexOf(0, 0x78);
  const volumeName = raw.toString("utf8", 0x78, nameEnd < 0 || nameEnd > 0x88 ? 0x88 : nameEnd);

  return {
    inodesCount,
    blocksCount,
    freeBlocksCount,
    freeInodesCount: u32(raw, 0x10),
    firstDataBlock,
    blockSize,
    blockBits,
    clusterSize,
    blocksPerGroup,
    inodesPerGroup,
    groupCount,
    state: raw.readUInt16LE(0x3a),
    revLevel,
    firstIno,
    inodeSize,
    compat,
    incompat,
    roCompat,
    uuid,
    volumeName,
    descSize,
    firstMetaBg: u32(raw, 0x104),
    backupBgs: [u32(raw, 0x24c), u32(raw, 0x250)],
    hashSeed: Buffer.from(raw.subarray(0xec, 0xfc)),
    defHashVersion: raw[0xfc] as number,
    metadataCsum,
    checksumSeed,
    groupDescCsum: metadataCsum || (roCompat & RO_COMPAT_GDT_CSUM) !== 0,
    raw: Buffer.from(raw.subarray(0, SUPERBLOCK_SIZE)),
  };
}

export interface FeatureOptions {
  /** Read even though the journal was not replayed. */
  ignoreJournal?: boolean;
}

/**
 * Refuses what cannot be read correctly: unknown incompatible features (their meaning is unknown,
 * so any answer could be wrong), e2compr compression, external journal devices, Lustre's dirdata,
 * and an unreplayed journal unless the caller accepts stale metadata. Returns warnings.
 * ro_compat features only restrict writers, so they are all acceptable here.
 */
export function checkFeatures(sb: Superblock, label: string, options: FeatureOptions): string[] {
  const warnings: string[] = [];
  if (sb.incompat & INCOMPAT_JOURNAL_DEV) {
    throw unsupportedFs(label, "this is an external ext3/ext4 journal device, not a filesystem");
  }
  if (sb.incompat & INCOMPAT_COMPRESSION) {
    throw unsupportedFs(label, "the filesystem uses e2compr compression, which this reader does not support");
  }
  if (sb.incompat & INCOMPAT_DIRDATA) {
    throw unsupportedFs(
      label,
      "the filesystem uses Lustre's dirdata feature, which this reader does not support",
    );
  }
  const unknown = sb.incompat & ~KNOWN_INCOMPAT;
  if (unknown !== 0) {
    throw unsupportedFs(
      label,
      `the filesystem uses incompatible features this reader does not know (0x${unknown.toString(16)})`,
    );
  }
  if (sb.incompat & INCOMPAT_RECOVER) {
    const what =
      "the journal has not been replayed (needs_recovery is set: the filesystem was not cleanly unmounted), " +
      "so files and directories may be missing, stale or inconsistent";
    if (!options.ignoreJournal) {
      throw new BfcError(
        "EIO",
        "NEEDS_RECOVERY",
        `${label}: ${what}; replay it with e2fsck on a copy of the image, or read it anyway (ignoreJournal)`,
        { path: label },
      );
    }
    warnings.push(`${label}: ${what}; reading it as it is`);
  }
  return warnings;
}

/** Whether group `g` holds a superblock backup (and so its group descriptors follow one). */
export function groupHasSuper(sb: Superblock, g: number): boolean {
  if (g === 0) return true;
  if (sb.compat & COMPAT_SPARSE_SUPER2) return g === sb.backupBgs[0] || g === sb.backupBgs[1];
  if (g <= 1 || (sb.roCompat & RO_COMPAT_SPARSE_SUPER) === 0) return true;
  if ((g & 1) === 0) return false;
  return isPowerOf(g, 3) || isPowerOf(g, 5) || isPowerOf(g, 7);
}

function isPowerOf(n: number, base: number): boolean {
  let p = base;
  while (p < n) p *= base;
  return p === n;
}
