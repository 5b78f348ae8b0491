import type { BlockSource } from "../block-source.ts";
import { extCrc, extCrcU32 } from "./checksum.ts";
import { badFs, checksumMismatch } from "./corruption.ts";
import { groupHasSuper, INCOMPAT_META_BG, type Superblock } from "./superblock.ts";

/** bg_flags: the group's inode table was never initialized (meaningful with descriptor checksums). */
export const BG_INODE_UNINIT = 0x1;

/**
 * The block group descriptor table, reduced to what reading needs: where each group's inode table
 * starts and whether it is initialized. Loaded whole at open; its size is bounded by the filesystem
 * (one descriptor per group, and the groups cover the image).
 */
export class GroupTable {
  readonly count: number;
  private readonly inodeTables: Float64Array;
  private readonly flags: Uint16Array;

  private constructor(count: number) {
    this.count = count;
    this.inodeTables = new Float64Array(count);
    this.flags = new Uint16Array(count);
  }

  inodeTable(g: number): number {
    return this.inodeTables[g] as number;
  }

  inodeTableUninitialized(g: number, sb: Superblock): boolean {
    return sb.groupDescCsum && ((this.flags[g] as number) & BG_INODE_UNINIT) !== 0;
  }

  /** Block numbers of the descriptor table's blocks, in order (meta_bg spreads them across the disk). */
  static descriptorBlocks(sb: Superblock): number[] {
    const perBlock = sb.blockSize / sb.descSize;
    const count = Math.ceil(sb.groupCount / perBlock);
    // The superblock's own block: 1 with 1 KiB blocks, else 0.
    const sbBlock = Math.floor(1024 / sb.blockSize);
    const metaBg = (sb.incompat & INCOMPAT_META_BG) !== 0;
    const out: number[] = [];
    for (let i = 0; i < count; i++) {
      if (!metaBg || i < sb.firstMetaBg) {
        out.push(sbBlock + 1 + i);
        continue;
      }
      // With meta_bg, meta-group i keeps its descriptors in the first block after its first group's
      // superblock backup (if any).
      const g = i * perBlock;
      let skip = groupHasSuper(sb, g) ? 1 : 0;
      if (sb.blockSize === 1024 && i === 0 && sb.firstDataBlock === 0) skip++;
      out.push(sb.firstDataBlock + g * sb.blocksPerGroup + skip);
    }
    return out;
  }

  static load(source: BlockSource, sb: Superblock, label: string, verify: boolean): GroupTable {
    const t = new GroupTable(sb.groupCount);
    const bs = sb.blockSize;
    const ds = sb.descSize;
    const perBlock = bs / ds;
    const itableBlocks = Math.ceil((sb.inodesPerGroup * sb.inodeSize) / bs);
    const blocks = GroupTable.descriptorBlocks(sb);
    const buf = Buffer.allocUnsafe(bs);
    const wide = ds >= 64;
    for (let i = 0; i < blocks.length; i++) {
      const block = blocks[i] as number;
      if (block >= sb.blocksCount) {
        throw badFs(label, `group descriptor block ${block} is beyond the end of the filesystem`);
      }
      source.read(buf, block * bs);
      const first = i * perBlock;
      const last = Math.min(sb.groupCount, first + perBlock);
      for (let g = first; g < last; g++) {
        const off = (g - first) * ds;
        const d = buf.subarray(off, off + ds);
        if (verify && sb.metadataCsum) {
          let c = extCrcU32(sb.checksumSeed, g);
          c = extCrc(c, d.subarray(0, 0x1e));
          c = extCrc(c, ZERO2);
          if (ds > 0x20) c = extCrc(c, d.subarray(0x20, ds));
          if ((c & 0xffff) !== d.readUInt16LE(0x1e)) {
            throw checksumMismatch(label, `the descriptor of block group ${g}`);
          }
        }
        const itable = d.readUInt32LE(0x08) + (wide ? d.readUInt32LE(0x28) * 2 ** 32 : 0);
        if (itable <= sb.firstDataBlock || itable + itableBlocks > sb.blocksCount) {
          throw badFs(
            label,
            `block group ${g}: inode table at block ${itable} lies outside the filesystem`,
            "bg_inode_table",
          );
        }
        t.inodeTables[g] = itable;
        t.flags[g] = d.readUInt16LE(0x12);
      }
    }
    return t;
  }
}

const ZERO2 = Buffer.alloc(2);
