/**
 * Extraction threads (ExtractOptions.threads, extract-pool.ts): many small files written by
 * threads must give the same files, the same reports in the same order and the same failures as
 * the calling thread alone. (extract-threads.test.ts runs every hostile-container test with them.)
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { type ExtractedEntry, type ExtractReport, extract, Reader, Writer } from "../../src/index.ts";
import { sampleContent, tempDir } from "../helpers.ts";

const base = tempDir("bfc-extract-pool-");
let seq = 0;

/** What a run reported, in order. */
async function run(
  file: string,
  threads: number | undefined,
  key?: Buffer,
): Promise<{ dest: string; seen: ExtractedEntry[]; progress: number[]; report: ExtractReport }> {
  const dest = path.join(base, `out${seq++}`);
  const r = await Reader.open(file, key ? { key } : {});
  const seen: ExtractedEntry[] = [];
  const progress: number[] = [];
  try {
    const report = await extract(r, dest, {
      ...(threads === undefined ? {} : { threads }),
      onEntry: (e) => seen.push(e),
      onProgress: (p) => progress.push(p.entries),
    });
    return { dest, seen, progress, report };
  } finally {
    r.close();
  }
}

/** A tree of `n` small files in directories, some compressed, with symlinks and hard links. */
async function container(n: number, opts: { key?: Buffer } = {}): Promise<string> {
  const file = path.join(base, `c${seq++}.bfc`);
  const w = await Writer.create(file, { compression: "zstd", ...(opts.key ? { key: opts.key } : {}) });
  for (let d = 0; d < 20; d++) await w.addDirectory(`d${String(d).padStart(2, "0")}`, { mode: 0o750 });
  for (let k = 0; k < n; k++) {
    const dir = `d${String(k % 20).padStart(2, "0")}`;
    const data = k % 3 === 0 ? randomBytes(k % 5000) : sampleContent("text", k % 9000, k);
    await w.addFile(`${dir}/f${String(k).padStart(5, "0")}`, data, { mode: k % 7 === 0 ? 0o600 : 0o644 });
    if (k % 997 === 0) await w.addSymlink(`${dir}/l${k}`, `f${String(k).padStart(5, "0")}`);
    if (k % 1499 === 0) await w.addHardlink(`${dir}/h${k}`, `${dir}/f${String(k).padStart(5, "0")}`);
  }
  await w.finish();
  return file;
}

function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const rel of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const full = path.join(dir, rel);
    const st = fs.lstatSync(full);
    const what = st.isSymbolicLink()
      ? `l:${fs.readlinkSync(full)}`
      : st.isDirectory()
        ? "d"
        : `f:${fs.readFileSync(full).toString("base64")}`;
    out.set(rel, `${(st.mode & 0o7777).toString(8)} ${st.mtimeMs} ${what}`);
  }
  return out;
}

describe("extraction threads", () => {
  it("5000 small files on 2 threads: same tree, reports and progress as one thread", async () => {
    const file = await container(5000);
    const one = await run(file, 0);
    const many = await run(file, 2);
    assert.deepEqual(one.report.failed, []);
    assert.equal(one.report.threads, 0);
    assert.equal(many.report.threads, 2);
    assert.deepEqual({ ...many.report, threads: 0 }, one.report);
    assert.deepEqual(many.seen, one.seen, "onEntry: the same entries in the same order");
    assert.deepEqual(many.progress, one.progress);
    assert.ok(
      one.seen.some((e) => e.linkedTo !== undefined),
      "hard links are among them",
    );
    assert.deepEqual(snapshot(many.dest), snapshot(one.dest));
  });

  it("by default threads start for 64 MiB of small files to decode, not for stored ones", async () => {
    const file = path.join(base, `c${seq++}.bfc`);
    const w = await Writer.create(file, { compression: "zstd" });
    for (let k = 0; k < 66; k++) await w.addFile(`z/f${k}`, sampleContent("text", 1024 * 1024, k));
    await w.finish();
    const zstd = await run(file, undefined);
    assert.deepEqual(zstd.report.failed, []);
    assert.equal(zstd.report.threads, Math.min(4, os.availableParallelism()));
    assert.equal(
      fs.readFileSync(path.join(zstd.dest, "z/f65")).equals(sampleContent("text", 1024 * 1024, 65)),
      true,
    );
    const few = await run(await container(200), undefined);
    assert.equal(few.report.threads, 0, "a few small files: not worth a thread");
    const stored = path.join(base, `c${seq++}.bfc`);
    const s = await Writer.create(stored);
    for (let k = 0; k < 66; k++) await s.addFile(`s/f${k}`, sampleContent("text", 1024 * 1024, k));
    await s.finish();
    assert.equal((await run(stored, undefined)).report.threads, 0, "stored files: the kernel's work");
  });

  it("an encrypted container: the threads read with the caller's key", async () => {
    const key = randomBytes(32);
    const file = await container(300, { key });
    const one = await run(file, 0, key);
    const many = await run(file, 2, key);
    assert.deepEqual(many.report.failed, []);
    assert.deepEqual(many.seen, one.seen);
    assert.deepEqual(snapshot(many.dest), snapshot(one.dest));
  });

  it("a wrong password (threads get the key it derives): every file fails as on one thread", async () => {
    const file = path.join(base, `c${seq++}.bfc`);
    const w = await Writer.create(file, { compression: "zstd", password: "right" });
    for (let k = 0; k < 40; k++) await w.addFile(`p/f${k}`, sampleContent("text", 3000, k));
    await w.finish();
    const attempt = async (threads: number) => {
      const r = await Reader.open(file, { password: "wrong" });
      try {
        return await extract(r, path.join(base, `out${seq++}`), { threads });
      } finally {
        r.close();
      }
    };
    const [one, many] = [await attempt(0), await attempt(2)];
    assert.equal(one.failed.length, 40);
    assert.deepEqual(
      many.failed.map((f) => [f.path, f.error.code, f.error.reason]),
      one.failed.map((f) => [f.path, f.error.code, f.error.reason]),
    );
  });

  it("a callback that throws ends the extraction with its error, leaving no partial file", async () => {
    const file = await container(3000);
    const dest = path.join(base, `out${seq++}`);
    const r = await Reader.open(file);
    let calls = 0;
    try {
      await assert.rejects(
        extract(r, dest, {
          threads: 2,
          onEntry: () => {
            if (++calls === 500) throw new Error("stop here");
          },
        }),
        /stop here/,
      );
      // Whatever was written is whole: every file there has its content.
      for (const rel of fs.readdirSync(dest, { recursive: true }) as string[]) {
        const full = path.join(dest, rel);
        if (!fs.lstatSync(full).isFile()) continue;
        assert.ok(fs.readFileSync(full).equals(r.readFileSync(rel)), rel);
      }
    } finally {
      r.close();
    }
  });

  it("equal base names (without preservePaths) end as on one thread, with and without overwrite", async () => {
    // Threads would race for a shared name; such entries wait and go in index order instead.
    const file = path.join(base, `c${seq++}.bfc`);
    const w = await Writer.create(file, { compression: "zstd" });
    // 512 files a directory: each batch is one directory, so the threads write the same names at once.
    for (let d = 0; d < 4; d++) {
      for (let k = 0; k < 512; k++) {
        const name = `d${d}/f${String(k).padStart(3, "0")}`;
        await w.addFile(name, sampleContent("text", 200 + d * 7 + k, d * 1000 + k));
      }
      await w.addDirectory(`d${d}/sub`);
      await w.addFile(`d${d}/sub/only${d}`, Buffer.from(`only ${d}`));
    }
    await w.finish();
    for (const overwrite of [false, true]) {
      const attempt = async (threads: number) => {
        const dest = path.join(base, `out${seq++}`);
        const r = await Reader.open(file);
        const order: string[] = [];
        try {
          const report = await extract(r, dest, {
            threads,
            preservePaths: false,
            overwrite,
            onEntry: (e) => order.push(e.path),
            onError: (f) => order.push(`!${f.path} ${f.error.reason}`),
          });
          return { report, order, tree: snapshot(dest) };
        } finally {
          r.close();
        }
      };
      const one = await attempt(0);
      const many = await attempt(2);
      assert.equal(many.report.threads, 2);
      assert.equal(one.report.failed.length, overwrite ? 0 : 3 * 512, `overwrite ${overwrite}`);
      assert.deepEqual(many.order, one.order, `overwrite ${overwrite}`);
      assert.deepEqual(
        many.report.failed.map((f) => [f.path, f.error.reason]),
        one.report.failed.map((f) => [f.path, f.error.reason]),
      );
      // Times differ between the runs; names, modes and contents must not.
      const strip = (m: Map<string, string>) => [...m].map(([k, v]) => [k, v.replace(/ [0-9.]+ /, " ")]);
      assert.deepEqual(strip(many.tree), strip(one.tree));
    }
  });

  it("the threads read the file the caller opened, even once its name is gone", async () => {
    const file = await container(400);
    const expected = await run(file, 0);
    const r = await Reader.open(file);
    fs.rmSync(file);
    const dest = path.join(base, `out${seq++}`);
    try {
      const report = await extract(r, dest, { threads: 2 });
      assert.deepEqual(report.failed, []);
    } finally {
      r.close();
    }
    assert.deepEqual(snapshot(dest), snapshot(expected.dest));
  });

  it("files that cannot be written fail one by one, reported in their place as with one thread", async () => {
    const file = await container(600);
    const attempt = async (threads: number) => {
      const dest = path.join(base, `out${seq++}`);
      // Directories where files of the container must go: those files fail (EISDIR), nothing else.
      for (const k of [5, 250, 599]) {
        const dir = `d${String(k % 20).padStart(2, "0")}`;
        fs.mkdirSync(path.join(dest, dir, `f${String(k).padStart(5, "0")}`), { recursive: true });
      }
      const r = await Reader.open(file);
      const order: string[] = [];
      try {
        const report = await extract(r, dest, {
          threads,
          onEntry: (e) => order.push(e.path),
          onError: (f) => order.push(`!${f.path} ${f.error.code}`),
        });
        return { report, order, dest };
      } finally {
        r.close();
      }
    };
    const one = await attempt(0);
    const many = await attempt(2);
    assert.deepEqual(
      many.report.failed.map((f) => [f.path, f.error.code]),
      [
        ["d05/f00005", "EISDIR"],
        ["d10/f00250", "EISDIR"],
        ["d19/f00599", "EISDIR"],
      ],
    );
    assert.deepEqual(many.order, one.order);
    assert.equal(many.report.extracted, many.report.matched - 3);
    // The directories in the way were made by this test, at different times.
    const [a, b] = [snapshot(many.dest), snapshot(one.dest)];
    for (const p of ["d05/f00005", "d10/f00250", "d19/f00599"]) for (const m of [a, b]) m.delete(p);
    assert.deepEqual(a, b);
  });
});

describe("extraction threads under node --input-type=module -e", () => {
  it("start and write every file (their CommonJS entry must not inherit --input-type)", async () => {
    const file = path.join(base, "eval.bfc");
    const w = await Writer.create(file, { compression: "zstd", overwrite: true });
    for (let k = 0; k < 40; k++) await w.addFile(`d/f${k}.txt`, sampleContent("text", 1000 + k * 97, k));
    await w.finish();
    const dest = path.join(base, "eval-out");
    const script = `
      import { extract, Reader } from ${JSON.stringify(new URL("../../src/index.ts", import.meta.url).href)};
      const r = await Reader.open(${JSON.stringify(file)});
      const report = await extract(r, ${JSON.stringify(dest)}, { threads: 2 });
      console.log(JSON.stringify({ threads: report.threads, failed: report.failed.length }));`;
    const { spawnSync } = await import("node:child_process");
    const out = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(out.status, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout.trim()), { threads: 2, failed: 0 });
    assert.equal(fs.readdirSync(path.join(dest, "d")).length, 40);
  });
});
