import type { BlockSource } from "../block-source.ts";
import { badFs } from "./corruption.ts";

/** A cached metadata block; `checkedFor` remembers who verified its checksum last (see `BlockCache.get`). */
export interface CachedBlock {
  readonly data: Buffer;
  checkedFor: number;
}

/**
 * An LRU of metadata blocks (inode tables, directories, extent nodes, indirect and xattr blocks),
 * bounded in bytes. File contents never pass through it. Blocks handed out are shared: callers
 * must not modify them.
 */
export class BlockCache {
  private readonly source: BlockSource;
  private readonly blockSize: number;
  private readonly blocksCount: number;
  private readonly maxBlocks: number;
  private readonly label: string;
  private readonly map = new Map<number, CachedBlock>();

  constructor(
    source: BlockSource,
    blockSize: number,
    blocksCount: number,
    budgetBytes: number,
    label: string,
  ) {
    this.source = source;
    this.blockSize = blockSize;
    this.blocksCount = blocksCount;
    this.maxBlocks = Math.max(16, Math.floor(budgetBytes / blockSize));
    this.label = label;
  }

  /**
   * The block's bytes. A block's checksum depends on its owner (inode number and generation), so
   * verification is remembered per owner: a caller compares `checkedFor` with its own tag, verifies
   * on a difference and then stores its tag.
   */
  get(block: number, what: string): CachedBlock {
    const hit = this.map.get(block);
    if (hit) {
      this.map.delete(block);
      this.map.set(block, hit);
      return hit;
    }
    if (!Number.isSafeInteger(block) || block < 0 || block >= this.blocksCount) {
      throw badFs(this.label, `${what}: block ${block} is beyond the end of the filesystem`);
    }
    const data = Buffer.allocUnsafe(this.blockSize);
    this.source.read(data, block * this.blockSize);
    const entry: CachedBlock = { data, checkedFor: -1 };
    this.map.set(block, entry);
    if (this.map.size > this.maxBlocks) {
      const oldest = this.map.keys().next().value as number;
      this.map.delete(oldest);
    }
    return entry;
  }

  clear(): void {
    this.map.clear();
  }
}
