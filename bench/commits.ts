/**
 * Commits benchmark (the writable-containers issue): latency of one commit carrying 1, 100 and
 * 10,000 small changes to a container of 20,000 files, and the space 100 commits cost before and
 * after compaction, against a fresh container of the same final tree.
 *
 *   node bench/commits.ts [--quick] [--reps N] [--json FILE]
 *
 * Each measurement opens the container for update, stages the changes, and times `commit()` alone
 * (staging is reported separately); best of N with a warm page cache.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";

const lib = process.env.BFC_BENCH_DIST ? "../dist/index.js" : "../src/index.ts";
const { Container, compact, Reader, Writer } = (await import(lib)) as typeof import("../src/index.ts");

const { values: opts } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    reps: { type: "string" },
    json: { type: "string" },
  },
});
const FILES = opts.quick ? 2_000 : 20_000;
const SIZES = opts.quick ? [1, 100, 1_000] : [1, 100, 10_000];
const HISTORY = opts.quick ? 20 : 100;
const reps = opts.reps ? Number(opts.reps) : 3;

/** Deterministic text-like content: compressible, different per (file, version). */
function content(i: number, version: number): Buffer {
  const line = `file ${i} version ${version}: the quick brown fox jumps over the lazy dog ${(i * 2654435761) % 1000003}\n`;
  return Buffer.from(line.repeat(Math.ceil(4096 / line.length)).slice(0, 4096));
}

const nameOf = (i: number) => `d${String(i % 200).padStart(3, "0")}/f${i}.txt`;

async function build(file: string): Promise<void> {
  const w = await Writer.create(file, { compression: "zstd", overwrite: true });
  for (let i = 0; i < FILES; i++)
    await w.addFile(nameOf(i), content(i, 0), { mode: 0o644, mtime: 1_700_000_000_000 });
  await w.finish();
}

interface Row {
  changes: number;
  stageMs: number;
  commitMs: number;
  bytesAdded: number;
  written: number;
}

async function commitLatency(dir: string): Promise<Row[]> {
  const file = path.join(dir, "latency.bfc");
  await build(file);
  const rows: Row[] = [];
  let version = 1;
  for (const n of SIZES) {
    let best: Row | null = null;
    for (let r = 0; r < reps; r++) {
      const c = await Container.openForUpdate(file, { compression: "zstd" });
      const t0 = performance.now();
      for (let k = 0; k < n; k++) {
        const i = (k * 7919 + r * 31) % FILES;
        await c.addFile(nameOf(i), content(i, version), { mode: 0o644 });
      }
      const t1 = performance.now();
      const res = await c.commit();
      const t2 = performance.now();
      c.close();
      version++;
      const row = {
        changes: n,
        stageMs: t1 - t0,
        commitMs: t2 - t1,
        bytesAdded: res.bytesAdded,
        written: res.written,
      };
      if (!best || row.commitMs < best.commitMs) best = row;
    }
    rows.push(best!);
  }
  return rows;
}

interface Space {
  commits: number;
  fresh: number;
  afterCommits: number;
  afterCompact: number;
  compactMs: number;
}

async function spaceOverhead(dir: string): Promise<Space> {
  const file = path.join(dir, "history.bfc");
  await build(file);
  // Each commit rewrites 1% of the files (a typical small update).
  const per = Math.max(1, Math.floor(FILES / 100));
  const final = new Map<number, number>();
  for (let k = 1; k <= HISTORY; k++) {
    const c = await Container.openForUpdate(file, { compression: "zstd" });
    for (let j = 0; j < per; j++) {
      const i = (k * 104729 + j * 7919) % FILES;
      await c.addFile(nameOf(i), content(i, k), { mode: 0o644, mtime: 1_700_000_000_000 + k });
      final.set(i, k);
    }
    await c.commit();
    c.close();
  }
  const afterCommits = fs.statSync(file).size;
  // The same final tree written fresh.
  const freshFile = path.join(dir, "fresh.bfc");
  const r = await Reader.open(file);
  const w = await Writer.create(freshFile, { compression: "zstd", overwrite: true });
  for (const e of r.entries()) {
    if (e.type === "file")
      await w.addFile(e.path, await r.readFile(e.path), { mode: e.mode, mtime: e.mtimeNs });
    else if (e.type === "directory") await w.addDirectory(e.path, { mode: e.mode, mtime: e.mtimeNs });
  }
  await w.finish();
  r.close();
  const t0 = performance.now();
  await compact(file);
  const compactMs = performance.now() - t0;
  return {
    commits: HISTORY,
    fresh: fs.statSync(freshFile).size,
    afterCommits,
    afterCompact: fs.statSync(file).size,
    compactMs,
  };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bfc-bench-commits-"));
try {
  const latency = await commitLatency(dir);
  const space = await spaceOverhead(dir);
  const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  console.log(
    `Commit latency (container of ${FILES.toLocaleString()} files of 4 KiB, zstd -3; best of ${reps})`,
  );
  console.log("| changes | stage ms | commit ms | objects written | bytes appended |");
  console.log("|---:|---:|---:|---:|---:|");
  for (const r of latency) {
    console.log(
      `| ${r.changes.toLocaleString()} | ${r.stageMs.toFixed(1)} | ${r.commitMs.toFixed(1)} | ${r.written.toLocaleString()} | ${mib(r.bytesAdded)} |`,
    );
  }
  console.log();
  console.log(`Space after ${space.commits} commits each rewriting 1% of the files`);
  console.log("| fresh container | after commits | overhead | after compact | compact ms |");
  console.log("|---:|---:|---:|---:|---:|");
  console.log(
    `| ${mib(space.fresh)} | ${mib(space.afterCommits)} | ${((space.afterCommits / space.fresh - 1) * 100).toFixed(0)}% | ${mib(space.afterCompact)} (${((space.afterCompact / space.fresh - 1) * 100).toFixed(1)}%) | ${space.compactMs.toFixed(0)} |`,
  );
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify({ files: FILES, latency, space }, null, 2));
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
