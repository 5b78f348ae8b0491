import { badFs } from "./corruption.ts";
import { GOOD_OLD_INODE_SIZE, I_BLOCK, I_BLOCK_SIZE, type Inode } from "./inode.ts";
import { parseXattrEntries, type RawXattr, XATTR_INDEX_SYSTEM, XATTR_MAGIC } from "./xattr.ts";

/** The xattrs stored inside the inode, after its extra fields (empty when there is no such area). */
export function inInodeXattrs(inode: Inode, label: string): RawXattr[] {
  const start = GOOD_OLD_INODE_SIZE + inode.extraIsize;
  const raw = inode.raw;
  if (raw.length <= GOOD_OLD_INODE_SIZE || start + 4 > raw.length) return [];
  if (raw.readUInt32LE(start) !== XATTR_MAGIC) return [];
  return parseXattrEntries(
    raw,
    start + 4,
    start + 4,
    raw.length,
    label,
    `in-inode xattrs of inode ${inode.ino}`,
  );
}

/** The value of "system.data": the part of inline data that did not fit in i_block. */
export function inlineDataTail(inode: Inode, label: string): Buffer {
  for (const x of inInodeXattrs(inode, label)) {
    if (x.index === XATTR_INDEX_SYSTEM && x.suffix === "data") {
      if (x.value === undefined) throw badFs(label, `inode ${inode.ino}: inline data stored in an EA inode`);
      return x.value;
    }
  }
  throw badFs(label, `inode ${inode.ino} has the inline-data flag but no system.data attribute`);
}

/** An inline file's (or symlink's) content: i_block followed by system.data, cut to i_size. */
export function inlineContent(inode: Inode, label: string): Buffer {
  const tail = inlineDataTail(inode, label);
  if (inode.size > I_BLOCK_SIZE + tail.length) {
    throw badFs(
      label,
      `inode ${inode.ino}: size ${inode.size} exceeds its inline data (${I_BLOCK_SIZE + tail.length} bytes)`,
    );
  }
  const head = inode.raw.subarray(I_BLOCK, I_BLOCK + I_BLOCK_SIZE);
  return Buffer.concat([head, tail]).subarray(0, inode.size);
}

/**
 * The regions of an inline directory: i_block after its 4-byte parent inode number (no "." or ".."
 * entries), then the system.data value, each a self-contained chain of dirents.
 */
export function inlineDirRegions(inode: Inode, label: string): { parent: number; regions: Buffer[] } {
  const tail = inlineDataTail(inode, label);
  return {
    parent: inode.raw.readUInt32LE(I_BLOCK),
    regions: [Buffer.from(inode.raw.subarray(I_BLOCK + 4, I_BLOCK + I_BLOCK_SIZE)), tail],
  };
}
