import { extCrc } from "./checksum.ts";
import { badFs, checksumMismatch } from "./corruption.ts";
import type { Piece } from "./data-runs.ts";
import { I_BLOCK, I_BLOCK_SIZE, type Inode, inodeChecksumSeed } from "./inode.ts";
import { BLOCK_KIND_EXTENT, checkTag, type MappingContext } from "./mapping-context.ts";

const EXTENT_MAGIC = 0xf30a;
/** The kernel's limit (EXT4_MAX_EXTENT_DEPTH). */
export const MAX_EXTENT_DEPTH = 5;
/** Extent lengths above this mark unwritten (preallocated) extents of length len - 32768. */
const INIT_MAX_LEN = 32768;
/** Logical block numbers are 32-bit. */
const LBLK_LIMIT = 2 ** 32;
const HEADER = 12;
const ENTRY = 12;

interface Frame {
  buf: Buffer;
  /** Offset of the node's header in `buf` (i_block inside the inode for the root). */
  base: number;
  entries: number;
  depth: number;
  idx: number;
  /** Logical range the parent's index entry assigns to this node. */
  lo: number;
  hi: number;
}

/** Checks a node header; returns [entries, depth]. */
function header(
  buf: Buffer,
  base: number,
  capacity: number,
  where: () => string,
  label: string,
): [number, number] {
  if (buf.readUInt16LE(base) !== EXTENT_MAGIC) throw badFs(label, `${where()}: bad extent header magic`);
  const entries = buf.readUInt16LE(base + 2);
  const max = buf.readUInt16LE(base + 4);
  const depth = buf.readUInt16LE(base + 6);
  if (max > capacity || entries > max) {
    throw badFs(
      label,
      `${where()}: extent header claims ${entries} of ${max} entries (room for ${capacity})`,
    );
  }
  if (depth > MAX_EXTENT_DEPTH)
    throw badFs(label, `${where()}: extent tree depth ${depth} exceeds ${MAX_EXTENT_DEPTH}`);
  return [entries, depth];
}

/** Reads an extent tree block, verifying its checksum (a 4-byte tail after eh_max entries). */
function treeBlock(ctx: MappingContext, inode: Inode, block: number): Buffer {
  const what = `extent tree of inode ${inode.ino}`;
  const cached = ctx.metaBlock(block, what);
  const tag = checkTag(inode.ino, BLOCK_KIND_EXTENT);
  if (ctx.verify && ctx.sb.metadataCsum && cached.checkedFor !== tag) {
    const b = cached.data;
    const capacity = Math.floor((b.length - HEADER) / ENTRY);
    header(b, 0, capacity, () => `${what}, block ${block}`, ctx.label);
    const tail = HEADER + ENTRY * b.readUInt16LE(4);
    if (
      tail + 4 > b.length ||
      extCrc(inodeChecksumSeed(ctx.sb, inode), b.subarray(0, tail)) !== b.readUInt32LE(tail)
    ) {
      throw checksumMismatch(ctx.label, `${what}, block ${block}`);
    }
    cached.checkedFor = tag;
  }
  return cached.data;
}

/** Index of the last entry whose first logical block is <= `target` (0 if none). */
function seek(f: Frame, target: number): number {
  let lo = 0;
  let hi = f.entries - 1;
  let found = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (f.buf.readUInt32LE(f.base + HEADER + mid * ENTRY) <= target) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/**
 * The extents of an extent-mapped inode, in logical order, starting with the one that holds
 * `fromBlock` (or the first after it). Hostile trees cannot loop or blow up: depth is at most 5 and
 * must drop by one per level, every tree block may be visited once per walk, entries must be
 * sorted and stay inside the range their parent gives them, and every block number must lie in the
 * filesystem.
 */
export function* extentPieces(ctx: MappingContext, inode: Inode, fromBlock: number): Generator<Piece> {
  const { label, sb } = ctx;
  const ino = inode.ino;
  const rootWhere = () => `inode ${ino}`;
  const [rootEntries, rootDepth] = header(
    inode.raw,
    I_BLOCK,
    (I_BLOCK_SIZE - HEADER) / ENTRY,
    rootWhere,
    label,
  );
  const root: Frame = {
    buf: inode.raw,
    base: I_BLOCK,
    entries: rootEntries,
    depth: rootDepth,
    idx: 0,
    lo: 0,
    hi: LBLK_LIMIT,
  };
  root.idx = seek(root, fromBlock);
  const stack: Frame[] = [root];
  const visited = new Set<number>();
  let seeking = true;
  const capacity = Math.floor((sb.blockSize - HEADER) / ENTRY);

  while (stack.length > 0) {
    const f = stack[stack.length - 1] as Frame;
    if (f.idx >= f.entries) {
      stack.pop();
      const parent = stack[stack.length - 1];
      if (parent) parent.idx++;
      continue;
    }
    const e = f.base + HEADER + f.idx * ENTRY;
    const lblk = f.buf.readUInt32LE(e);
    if (f.idx > 0 && lblk <= f.buf.readUInt32LE(e - ENTRY)) {
      throw badFs(label, `inode ${ino}: extent tree entries are out of order at logical block ${lblk}`);
    }
    if (lblk < f.lo || lblk >= f.hi) {
      throw badFs(label, `inode ${ino}: extent at logical block ${lblk} lies outside its parent's range`);
    }
    if (f.depth === 0) {
      let len = f.buf.readUInt16LE(e + 4);
      const unwritten = len > INIT_MAX_LEN;
      if (unwritten) len -= INIT_MAX_LEN;
      const pblk = f.buf.readUInt16LE(e + 6) * 2 ** 32 + f.buf.readUInt32LE(e + 8);
      if (len === 0 || lblk + len > f.hi) {
        throw badFs(label, `inode ${ino}: extent at logical block ${lblk} has an invalid length ${len}`);
      }
      if (pblk <= sb.firstDataBlock || pblk + len > sb.blocksCount) {
        throw badFs(
          label,
          `inode ${ino}: extent at logical block ${lblk} points outside the filesystem (block ${pblk})`,
        );
      }
      seeking = false;
      f.idx++;
      yield { lblk, len, pblk, unwritten };
      continue;
    }
    const child = f.buf.readUInt32LE(e + 4) + f.buf.readUInt16LE(e + 8) * 2 ** 32;
    const hi = f.idx + 1 < f.entries ? f.buf.readUInt32LE(e + ENTRY) : f.hi;
    if (child <= sb.firstDataBlock || child >= sb.blocksCount) {
      throw badFs(label, `inode ${ino}: extent index points outside the filesystem (block ${child})`);
    }
    if (visited.has(child)) throw badFs(label, `inode ${ino}: extent tree visits block ${child} twice`);
    visited.add(child);
    const buf = treeBlock(ctx, inode, child);
    const where = () => `inode ${ino}, extent tree block ${child}`;
    const [entries, depth] = header(buf, 0, capacity, where, label);
    if (depth !== f.depth - 1)
      throw badFs(label, `${where()}: depth ${depth} below a node of depth ${f.depth}`);
    if (entries === 0) throw badFs(label, `${where()}: empty extent tree node`);
    const nf: Frame = { buf, base: 0, entries, depth, idx: 0, lo: lblk, hi: Math.min(hi, f.hi) };
    if (seeking) nf.idx = seek(nf, fromBlock);
    stack.push(nf);
  }
}
