import { badFs } from "./corruption.ts";

/**
 * A mapped stretch of a file in blocks, as an extent tree or block map yields it: logical blocks
 * [lblk, lblk+len) live at physical blocks [pblk, pblk+len). Unwritten (preallocated) extents read
 * as zeros. Producers yield pieces in increasing, non-overlapping logical order.
 */
export interface Piece {
  lblk: number;
  len: number;
  pblk: number;
  unwritten: boolean;
}

/** A stretch of a file in bytes: its data, or a hole that reads as zeros. */
export interface DataRun {
  /** Byte offset in the file. */
  offset: number;
  length: number;
  /** True for a hole (or preallocated space): reads as zeros, nothing to read from the image. */
  hole: boolean;
  /**
   * Byte offset in the filesystem's source where the run's bytes lie, contiguously; -1 for holes
   * and for inline data (which lives inside the inode: read it with `ExtFileSystem.read`).
   */
  physical: number;
}

export interface RunLimits {
  blockSize: number;
  /** Filesystem size in bytes: a file cannot map more data than the filesystem holds. */
  capBytes: number;
  label: string;
  ino: number;
}

/** Merges adjacent runs of the same kind (and, for data, physically contiguous ones). */
class RunMerger {
  private pending: DataRun | null = null;

  /** Adds a run; returns the previous one when it cannot be extended. */
  push(run: DataRun): DataRun | null {
    const p = this.pending;
    if (
      p &&
      p.offset + p.length === run.offset &&
      p.hole === run.hole &&
      (run.hole || p.physical + p.length === run.physical)
    ) {
      p.length += run.length;
      return null;
    }
    this.pending = run;
    return p;
  }

  flush(): DataRun | null {
    const p = this.pending;
    this.pending = null;
    return p;
  }
}

/**
 * Turns a stream of pieces into byte runs covering exactly [start, end): holes filled in between,
 * unwritten space as holes, physically contiguous pieces merged into one run (so a reader makes one
 * large read where the file is contiguous on disk), everything clipped to the range.
 */
export function* dataRuns(
  pieces: Iterable<Piece>,
  start: number,
  end: number,
  lim: RunLimits,
): Generator<DataRun> {
  const bs = lim.blockSize;
  const merger = new RunMerger();
  let pos = start;
  let mapped = 0;
  let lastEnd = 0;
  if (start < end) {
    for (const piece of pieces) {
      if (piece.lblk < lastEnd) {
        throw badFs(lim.label, `inode ${lim.ino}: its block mapping overlaps itself at block ${piece.lblk}`);
      }
      lastEnd = piece.lblk + piece.len;
      const lo = piece.lblk * bs;
      const hi = lastEnd * bs;
      if (hi <= pos) continue;
      if (lo >= end) break;
      if (lo > pos) {
        const out = merger.push({ offset: pos, length: lo - pos, hole: true, physical: -1 });
        if (out) yield out;
        pos = lo;
      }
      const stop = Math.min(hi, end);
      let run: DataRun;
      if (piece.unwritten) {
        run = { offset: pos, length: stop - pos, hole: true, physical: -1 };
      } else {
        mapped += stop - pos;
        if (mapped > lim.capBytes) {
          throw badFs(lim.label, `inode ${lim.ino} maps more data than the filesystem holds`);
        }
        run = { offset: pos, length: stop - pos, hole: false, physical: piece.pblk * bs + (pos - lo) };
      }
      const out = merger.push(run);
      if (out) yield out;
      pos = stop;
      if (pos >= end) break;
    }
    if (pos < end) {
      const out = merger.push({ offset: pos, length: end - pos, hole: true, physical: -1 });
      if (out) yield out;
    }
  }
  const last = merger.flush();
  if (last) yield last;
}
