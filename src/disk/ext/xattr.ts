import { extCrc, extCrcU64 } from "./checksum.ts";
import { badFs, checksumMismatch } from "./corruption.ts";

/** An extended attribute with its full name ("user.comment", "system.posix_acl_access", …). */
export interface Xattr {
  readonly name: string;
  readonly value: Buffer;
}

/** An entry as stored, before its name prefix is applied and its value fetched. */
export interface RawXattr {
  readonly index: number;
  readonly suffix: string;
  /** The value when stored in place; undefined when it lives in an EA inode (`valueInode`). */
  readonly value: Buffer | undefined;
  readonly valueInode: number;
  readonly valueSize: number;
}

export const XATTR_MAGIC = 0xea020000;
export const XATTR_INDEX_SYSTEM = 7;
/** The largest value Linux accepts (XATTR_SIZE_MAX). */
export const XATTR_SIZE_MAX = 65536;
const ENTRY_HEADER = 16;
const BLOCK_HEADER = 32;

/** Name prefixes by e_name_index, as e2fsprogs names them. */
const PREFIXES: Record<number, string> = {
  1: "user.",
  2: "system.posix_acl_access",
  3: "system.posix_acl_default",
  4: "trusted.",
  6: "security.",
  7: "system.",
  8: "system.richacl",
};

/**
 * Parses a list of entries starting at `start` and ending at a zero u32, inside [start, end); values
 * lie at `valueBase + e_value_offs` and must stay inside [valueBase, end).
 */
export function parseXattrEntries(
  buf: Buffer,
  start: number,
  valueBase: number,
  end: number,
  label: string,
  where: string,
): RawXattr[] {
  const out: RawXattr[] = [];
  let pos = start;
  for (;;) {
    if (pos + 4 > end) throw badFs(label, `${where}: xattr list runs past its end`);
    if (buf.readUInt32LE(pos) === 0) return out;
    if (pos + ENTRY_HEADER > end) throw badFs(label, `${where}: truncated xattr entry`);
    const nameLen = buf[pos] as number;
    const index = buf[pos + 1] as number;
    const valueOffs = buf.readUInt16LE(pos + 2);
    const valueInode = buf.readUInt32LE(pos + 4);
    const valueSize = buf.readUInt32LE(pos + 8);
    const next = pos + ((ENTRY_HEADER + nameLen + 3) & ~3);
    if (pos + ENTRY_HEADER + nameLen > end) throw badFs(label, `${where}: xattr name runs past its end`);
    if (valueSize > XATTR_SIZE_MAX) throw badFs(label, `${where}: xattr value of ${valueSize} bytes`);
    const suffix = buf.toString("utf8", pos + ENTRY_HEADER, pos + ENTRY_HEADER + nameLen);
    let value: Buffer | undefined;
    if (valueInode === 0) {
      const vs = valueBase + valueOffs;
      if (valueSize > 0 && (vs < start || vs + valueSize > end)) {
        throw badFs(label, `${where}: xattr value of '${suffix}' lies outside its area`);
      }
      value = Buffer.from(buf.subarray(vs, vs + valueSize));
    }
    out.push({ index, suffix, value, valueInode, valueSize });
    pos = next;
  }
}

/** Entries of an external xattr block (i_file_acl), after checking its header and checksum. */
export function parseXattrBlock(
  b: Buffer,
  block: number,
  label: string,
  ino: number,
  checksumSeed: number | undefined,
): RawXattr[] {
  const where = `xattr block ${block} of inode ${ino}`;
  if (b.readUInt32LE(0) !== XATTR_MAGIC) throw badFs(label, `${where}: bad magic`);
  if (b.readUInt32LE(8) !== 1) throw badFs(label, `${where}: spans ${b.readUInt32LE(8)} blocks`);
  if (checksumSeed !== undefined) {
    const copy = Buffer.from(b);
    copy.writeUInt32LE(0, 0x10);
    if (extCrc(extCrcU64(checksumSeed, block), copy) !== b.readUInt32LE(0x10))
      throw checksumMismatch(label, where);
  }
  return parseXattrEntries(b, BLOCK_HEADER, 0, b.length, label, where);
}

const ACL_USER = 2;
const ACL_GROUP = 8;
const ACL_UNDEFINED_ID = 0xffffffff;

/**
 * ext4 stores POSIX ACLs compactly (version 1; owner, group-owner, mask and other entries without
 * an id); getxattr returns the generic form (version 2, 8-byte entries), which is what an archive
 * or another filesystem expects.
 */
export function aclToXattr(v: Buffer, label: string, where: string): Buffer {
  if (v.length < 4 || v.readUInt32LE(0) !== 1) throw badFs(label, `${where}: unknown POSIX ACL version`);
  const entries: number[][] = [];
  let pos = 4;
  while (pos < v.length) {
    if (pos + 4 > v.length) throw badFs(label, `${where}: truncated POSIX ACL`);
    const tag = v.readUInt16LE(pos);
    const perm = v.readUInt16LE(pos + 2);
    if (tag === ACL_USER || tag === ACL_GROUP) {
      if (pos + 8 > v.length) throw badFs(label, `${where}: truncated POSIX ACL`);
      entries.push([tag, perm, v.readUInt32LE(pos + 4)]);
      pos += 8;
    } else {
      entries.push([tag, perm, ACL_UNDEFINED_ID]);
      pos += 4;
    }
  }
  const out = Buffer.alloc(4 + 8 * entries.length);
  out.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], k) => {
    out.writeUInt16LE(tag as number, 4 + 8 * k);
    out.writeUInt16LE(perm as number, 6 + 8 * k);
    out.writeUInt32LE(id as number, 8 + 8 * k);
  });
  return out;
}

/** The full name of an entry, or undefined for indexes Linux does not expose (and for unknown ones). */
export function xattrName(index: number, suffix: string): string | undefined {
  const prefix = PREFIXES[index];
  if (prefix === undefined) return undefined;
  return index === 2 || index === 3 || index === 8 ? prefix : prefix + suffix;
}
