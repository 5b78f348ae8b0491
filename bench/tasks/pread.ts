/**
 * Random reads for the fuse group, in a plain child process (no library): `reads` × 4 KiB `pread`s
 * at distinct random 4 KiB-aligned offsets of `file` through one descriptor, in a fixed (seeded)
 * order so every filesystem reads the same offsets. Timed from open to close; stops early once
 * `budgetMs` has passed. Each read lands in its own slot of one buffer (no copy in the loop); after
 * the clock stops the bytes are compared with `source`, the original file, at the same offsets.
 * Prints `{ ms, reads, bytes, mismatches, firstMismatch, budgetHit }`.
 */
import fs from "node:fs";

interface Args {
  file: string;
  size: number;
  reads: number;
  seed: number;
  budgetMs: number;
  source?: string;
}

const BLOCK = 4096;

/** mulberry32: a small seedable PRNG (the offsets only need to be the same on every run). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const a = JSON.parse(process.argv[2] ?? "{}") as Args;
const pages = Math.floor(a.size / BLOCK);
const rand = rng(a.seed);
const offsets: number[] = [];
const seen = new Set<number>();
// Distinct pages while there are enough of them (the file is at least 3× the bytes read).
const distinct = pages >= a.reads * 3;
while (offsets.length < a.reads) {
  const p = Math.floor(rand() * pages);
  if (distinct && seen.has(p)) continue;
  seen.add(p);
  offsets.push(p * BLOCK);
}
const data = Buffer.alloc(a.reads * BLOCK);

const t0 = performance.now();
const fd = fs.openSync(a.file, "r");
let done = 0;
let bytes = 0;
let budgetHit = false;
try {
  for (; done < a.reads; done++) {
    bytes += fs.readSync(fd, data, done * BLOCK, BLOCK, offsets[done]);
    if ((done & 15) === 15 && performance.now() - t0 > a.budgetMs) {
      done++;
      budgetHit = done < a.reads;
      break;
    }
  }
} finally {
  fs.closeSync(fd);
}
const ms = performance.now() - t0;

let mismatches = 0;
let firstMismatch: number | null = null;
if (a.source) {
  const src = fs.openSync(a.source, "r");
  const want = Buffer.alloc(BLOCK);
  try {
    for (let i = 0; i < done; i++) {
      const n = fs.readSync(src, want, 0, BLOCK, offsets[i]);
      if (!data.subarray(i * BLOCK, i * BLOCK + n).equals(want.subarray(0, n))) {
        mismatches++;
        firstMismatch ??= offsets[i];
      }
    }
  } finally {
    fs.closeSync(src);
  }
}
process.stdout.write(`${JSON.stringify({ ms, reads: done, bytes, mismatches, firstMismatch, budgetHit })}\n`);
