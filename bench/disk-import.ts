/**
 * Disk-image import: `node bench/disk-import.ts [--reps 3] [--files 30000] [--keep] [--only a,b]`.
 *
 * Builds (once, in bench/data/disk-import/) a source tree of ~30k node_modules-like small files plus
 * a few large ones, a 1 GiB ext4 image of it (`mkfs.ext4 -d`) and a zstd-compressed QCOW2 of that
 * image, then times, each as a whole command in a fresh process (best of N, page cache warm, peak
 * RSS from GNU time):
 *
 *   bfc import <image> out.bfc [-c zstd]                          raw and QCOW2 images
 *   fuse2fs -o ro,fakeroot <image> mnt && bfc create out.bfc mnt  the route users take today
 *   fuse2fs … && mksquashfs mnt out.sqfs                          (QCOW2: qemu-img convert first)
 *
 * and reports MB/s (content bytes) and entries/s. Every container is checked once against the source
 * tree (entry count and content bytes). Needs e2fsprogs, qemu-utils, fuse2fs, squashfs-tools,
 * /dev/fuse and root (fuse2fs mounts).
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Reader } from "../src/container/reader.ts";
import { convertToQcow2, missingTools } from "../test/disk/disk-fixtures.ts";
import { fillFrom, makePool, prng } from "./datasets.ts";

const { values: opts } = parseArgs({
  options: {
    reps: { type: "string", default: "3" },
    files: { type: "string", default: "30000" },
    keep: { type: "boolean", default: false },
    only: { type: "string" },
  },
});
const reps = Number(opts.reps);
const wantFiles = Number(opts.files);
const only = opts.only ? new Set(opts.only.split(",")) : null;

const missing = missingTools(["mkfs.ext4", "qemu-img", "fuse2fs", "mksquashfs", "fusermount"]);
if (missing.length > 0) {
  console.error(
    `needs ${missing.join(", ")} (apt-get install e2fsprogs qemu-utils fuse2fs squashfs-tools fuse)`,
  );
  process.exit(1);
}

const MiB = 1024 * 1024;
const dir = path.join(import.meta.dirname, "data", "disk-import");
const src = path.join(dir, "src");
const image = path.join(dir, "rootfs.img");
const qcow = path.join(dir, "rootfs-zstd.qcow2");
const mnt = path.join(dir, "mnt");
const tmp = path.join(dir, "tmp");
const cli = path.join(import.meta.dirname, "..", "src", "cli", "main.ts");
const LARGE = [48, 64, 96, 128, 160].map((m) => m * MiB);

/** The source tree: `node_modules/` of ~`files` small files in packages, and `big/` large files. */
function generate(): { files: number; bytes: number } {
  fs.rmSync(src, { recursive: true, force: true });
  const pool = makePool(7);
  const rand = prng(21);
  const words =
    "core util http parse stream buffer path event async promise json yaml lodash react babel types glob minimatch debug chalk".split(
      " ",
    );
  let files = 0;
  let bytes = 0;
  const write = (rel: string, size: number) => {
    const full = path.join(src, rel);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    const buf = Buffer.allocUnsafe(size);
    fillFrom(pool, rand, buf, `// ${rel}\n`);
    fs.writeFileSync(full, buf);
    files++;
    bytes += size;
  };
  for (let pkg = 0; files < wantFiles; pkg++) {
    const base = `node_modules/${words[pkg % words.length]}-${pkg}`;
    write(`${base}/package.json`, 300 + Math.floor(rand() * 1500));
    write(`${base}/README.md`, 500 + Math.floor(rand() * 6000));
    const n = 10 + Math.floor(rand() * 50);
    for (let i = 0; i < n; i++) {
      const sub = ["lib", "dist", "src", "lib/internal", "dist/esm", "types"][Math.floor(rand() * 6)];
      // Mostly small, a few tens of KiB, like real packages.
      const size = rand() < 0.9 ? 100 + Math.floor(rand() * 4000) : 8192 + Math.floor(rand() * 60000);
      write(`${base}/${sub}/${words[Math.floor(rand() * words.length)]}-${i}.js`, size);
    }
  }
  const chunk = Buffer.allocUnsafe(8 * MiB);
  LARGE.forEach((size, k) => {
    const full = path.join(src, "big", `blob-${k}.bin`);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    const fd = fs.openSync(full, "w");
    for (let done = 0; done < size; done += chunk.length) {
      fillFrom(pool, rand, chunk);
      fs.writeSync(fd, chunk, 0, Math.min(chunk.length, size - done), done);
    }
    fs.closeSync(fd);
    files++;
    bytes += size;
  });
  return { files, bytes };
}

function sh(argv: string[]): void {
  const r = spawnSync(argv[0] as string, argv.slice(1), {
    stdio: ["ignore", "ignore", "pipe"],
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr || r.error?.message}`);
}

interface Run {
  wall: number;
  rssKiB: number;
}

/** Runs a command under GNU time: wall seconds and peak RSS of that process (children included). */
function timed(argv: string[]): Run {
  const out = path.join(tmp, "time.txt");
  const t0 = performance.now();
  const r = spawnSync("/usr/bin/time", ["-f", "%M", "-o", out, ...argv], {
    stdio: ["ignore", "ignore", "pipe"],
    encoding: "utf8",
  });
  const wall = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${argv.join(" ")}: exit ${r.status}: ${r.stderr}`);
  return { wall, rssKiB: Number(fs.readFileSync(out, "utf8").trim().split("\n").pop()) };
}

function fuseMount(img: string): number {
  const t0 = performance.now();
  fs.mkdirSync(mnt, { recursive: true });
  sh(["fuse2fs", "-o", "ro,fakeroot", img, mnt]);
  return (performance.now() - t0) / 1000;
}

function fuseUnmount(): void {
  spawnSync("fusermount", ["-u", mnt]);
}

const node = process.execPath;
const bfc = (...args: string[]) => [node, cli, "-q", ...args];

interface Route {
  id: string;
  label: string;
  /** The command lines, for the report. */
  commands: string[];
  /** One timed run: total seconds and the bfc/mksquashfs process's peak RSS. */
  run(out: string): Run;
  out: string;
  check: "bfc" | "sqfs";
}

function routes(): Route[] {
  const c = path.join(tmp, "out.bfc");
  const q = path.join(tmp, "out.sqfs");
  const raw = path.join(tmp, "converted.img");
  const viaFuse = (img: string, pack: string[], pre?: () => number): Run => {
    let extra = pre ? pre() : 0;
    extra += fuseMount(img);
    try {
      const r = timed(pack);
      return { wall: r.wall + extra, rssKiB: r.rssKiB };
    } finally {
      fuseUnmount();
    }
  };
  const convert = () => {
    const t0 = performance.now();
    sh(["qemu-img", "convert", "-O", "raw", qcow, raw]);
    return (performance.now() - t0) / 1000;
  };
  const sq = (zstd: boolean) => [
    "mksquashfs",
    mnt,
    q,
    "-noappend",
    "-no-progress",
    "-quiet",
    ...(zstd ? ["-comp", "zstd", "-Xcompression-level", "3"] : ["-noI", "-noD", "-noF", "-noX"]),
  ];
  const list: Route[] = [];
  for (const [src0, img, tag] of [
    ["raw", image, "raw"],
    ["qcow2", qcow, "qcow2-zstd"],
  ] as const) {
    for (const zstd of [false, true]) {
      const cflag = zstd ? ["-c", "zstd", "-l", "3"] : [];
      const ctag = zstd ? "zstd" : "none";
      list.push({
        id: `import-${tag}-${ctag}`,
        label: `bfc import, ${src0} image, ${ctag}`,
        commands: [`bfc import -f ${cflag.join(" ")} ${path.basename(img)} out.bfc`.replace(/ +/g, " ")],
        run: () => timed(bfc("import", "-f", "--no-progress", ...cflag, img, c)),
        out: c,
        check: "bfc",
      });
      const pre = src0 === "qcow2" ? convert : undefined;
      const conv = src0 === "qcow2" ? [`qemu-img convert -O raw ${path.basename(img)} converted.img`] : [];
      const fimg = src0 === "qcow2" ? raw : img;
      list.push({
        id: `fuse2fs-create-${tag}-${ctag}`,
        label: `fuse2fs + bfc create, ${src0} image, ${ctag}`,
        commands: [
          ...conv,
          `fuse2fs -o ro,fakeroot ${path.basename(fimg)} mnt`,
          `bfc create -f ${cflag.join(" ")} out.bfc mnt`.replace(/ +/g, " "),
          "fusermount -u mnt",
        ],
        run: () => viaFuse(fimg, bfc("create", "-f", "--no-progress", ...cflag, c, mnt), pre),
        out: c,
        check: "bfc",
      });
      list.push({
        id: `fuse2fs-mksquashfs-${tag}-${ctag}`,
        label: `fuse2fs + mksquashfs, ${src0} image, ${ctag}`,
        commands: [
          ...conv,
          `fuse2fs -o ro,fakeroot ${path.basename(fimg)} mnt`,
          `mksquashfs mnt out.sqfs -noappend ${zstd ? "-comp zstd -Xcompression-level 3" : "-noI -noD -noF -noX"}`,
          "fusermount -u mnt",
        ],
        run: () => viaFuse(fimg, sq(zstd), pre),
        out: q,
        check: "sqfs",
      });
    }
  }
  return list;
}

/** Entries and content bytes of a container (special entries counted as entries). */
function containerTotals(file: string): { entries: number; bytes: number } {
  const r = Reader.openSync(file);
  try {
    let bytes = 0;
    let entries = r.specialEntries().length;
    for (const e of r.entries()) {
      entries++;
      if (e.type === "file" && r.hardlinkTarget(e.index) < 0) bytes += e.size;
    }
    return { entries, bytes };
  } finally {
    r.close();
  }
}

// ------------------------------------------------------------------ main
fs.mkdirSync(tmp, { recursive: true });
const manifest = path.join(dir, "manifest.json");
let meta: { files: number; bytes: number; entries: number; version: number } | null = null;
try {
  meta = JSON.parse(fs.readFileSync(manifest, "utf8"));
} catch {
  meta = null;
}
if (meta === null || meta.version !== 1 || meta.files < wantFiles || !fs.existsSync(qcow)) {
  console.error("generating the source tree and images…");
  const g = generate();
  fs.rmSync(image, { force: true });
  sh(["mkfs.ext4", "-q", "-F", "-E", "root_owner=0:0", "-d", src, image, "1G"]);
  convertToQcow2(image, qcow, { compression: "zstd" });
  let entries = 0;
  for (const _ of fs.readdirSync(src, { recursive: true })) entries++;
  // + lost+found, made by mkfs.
  meta = { ...g, entries: entries + 1, version: 1 };
  fs.writeFileSync(manifest, JSON.stringify(meta));
}
const MB = 1e6;
const load = os
  .loadavg()
  .map((l) => l.toFixed(1))
  .join(" ");
console.log(
  `ext4 image ${(fs.statSync(image).size / MiB).toFixed(0)} MiB (${((fs.statSync(image).blocks * 512) / MiB).toFixed(0)} MiB allocated), qcow2 zstd ${(fs.statSync(qcow).size / MiB).toFixed(0)} MiB; ` +
    `${meta.entries} entries, ${meta.files} files, ${(meta.bytes / MB).toFixed(0)} MB of content; best of ${reps}; load average ${load}`,
);
console.log("route                                         s      MB/s   entries/s   peak RSS MiB");
const results: Record<string, unknown>[] = [];
for (const r of routes()) {
  if (only && ![...only].some((o) => r.id.includes(o))) continue;
  let best: Run | null = null;
  let peak = 0;
  for (let i = 0; i < reps; i++) {
    const run = r.run(r.out);
    peak = Math.max(peak, run.rssKiB);
    if (best === null || run.wall < best.wall) best = run;
    if (i === 0 && r.check === "bfc") {
      const t = containerTotals(r.out);
      if (t.bytes !== meta.bytes)
        throw new Error(`${r.id}: ${t.bytes} content bytes, expected ${meta.bytes}`);
      if (t.entries < meta.entries - 1)
        throw new Error(`${r.id}: ${t.entries} entries, expected ${meta.entries}`);
    }
    fs.rmSync(r.out, { force: true });
  }
  const b = best as Run;
  const row = {
    id: r.id,
    seconds: b.wall,
    mbPerSecond: meta.bytes / MB / b.wall,
    entriesPerSecond: meta.entries / b.wall,
    peakRssMiB: peak / 1024,
    commands: r.commands,
  };
  results.push(row);
  console.log(
    `${r.label.padEnd(42)} ${b.wall.toFixed(2).padStart(6)} ${row.mbPerSecond.toFixed(0).padStart(8)} ${row.entriesPerSecond.toFixed(0).padStart(11)} ${row.peakRssMiB.toFixed(0).padStart(14)}`,
  );
}
console.log("\ncommands:");
for (const r of routes())
  if (!only || [...only].some((o) => r.id.includes(o))) console.log(`  ${r.id}: ${r.commands.join(" && ")}`);
fs.mkdirSync(path.join(import.meta.dirname, "results"), { recursive: true });
fs.writeFileSync(
  path.join(import.meta.dirname, "results", "disk-import.json"),
  JSON.stringify({ load, reps, dataset: meta, results }, null, 2),
);
fs.rmSync(tmp, { recursive: true, force: true });
if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true });
