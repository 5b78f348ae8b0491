/**
 * Writable FUSE benchmark (the writable-containers issue): a `git clone`-like workload, untar of a
 * node_modules-like tree of small files, into
 *   - `bfc mount --rw` of a new container (default options: stored as is, commit every 30 s),
 *   - the same with `-c zstd`,
 *   - an ext4 image mounted with fuse2fs (the FUSE route to a single-file filesystem today),
 *   - a plain directory on the disk the others live on (no FUSE: the upper reference).
 * Each run: mount, `tar -xf` (timed), then what makes the data durable in the single file (timed
 * separately): unmount for the FUSE targets (bfc's final commit, fuse2fs's flush), `sync -f` for
 * the directory. Best of N; the file's size afterwards.
 *
 *   node bench/fuse-rw.ts [--quick] [--reps N] [--files N]
 *
 * Needs root and /dev/fuse; fuse2fs (Debian `fuse2fs`) and mke2fs are optional columns.
 */
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { fillFrom, makePool, prng } from "./datasets.ts";

const { values: opts } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    reps: { type: "string" },
    files: { type: "string" },
  },
});
const FILES = opts.files ? Number(opts.files) : opts.quick ? 5_000 : 30_000;
const reps = opts.reps ? Number(opts.reps) : opts.quick ? 1 : 2;
const BENCH = path.dirname(new URL(import.meta.url).pathname);
const CLI = [process.execPath, path.join(BENCH, "..", "src", "cli", "main.ts")];
const DATA = path.join(BENCH, "data", "fuse-rw");
const FUSERMOUNT = fs.existsSync("/usr/bin/fusermount3") ? "fusermount3" : "fusermount";

function have(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

function skipReason(): string | undefined {
  if (!fs.existsSync("/dev/fuse")) return "no /dev/fuse";
  if (process.getuid?.() !== 0) return "not root (the kernel FUSE backend and fuse2fs mounts need it)";
  if (!have("tar")) return "no tar";
  return undefined;
}

/** A node_modules-like tree: packages of nested folders, files of 100 B – 16 KiB (skewed small). */
function makeTarball(): { tar: string; bytes: number } {
  const tar = path.join(DATA, `tree-${FILES}.tar`);
  const meta = `${tar}.json`;
  if (fs.existsSync(tar) && fs.existsSync(meta)) return JSON.parse(fs.readFileSync(meta, "utf8"));
  fs.rmSync(DATA, { recursive: true, force: true });
  const root = path.join(DATA, "src");
  const rand = prng(30_000);
  const pool = makePool(7);
  let bytes = 0;
  for (let i = 0, pkg = 0; i < FILES; pkg++) {
    const base = path.join(root, "node_modules", `pkg-${pkg}`);
    const dirs = [base, path.join(base, "lib"), path.join(base, "lib", "util"), path.join(base, "dist")];
    for (const d of dirs) fs.mkdirSync(d, { recursive: true });
    const n = 5 + Math.floor(rand() * 60);
    for (let k = 0; k < n && i < FILES; k++, i++) {
      const size = 100 + Math.floor(rand() ** 3 * 16 * 1024);
      const buf = Buffer.allocUnsafe(size);
      fillFrom(pool, rand, buf, `// ${pkg}/${k}\n`);
      const dir = dirs[k % dirs.length] as string;
      fs.writeFileSync(path.join(dir, `file-${k}.js`), buf);
      bytes += size;
    }
  }
  execFileSync("tar", ["-cf", tar, "-C", root, "."]);
  fs.rmSync(root, { recursive: true, force: true });
  const out = { tar, bytes };
  fs.writeFileSync(meta, JSON.stringify(out));
  return out;
}

function sh(argv: string[], cwd?: string): void {
  const r = spawnSync(argv[0] as string, argv.slice(1), { cwd, stdio: ["ignore", "ignore", "pipe"] });
  if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr?.toString().trim() || r.status}`);
}

function timed(f: () => void): number {
  const t0 = performance.now();
  f();
  return (performance.now() - t0) / 1000;
}

function mounted(mnt: string): boolean {
  return fs.readFileSync("/proc/self/mountinfo", "utf8").includes(` ${mnt} `);
}

interface Result {
  untar: number;
  durable: number;
  size: number;
}

interface Target {
  id: string;
  label: string;
  /** Prepares an empty target; returns the folder to untar into. */
  setup(dir: string): string;
  /** Makes the data durable in its file (timed), leaving nothing mounted. */
  finish(dir: string, mnt: string): void;
  size(dir: string): number;
}

const bfcTarget = (id: string, extra: string[]): Target => ({
  id,
  label: `bfc mount --rw${extra.length ? ` ${extra.join(" ")}` : ""}`,
  setup(dir) {
    const empty = path.join(dir, "empty");
    fs.mkdirSync(empty);
    sh([...CLI, "create", path.join(dir, "c.bfc"), empty]);
    const mnt = path.join(dir, "mnt");
    fs.mkdirSync(mnt);
    sh([...CLI, "mount", "--rw", ...extra, path.join(dir, "c.bfc"), mnt]);
    return mnt;
  },
  finish(_dir, mnt) {
    sh([...CLI, "umount", mnt]);
  },
  size: (dir) => fs.statSync(path.join(dir, "c.bfc")).size,
});

const targets: Target[] = [
  bfcTarget("bfc", []),
  bfcTarget("bfc-zstd", ["-c", "zstd"]),
  {
    id: "fuse2fs",
    label: "fuse2fs (ext4 image)",
    setup(dir) {
      const img = path.join(dir, "ext4.img");
      fs.writeFileSync(img, "");
      fs.truncateSync(img, 4 * 1024 ** 3);
      sh(["mke2fs", "-q", "-F", "-t", "ext4", img]);
      const mnt = path.join(dir, "mnt");
      fs.mkdirSync(mnt);
      sh(["fuse2fs", img, mnt, "-o", "rw,fakeroot"]);
      return mnt;
    },
    finish(_dir, mnt) {
      sh([FUSERMOUNT, "-u", mnt]);
      // fuse2fs flushes and exits after the unmount: wait for it to let go of the image.
      const end = Date.now() + 120_000;
      while (spawnSync("pgrep", ["-f", `fuse2fs .*${mnt}`]).status === 0 && Date.now() < end) {
        spawnSync("sleep", ["0.05"]);
      }
    },
    size: (dir) => fs.statSync(path.join(dir, "ext4.img")).blocks * 512,
  },
  {
    id: "dir",
    label: "plain directory",
    setup(dir) {
      const out = path.join(dir, "out");
      fs.mkdirSync(out);
      return out;
    },
    finish(_dir, mnt) {
      sh(["sync", "-f", mnt]);
    },
    size: (dir) =>
      Number(
        execFileSync("du", ["-sB1", path.join(dir, "out")])
          .toString()
          .split("\t")[0],
      ),
  },
];

const skip = skipReason();
if (skip) {
  console.log(`fuse-rw: skipped: ${skip}`);
  process.exit(0);
}
const { tar, bytes } = makeTarball();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bfc-bench-fuse-rw-"));
const rows: { t: Target; best?: Result; note?: string }[] = [];
try {
  for (const t of targets) {
    if (t.id === "fuse2fs" && !(have("fuse2fs") && have("mke2fs"))) {
      rows.push({ t, note: "fuse2fs or mke2fs not installed" });
      continue;
    }
    let best: Result | undefined;
    for (let k = 0; k < reps; k++) {
      const dir = fs.mkdtempSync(path.join(tmp, `${t.id}-`));
      let mnt = "";
      try {
        mnt = t.setup(dir);
        // Same starting point for every run: the tarball in the page cache, dirty pages written.
        execFileSync("cat", [tar], { stdio: ["ignore", "ignore", "ignore"] });
        sh(["sync"]);
        const untar = timed(() => sh(["tar", "-xf", tar, "-C", mnt]));
        const durable = timed(() => t.finish(dir, mnt));
        const r = { untar, durable, size: t.size(dir) };
        if (!best || r.untar + r.durable < best.untar + best.durable) best = r;
        process.stderr.write(
          `fuse-rw: ${t.id} run ${k + 1}: untar ${untar.toFixed(2)} s, durable ${durable.toFixed(2)} s\n`,
        );
      } finally {
        if (mnt && mounted(mnt)) spawnSync(FUSERMOUNT, ["-uz", mnt]);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    rows.push({ t, best });
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}

const MB = 1e6;
console.log(
  `\nwritable FUSE: untar of ${FILES.toLocaleString("en")} files (${(bytes / MB).toFixed(1)} MB, node_modules-like), best of ${reps}`,
);
console.log(
  [
    "target".padEnd(30),
    "untar s".padStart(8),
    "files/s".padStart(9),
    "durable s".padStart(10),
    "total s".padStart(8),
    "file MB".padStart(8),
  ].join(" "),
);
for (const { t, best, note } of rows) {
  if (!best) {
    console.log(`${t.label.padEnd(30)} ${note ?? "failed"}`);
    continue;
  }
  console.log(
    [
      t.label.padEnd(30),
      best.untar.toFixed(2).padStart(8),
      Math.round(FILES / best.untar)
        .toLocaleString("en")
        .padStart(9),
      best.durable.toFixed(2).padStart(10),
      (best.untar + best.durable).toFixed(2).padStart(8),
      (best.size / MB).toFixed(1).padStart(8),
    ].join(" "),
  );
}
console.log(
  "durable: bfc = `bfc umount` (the final commit), fuse2fs = unmount until the process has flushed and exited, dir = `sync -f`.",
);
