import type { CachedBlock } from "./block-cache.ts";
import type { Superblock } from "./superblock.ts";

/** Kinds of metadata block, for remembering which owner verified a cached block's checksum. */
export const BLOCK_KIND_EXTENT = 1;
export const BLOCK_KIND_DIRECTORY = 2;
export const BLOCK_KIND_XATTR = 3;

/** Tag stored in `CachedBlock.checkedFor` once `kind` block of inode `ino` has been verified. */
export function checkTag(ino: number, kind: number): number {
  return ino * 4 + kind;
}

/** What the structure readers (extents, block maps, directories, xattrs) need from the filesystem. */
export interface MappingContext {
  readonly label: string;
  readonly sb: Superblock;
  /** Verify metadata_csum checksums (only meaningful when the filesystem has them). */
  readonly verify: boolean;
  /** A metadata block through the cache; `what` names it in errors. */
  metaBlock(block: number, what: string): CachedBlock;
}
