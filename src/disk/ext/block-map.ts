import { badFs } from "./corruption.ts";
import type { Piece } from "./data-runs.ts";
import { I_BLOCK, type Inode } from "./inode.ts";
import type { MappingContext } from "./mapping-context.ts";

const DIRECT = 12;
/** Logical block numbers are 32-bit. */
const LBLK_LIMIT = 2 ** 32;

/** Collects consecutive mapped blocks into pieces. */
class PieceBuilder {
  private lblk = 0;
  private pblk = 0;
  private len = 0;

  /** Adds one mapped block; returns the finished piece when it does not continue the current one. */
  add(lblk: number, pblk: number): Piece | null {
    if (this.len > 0 && lblk === this.lblk + this.len && pblk === this.pblk + this.len) {
      this.len++;
      return null;
    }
    const done = this.flush();
    this.lblk = lblk;
    this.pblk = pblk;
    this.len = 1;
    return done;
  }

  flush(): Piece | null {
    if (this.len === 0) return null;
    const p: Piece = { lblk: this.lblk, len: this.len, pblk: this.pblk, unwritten: false };
    this.len = 0;
    return p;
  }
}

/**
 * The mapped blocks of an ext2/ext3-style inode (12 direct pointers, then single, double and triple
 * indirect blocks of bs/4 pointers each; 0 is a hole), from `fromBlock` on, merged into pieces.
 * The tree's depth is fixed by position, so a hostile map cannot loop, and each indirect block may
 * appear once per walk; subtrees before `fromBlock` and zero pointers (whole holes) are skipped
 * without reading anything.
 */
export function* blockMapPieces(ctx: MappingContext, inode: Inode, fromBlock: number): Generator<Piece> {
  const { sb, label } = ctx;
  const ino = inode.ino;
  const per = sb.blockSize / 4;
  const builder = new PieceBuilder();
  const check = (ptr: number, what: string): void => {
    if (ptr <= sb.firstDataBlock || ptr >= sb.blocksCount) {
      throw badFs(label, `inode ${ino}: ${what} points outside the filesystem (block ${ptr})`);
    }
  };

  for (let i = Math.max(0, fromBlock); i < DIRECT; i++) {
    const ptr = inode.raw.readUInt32LE(I_BLOCK + 4 * i);
    if (ptr === 0) continue;
    check(ptr, `block ${i}`);
    const done = builder.add(i, ptr);
    if (done) yield done;
  }

  // An indirect block belongs to one place in one file; seeing it twice means a hostile map, which
  // could otherwise make a walk revisit the same zero-filled subtree p^2 times.
  const visited = new Set<number>();

  /** Walks the indirect tree at `ptr` whose entries each cover `span` blocks, starting at `base`. */
  function* indirect(ptr: number, level: number, base: number, span: number): Generator<Piece> {
    check(ptr, `indirect block for logical block ${base}`);
    if (visited.has(ptr)) throw badFs(label, `inode ${ino}: block map uses indirect block ${ptr} twice`);
    visited.add(ptr);
    const table = ctx.metaBlock(ptr, `block map of inode ${ino}`).data;
    const first = fromBlock > base ? Math.floor((fromBlock - base) / span) : 0;
    for (let k = first; k < per; k++) {
      const lblk = base + k * span;
      if (lblk >= LBLK_LIMIT) return;
      const p = table.readUInt32LE(4 * k);
      if (p === 0) continue;
      if (level === 1) {
        check(p, `block ${lblk}`);
        const done = builder.add(lblk, p);
        if (done) yield done;
      } else {
        yield* indirect(p, level - 1, lblk, span / per);
      }
    }
  }

  let base = DIRECT;
  let span = 1;
  for (let level = 1; level <= 3; level++) {
    const covered = span * per;
    const ptr = inode.raw.readUInt32LE(I_BLOCK + 4 * (DIRECT + level - 1));
    if (ptr !== 0 && fromBlock < base + covered && base < LBLK_LIMIT) yield* indirect(ptr, level, base, span);
    base += covered;
    span *= per;
  }
  const last = builder.flush();
  if (last) yield last;
}
