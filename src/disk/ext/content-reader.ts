import { badFs } from "./corruption.ts";
import type { DataRun } from "./data-runs.ts";
import type { ExtFileSystem } from "./filesystem.ts";
import type { Inode } from "./inode.ts";

/**
 * Positioned reads of one file for a front-to-back consumer (an importer): the file's data runs
 * are walked once, holes are filled with zeros without touching the image, and data is read
 * straight from the filesystem's source in as few reads as the layout allows. A read before the
 * current run (a second pass) starts the walk again from there.
 */
export class ExtContentReader {
  readonly size: number;
  readonly label: string;
  private readonly fs: ExtFileSystem;
  private readonly inode: Inode;
  private runs: Iterator<DataRun> | null = null;
  private run: DataRun | null = null;
  /** Holes met are added to `stats.holeBytes`, each byte once however often it is read. */
  private readonly stats: { holeBytes: number } | undefined;
  /** How far holes have been counted. */
  private counted = 0;

  constructor(
    fs: ExtFileSystem,
    inode: Inode,
    label = `${fs.label}: inode ${inode.ino}`,
    stats?: { holeBytes: number },
  ) {
    this.stats = stats;
    this.fs = fs;
    this.inode = inode;
    this.size = inode.size;
    this.label = label;
  }

  /** The run holding byte `pos`, advancing (or restarting) the walk. */
  private runAt(pos: number): DataRun {
    if (this.runs === null || this.run === null || pos < this.run.offset) {
      this.runs = this.fs.runs(this.inode, pos);
      this.run = null;
    }
    while (this.run === null || this.run.offset + this.run.length <= pos) {
      const next = this.runs.next();
      if (next.done) {
        throw badFs(this.fs.label, `inode ${this.inode.ino}: its data runs end before byte ${pos}`);
      }
      this.run = next.value;
    }
    return this.run;
  }

  /** Fills `buf` from `position`; returns the bytes read (short only at the end of the file). */
  read(buf: Uint8Array, position: number): number {
    const n = Math.max(0, Math.min(buf.length, this.size - position));
    let done = 0;
    while (done < n) {
      const pos = position + done;
      const run = this.runAt(pos);
      const take = Math.min(run.offset + run.length - pos, n - done);
      const dst = buf.subarray(done, done + take);
      if (run.hole) {
        dst.fill(0);
        if (this.stats && pos + take > this.counted) {
          this.stats.holeBytes += pos + take - Math.max(pos, this.counted);
        }
      } else if (run.physical < 0) this.fs.read(this.inode, dst, pos);
      else this.fs.source.read(dst, run.physical + (pos - run.offset));
      done += take;
    }
    this.counted = Math.max(this.counted, position + n);
    return n;
  }
}
