/**
 * The "disk-import" group: `bfc import` of an ext4 disk image against the route users take today,
 * mounting the image with fuse2fs and packing the mountpoint.
 *
 * Dataset (kept in bench/data/<scale>/disk-import/, rebuilt when its manifest does not match): a
 * source tree of ~30k node_modules-like small files (3k with --quick) plus five large files, an ext4
 * image of it (`mkfs.ext4 -d`, 1 GiB; 256 MiB with --quick) and a zstd-compressed QCOW2 of that image.
 * Columns, each a whole command (or pipeline) in fresh processes, page cache warm, best of N:
 *   bfc-import          bfc import [-c zstd -l 3] <image> out.bfc           (raw or QCOW2 directly)
 *   fuse2fs-bfc         [qemu-img convert -O raw] + fuse2fs -o ro,fakeroot + bfc create + fusermount -u
 *   fuse2fs-squashfs    the same with mksquashfs (-noI -noD -noF -noX, or -comp zstd -Xcompression-level 3)
 * MB/s counts content bytes, entries/s every entry (lost+found included). Peak RSS is the packing
 * process's (bfc import / bfc create / mksquashfs, from GNU time); fuse2fs's own peak is noted.
 * Every container made is checked once (content bytes and entries).
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Reader } from "../src/container/reader.ts";
import { convertToQcow2, missingTools } from "../test/disk/disk-fixtures.ts";
import { fillFrom, makePool, prng } from "./datasets.ts";
import type { RuntimeContext } from "./runtime.ts";
import { MKSQUASHFS_ZSTD3, type ToolId } from "./tools.ts";

export const DISK_IMPORT_COLUMNS = [
  "bfc-import",
  "fuse2fs-bfc",
  "fuse2fs-squashfs",
] as const satisfies readonly ToolId[];
type Col = (typeof DISK_IMPORT_COLUMNS)[number];

/** The runtime group's context, with the scale instead of a byte count. */
export interface DiskImportContext extends Omit<RuntimeContext, "bytes"> {
  quick: boolean;
}

const MiB = 1024 * 1024;
const SOURCES = ["raw", "qcow2"] as const;
const COMPS = ["none", "zstd"] as const;
type Source = (typeof SOURCES)[number];
type Comp = (typeof COMPS)[number];

interface Shape {
  files: number;
  large: number[];
  imageSize: string;
}
const SHAPES: Record<"full" | "quick", Shape> = {
  full: { files: 30_000, large: [48, 64, 96, 128, 160].map((m) => m * MiB), imageSize: "1G" },
  quick: { files: 3_000, large: [16, 32].map((m) => m * MiB), imageSize: "256M" },
};

export function diskImportRows(quick: boolean): { key: string; label: string; target?: string }[] {
  const size = SHAPES[quick ? "quick" : "full"].imageSize.replace("G", " GiB").replace("M", " MiB");
  const rows: { key: string; label: string; target?: string }[] = [];
  for (const s of SOURCES) {
    for (const c of COMPS) {
      const what = `import ${size} ext4 image (${s === "raw" ? "raw" : "qcow2 zstd"}) ${c}`;
      const k = `diskimport.${s}.${c}`;
      rows.push({ key: `${k}.MBps`, label: `${what}, MB/s`, target: "> fuse2fs routes" });
      rows.push({ key: `${k}.entriesps`, label: `${what}, entries/s`, target: "> fuse2fs routes" });
      rows.push({ key: `${k}.rss`, label: `${what}, peak RSS MiB`, target: "< 200" });
    }
  }
  return rows;
}

/** Why the group cannot run here, or undefined. */
export function diskImportSkipReason(): string | undefined {
  const missing = missingTools(["mkfs.ext4", "qemu-img", "fuse2fs", "mksquashfs", "fusermount"]);
  if (missing.length > 0) {
    return `needs ${missing.join(", ")} (apt-get install e2fsprogs qemu-utils fuse2fs squashfs-tools fuse3)`;
  }
  if (!fs.existsSync("/usr/bin/time")) return "needs GNU time (apt-get install time)";
  if (!fs.existsSync("/dev/fuse")) return "/dev/fuse is missing (fuse2fs)";
  return undefined;
}

interface Dataset {
  version: number;
  files: number;
  /** Content bytes of regular files. */
  bytes: number;
  /** Every entry of the filesystem but its root (lost+found included). */
  entries: number;
  image: string;
  qcow: string;
}

/** The source tree: `node_modules/` of small files in packages, and `big/` of large files. */
function generate(src: string, shape: Shape): { files: number; bytes: number; entries: number } {
  fs.rmSync(src, { recursive: true, force: true });
  const pool = makePool(7);
  const rand = prng(21);
  const words =
    "core util http parse stream buffer path event async promise json yaml lodash react babel types glob minimatch debug chalk".split(
      " ",
    );
  let files = 0;
  let bytes = 0;
  const dirs = new Set<string>();
  const write = (rel: string, size: number) => {
    const full = path.join(src, rel);
    for (let d = path.dirname(rel); d !== "." && !dirs.has(d); d = path.dirname(d)) dirs.add(d);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    const buf = Buffer.allocUnsafe(size);
    fillFrom(pool, rand, buf, `// ${rel}\n`);
    fs.writeFileSync(full, buf);
    files++;
    bytes += size;
  };
  for (let pkg = 0; files < shape.files; pkg++) {
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
  dirs.add("big");
  fs.mkdirSync(path.join(src, "big"), { recursive: true });
  shape.large.forEach((size, k) => {
    const fd = fs.openSync(path.join(src, "big", `blob-${k}.bin`), "w");
    for (let done = 0; done < size; done += chunk.length) {
      fillFrom(pool, rand, chunk);
      fs.writeSync(fd, chunk, 0, Math.min(chunk.length, size - done), done);
    }
    fs.closeSync(fd);
    files++;
    bytes += size;
  });
  // + lost+found, made by mkfs.
  return { files, bytes, entries: files + dirs.size + 1 };
}

function ensureDataset(ctx: DiskImportContext): Dataset {
  const shape = SHAPES[ctx.quick ? "quick" : "full"];
  const dir = path.join(ctx.data, "disk-import");
  const manifest = path.join(dir, "manifest.json");
  const image = path.join(dir, "rootfs.img");
  const qcow = path.join(dir, "rootfs-zstd.qcow2");
  try {
    const m = JSON.parse(fs.readFileSync(manifest, "utf8")) as Dataset & { shape: Shape };
    if (m.version === 2 && JSON.stringify(m.shape) === JSON.stringify(shape) && fs.existsSync(qcow)) {
      return { ...m, image, qcow };
    }
  } catch {
    // (re)build
  }
  ctx.progress(`disk-import: generating ${shape.files} files and a ${shape.imageSize} ext4 image`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const src = path.join(dir, "src");
  const g = generate(src, shape);
  sh(["mkfs.ext4", "-q", "-F", "-E", "root_owner=0:0", "-d", src, image, shape.imageSize]);
  convertToQcow2(image, qcow, { compression: "zstd" });
  // The image is what is measured; the tree is not needed again.
  fs.rmSync(src, { recursive: true, force: true });
  const d: Dataset = { version: 2, ...g, image, qcow };
  fs.writeFileSync(manifest, JSON.stringify({ ...d, shape }));
  return d;
}

function sh(argv: string[]): void {
  const r = spawnSync(argv[0] as string, argv.slice(1), {
    stdio: ["ignore", "ignore", "pipe"],
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr || r.error?.message}`);
}

interface Run {
  seconds: number;
  rssKiB: number;
  /** fuse2fs's peak RSS (VmHWM) in the fuse routes. */
  fuseKiB?: number;
}

/** Runs a command under GNU time: wall seconds and its peak RSS. */
function timed(argv: string[], tmp: string): Run {
  const out = path.join(tmp, "time.txt");
  const t0 = performance.now();
  const r = spawnSync("/usr/bin/time", ["-f", "%M", "-o", out, ...argv], {
    stdio: ["ignore", "ignore", "pipe"],
    encoding: "utf8",
  });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${argv.join(" ")}: exit ${r.status}: ${r.stderr.slice(-500)}`);
  return { seconds, rssKiB: Number(fs.readFileSync(out, "utf8").trim().split("\n").pop()) };
}

/** fuse2fs processes serving `mnt` (found in /proc by their argv; they were started here). */
function fuse2fsPids(mnt: string): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
      if (path.basename(argv[0] ?? "") === "fuse2fs" && argv.includes(mnt)) pids.push(Number(name));
    } catch {
      // gone
    }
  }
  return pids;
}

function peakKiB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Mounts with fuse2fs, runs `pack` under GNU time, unmounts; the seconds include all three. */
function viaFuse(img: string, mnt: string, pack: string[], tmp: string): Run {
  fs.mkdirSync(mnt, { recursive: true });
  const t0 = performance.now();
  sh(["fuse2fs", "-o", "ro,fakeroot", img, mnt]);
  let r: Run;
  let fuseKiB = 0;
  try {
    r = timed(pack, tmp);
    for (const pid of fuse2fsPids(mnt)) fuseKiB = Math.max(fuseKiB, peakKiB(pid));
  } finally {
    spawnSync("fusermount", ["-u", mnt]);
  }
  return { seconds: (performance.now() - t0) / 1000, rssKiB: r.rssKiB, fuseKiB };
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

interface Route {
  col: Col;
  /** The commands, for the notes. */
  commands: string[];
  run(): Run;
  /** The container to check (bfc routes), and the entries it must hold. */
  check?: { file: string; entries: number };
}

function routes(ctx: DiskImportContext, d: Dataset, source: Source, comp: Comp): Route[] {
  const dir = path.join(ctx.tmp, "disk-import");
  const out = path.join(dir, "out.bfc");
  const sqfs = path.join(dir, "out.sqfs");
  const mnt = path.join(dir, "mnt");
  const converted = path.join(dir, "converted.img");
  const img = source === "raw" ? d.image : d.qcow;
  const cflag = comp === "zstd" ? ["-c", "zstd", "-l", "3"] : [];
  const sqflags =
    comp === "zstd"
      ? MKSQUASHFS_ZSTD3
      : ["-noappend", "-no-progress", "-quiet", "-noI", "-noD", "-noF", "-noX"];
  const name = path.basename(img);
  // QCOW2 through fuse2fs needs a raw image first: the conversion is part of that route.
  const convert = (): number => {
    if (source === "raw") return 0;
    const t0 = performance.now();
    sh(["qemu-img", "convert", "-O", "raw", img, converted]);
    return (performance.now() - t0) / 1000;
  };
  const fuseImg = source === "raw" ? img : converted;
  const pre = source === "raw" ? [] : [`qemu-img convert -O raw ${name} converted.img`];
  const withConvert = (pack: string[]): Run => {
    const extra = convert();
    try {
      const r = viaFuse(fuseImg, mnt, pack, dir);
      return { ...r, seconds: r.seconds + extra };
    } finally {
      if (source !== "raw") fs.rmSync(converted, { force: true });
    }
  };
  return [
    {
      col: "bfc-import",
      commands: [`bfc import -f ${cflag.join(" ")} ${name} out.bfc`.replace(/ +/g, " ")],
      run: () => timed([...ctx.cli, "-q", "import", "-f", "--no-progress", ...cflag, img, out], dir),
      check: { file: out, entries: d.entries },
    },
    {
      col: "fuse2fs-bfc",
      commands: [
        ...pre,
        `fuse2fs -o ro,fakeroot ${path.basename(fuseImg)} mnt`,
        `bfc create -f ${cflag.join(" ")} out.bfc mnt`.replace(/ +/g, " "),
        "fusermount -u mnt",
      ],
      run: () => withConvert([...ctx.cli, "-q", "create", "-f", "--no-progress", ...cflag, out, mnt]),
      // Stored under the mountpoint's name: one more directory.
      check: { file: out, entries: d.entries + 1 },
    },
    {
      col: "fuse2fs-squashfs",
      commands: [
        ...pre,
        `fuse2fs -o ro,fakeroot ${path.basename(fuseImg)} mnt`,
        `mksquashfs mnt out.sqfs ${sqflags.join(" ")}`,
        "fusermount -u mnt",
      ],
      run: () => withConvert(["mksquashfs", mnt, sqfs, ...sqflags]),
    },
  ];
}

export function measureDiskImport(ctx: DiskImportContext): void {
  const d = ensureDataset(ctx);
  const dir = path.join(ctx.tmp, "disk-import");
  fs.mkdirSync(dir, { recursive: true });
  const MB = 1e6;
  ctx.note(
    `disk-import: ${d.entries} entries, ${d.files} files, ${(d.bytes / MB).toFixed(0)} MB of content; ext4 image ` +
      `${(fs.statSync(d.image).size / MiB).toFixed(0)} MiB, qcow2 zstd ${(fs.statSync(d.qcow).size / MiB).toFixed(0)} MiB`,
  );
  // What the import's peak RSS stands on: run from src/, Node's TypeScript stripping alone costs
  // ~33 MiB in the main isolate (bfc --version: 100 against 66 MiB) and ~10 more in the import
  // thread, which the bfc binary (dist/) does not pay.
  const bare = timed([...ctx.cli, "--version"], dir);
  const fromSrc = ctx.cli.some((a) => a.endsWith(".ts"));
  ctx.note(
    `disk-import: bfc --version alone peaks at ${(bare.rssKiB / 1024).toFixed(0)} MiB here (library ${fromSrc ? "src/, types stripped by Node: --dist measures what the bfc binary uses" : "dist/"})`,
  );
  try {
    for (const source of SOURCES) {
      for (const comp of COMPS) {
        const key = `diskimport.${source}.${comp}`;
        for (const r of routes(ctx, d, source, comp)) {
          ctx.progress(`disk-import: ${source} ${comp} ${r.col}`);
          let best: Run | null = null;
          let rss = 0;
          let fuseKiB = 0;
          try {
            for (let i = 0; i < ctx.reps; i++) {
              const run = r.run();
              rss = Math.max(rss, run.rssKiB);
              fuseKiB = Math.max(fuseKiB, run.fuseKiB ?? 0);
              if (best === null || run.seconds < best.seconds) best = run;
              if (i === 0 && r.check) {
                const t = containerTotals(r.check.file);
                if (t.bytes !== d.bytes || t.entries !== r.check.entries) {
                  throw new Error(
                    `${t.entries} entries and ${t.bytes} content bytes, expected ${r.check.entries} and ${d.bytes}`,
                  );
                }
              }
            }
          } catch (e) {
            ctx.put(`${key}.MBps`, r.col, "fails");
            ctx.note(`disk-import ${key} ${r.col}: ${(e as Error).message.slice(0, 300)}`);
            continue;
          } finally {
            fs.rmSync(path.join(dir, "out.bfc"), { force: true });
            fs.rmSync(path.join(dir, "out.sqfs"), { force: true });
          }
          const b = best as Run;
          ctx.put(`${key}.MBps`, r.col, d.bytes / MB / b.seconds);
          ctx.put(`${key}.entriesps`, r.col, d.entries / b.seconds);
          ctx.put(`${key}.rss`, r.col, rss / 1024);
          if (fuseKiB > 0)
            ctx.note(`disk-import ${key} ${r.col}: fuse2fs peak RSS ${(fuseKiB / 1024).toFixed(0)} MiB`);
          if (source === "qcow2" && comp === "zstd")
            ctx.note(`disk-import ${r.col}: ${r.commands.join(" && ")}`);
        }
      }
    }
  } finally {
    spawnSync("fusermount", ["-u", path.join(dir, "mnt")], { stdio: "ignore" });
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
