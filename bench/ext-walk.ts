/**
 * ext reader throughput: walk every entry of an ext2/3/4 image (stat, symlink targets, xattrs),
 * then walk again reading every file's data runs (holes skipped, as an importer streams them).
 *
 *   node bench/ext-walk.ts [image.img] [--reps N]
 *
 * Without an image it builds the test suite's ext4 fixture (test/disk/ext-fixtures.ts; needs
 * e2fsprogs). Each repetition opens the filesystem afresh (cold metadata cache, warm page cache);
 * the best repetition is reported.
 */
import { parseArgs } from "node:util";
import { RawFile } from "../src/disk/block-source.ts";
import { ExtFileSystem } from "../src/disk/ext/filesystem.ts";
import { walkExt } from "../src/disk/ext/walker.ts";
import { buildExtImages } from "../test/disk/ext-fixtures.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { reps: { type: "string", default: "3" } },
});
const reps = Number(values.reps);
const image = positionals[0] ?? ((await buildExtImages(["ext4"])).images.ext4 as string);

const CHUNK = 1 << 20;
const buf = Buffer.allocUnsafe(CHUNK);

interface Round {
  entries: number;
  walkMs: number;
  readMs: number;
  /** Bytes actually read (data runs). */
  dataBytes: number;
  /** Apparent file sizes (data plus holes). */
  fileBytes: number;
}

function round(): Round {
  const source = new RawFile(image);
  try {
    let t0 = performance.now();
    let fs = ExtFileSystem.open(source);
    let entries = 0;
    for (const _ of walkExt(fs)) entries++;
    const walkMs = performance.now() - t0;

    t0 = performance.now();
    fs = ExtFileSystem.open(source);
    let dataBytes = 0;
    let fileBytes = 0;
    for (const e of walkExt(fs)) {
      if (e.type !== "file" || e.hardlinkOf !== undefined) continue;
      fileBytes += e.size;
      for (const run of fs.runs(e.inode)) {
        if (run.hole) continue;
        for (let done = 0; done < run.length; done += CHUNK) {
          const n = Math.min(CHUNK, run.length - done);
          fs.read(e.inode, buf.subarray(0, n), run.offset + done);
          dataBytes += n;
        }
      }
    }
    return { entries, walkMs, readMs: performance.now() - t0, dataBytes, fileBytes };
  } finally {
    source.close();
  }
}

const rounds = Array.from({ length: reps }, round);
const walk = rounds.reduce((a, b) => (b.walkMs < a.walkMs ? b : a));
const read = rounds.reduce((a, b) => (b.readMs < a.readMs ? b : a));
const mib = (n: number) => n / (1024 * 1024);
console.log(`image: ${image} (best of ${reps})`);
console.log(
  `walk:        ${walk.entries} entries in ${walk.walkMs.toFixed(1)} ms = ${Math.round((walk.entries / walk.walkMs) * 1000)} entries/s`,
);
console.log(
  `walk + read: ${read.entries} entries, ${mib(read.dataBytes).toFixed(1)} MiB of data (${mib(read.fileBytes).toFixed(1)} MiB with holes) in ${read.readMs.toFixed(1)} ms = ` +
    `${(mib(read.dataBytes) / (read.readMs / 1000)).toFixed(0)} MiB/s of data, ${Math.round((read.entries / read.readMs) * 1000)} entries/s`,
);
