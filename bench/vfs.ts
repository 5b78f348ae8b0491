/**
 * The "vfs" group: bfcfs's VFS (`createVfs()` + a mounted BFC container) against two zip-backed
 * anchors over the same tree (dataset e): @yarnpkg/libzip's ZipFS and @zenfs/core with the
 * @zenfs/archives Zip backend. Builds the four archives (BFC zstd-3 and uncompressed, zip deflate and
 * stored) untimed, then runs every row's operation in fresh processes (bench/tasks/vfs.ts).
 */
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { type Dataset, FLAT_ENTRIES, PAGE_SIZE, prng } from "./datasets.ts";
import type { Cell } from "./report.ts";
import type { VfsArgs, VfsImpl, VfsStep, VfsStepResult } from "./tasks/vfs.ts";
import { type Measure, runCommand, type ToolId } from "./tools.ts";

export const VFS_ANCHORS = ["yarn-zipfs", "zenfs"] as const satisfies readonly ToolId[];
const IMPLS: VfsImpl[] = ["bfcfs", ...VFS_ANCHORS];

/** Paths statted (timed) and read, per scale; warm-up calls use other paths. */
const STAT_PATHS = 20_000;
const STAT_WARM = 2_000;
const READ_FILES = 5_000;
const READ_WARM = 500;
const RANDOM_READS = 20_000;
const READDIR_CALLS = 200;

export interface VfsContext {
  task(name: string, args: Record<string, unknown>): Measure;
  put(key: string, tool: ToolId, v: Cell): void;
  note(msg: string): void;
  progress(msg: string): void;
  reps: number;
  /** Runs for zenfs, whose mount takes minutes at full scale. */
  zenfsReps: number;
  tmp: string;
}

export interface VfsRow {
  key: string;
  label: string;
  target?: string;
  /** Higher is better (throughput) or lower (time). */
  higher: boolean;
  /** The issue's absolute bound, if any, besides beating both anchors. */
  bound?: number;
}

/** The group's rows, in table order. */
export function vfsRows(d: string): VfsRow[] {
  return [
    {
      key: "vfs.mount.ms",
      label: `vfs mount zstd-3/deflate ${d}, ms`,
      target: "< anchors",
      higher: false,
    },
    {
      key: "vfs.mount.none.ms",
      label: `vfs mount none/stored ${d}, ms`,
      target: "< anchors",
      higher: false,
    },
    {
      key: "vfs.stat.us",
      label: `vfs statSync ${STAT_PATHS} random paths ${d}, µs median`,
      target: "<= 5, < anchors",
      higher: false,
      bound: 5,
    },
    {
      key: "vfs.readfile.filesps",
      label: `vfs readFileSync 4 KiB files ${d}, files/s`,
      target: "> anchors",
      higher: true,
    },
    {
      key: "vfs.randread.MBps",
      label: `vfs random 4 KiB readSync, none/stored ${d}, MB/s`,
      target: ">= 200, > anchors",
      higher: true,
      bound: 200,
    },
    {
      key: "vfs.randread.zstd.MBps",
      label: `vfs random 4 KiB readSync, zstd-3/deflate ${d}, MB/s`,
      higher: true,
    },
    {
      key: "vfs.readdir.ms",
      label: `vfs readdirSync ${FLAT_ENTRIES} entries ${d}, ms median`,
      target: "<= 1, < anchors",
      higher: false,
      bound: 1,
    },
    {
      key: "vfs.rss",
      label: `vfs peak RSS, process of the stat row ${d}, MiB`,
      higher: false,
    },
  ];
}

/** Installed versions of the anchors, for the JSON report. */
export function anchorVersions(): Record<string, string> {
  const req = createRequire(import.meta.url);
  const v = (pkg: string) => {
    try {
      return (req(`${pkg}/package.json`) as { version: string }).version;
    } catch {
      return "missing";
    }
  };
  return {
    "yarn-zipfs": `@yarnpkg/libzip ${v("@yarnpkg/libzip")}, @yarnpkg/fslib ${v("@yarnpkg/fslib")}`,
    zenfs: `@zenfs/core ${v("@zenfs/core")}, @zenfs/archives ${v("@zenfs/archives")}`,
  };
}

/** Every entry below `root` (files and directories), relative, in a stable order. */
function entriesOf(root: string): string[] {
  return fs
    .readdirSync(root, { recursive: true, withFileTypes: true })
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)).split(path.sep).join("/"))
    .sort();
}

function shuffle<T>(xs: T[], seed: number): T[] {
  const rand = prng(seed);
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** `n` paths from `pool`, distinct while the pool lasts (the quick scale has fewer than asked). */
function take(pool: string[], from: number, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(pool[(from + i) % pool.length]);
  return out;
}

type Comp = "zstd" | "none";

export function measureVfs(ctx: VfsContext, d: Dataset): void {
  const layout = d.tree!;
  const root = path.join(d.parent, d.name);
  const tmp = (f: string) => path.join(ctx.tmp, f);

  // Path lists, shared by every implementation.
  const all = shuffle(entriesOf(root), 21);
  const statList = tmp("vfs-stat.json");
  fs.writeFileSync(
    statList,
    JSON.stringify({ measure: take(all, 0, STAT_PATHS), warm: take(all, STAT_PATHS, STAT_WARM) }),
  );
  const pages = shuffle(
    layout.pageDirs.flatMap((dir) => fs.readdirSync(path.join(root, dir)).map((n) => `${dir}/${n}`)),
    22,
  );
  const flat = fs.readdirSync(path.join(root, layout.flat)).map((n) => `${layout.flat}/${n}`);
  if (pages.length < READ_FILES) ctx.note(`vfs: only ${pages.length} distinct 4 KiB files at this scale`);
  const readList = tmp("vfs-read.json");
  fs.writeFileSync(
    readList,
    JSON.stringify({ measure: pages.slice(0, READ_FILES), warm: take(shuffle(flat, 23), 0, READ_WARM) }),
  );
  const depth = new Map<number, number>();
  for (const p of take(all, 0, STAT_PATHS)) {
    const k = p.split("/").length;
    depth.set(k, (depth.get(k) ?? 0) + 1);
  }
  ctx.note(
    `vfs: (e) has ${all.length} entries; statted paths by depth below the tree root: ${[...depth]
      .sort((x, y) => x[0] - y[0])
      .map(([k, n]) => `${k}:${n}`)
      .join(" ")}; ${Math.min(pages.length, READ_FILES)} distinct ${PAGE_SIZE}-byte files read`,
  );

  // The archives, built untimed.
  const archives: Record<string, string | undefined> = {};
  const build = (key: string, out: string, make: () => Measure) => {
    ctx.progress(`  vfs: build ${path.basename(out)} (untimed)`);
    fs.rmSync(out, { force: true });
    const m = make();
    if (m.ok) archives[key] = out;
    else ctx.note(`vfs: cannot build ${path.basename(out)}: ${m.error}`);
  };
  for (const c of ["zstd", "none"] as const) {
    build(`bfcfs.${c}`, tmp(`vfs-${c}.bfc`), () =>
      ctx.task("create", {
        parent: d.parent,
        name: d.name,
        out: tmp(`vfs-${c}.bfc`),
        compression: c,
        level: c === "zstd" ? 3 : undefined,
      }),
    );
  }
  const hasZip = runCommand(["zip", "-v"]).ok;
  if (!hasZip) ctx.note("vfs: the anchors are n/a: the zip command is not installed (apt-get install zip)");
  else {
    for (const c of ["zstd", "none"] as const) {
      const out = tmp(`vfs-${c === "zstd" ? "deflate" : "stored"}.zip`);
      const level = c === "zstd" ? [] : ["-0"];
      build(`zip.${c}`, out, () =>
        runCommand(["zip", "-q", "-r", "-X", ...level, out, d.name], { cwd: d.parent }),
      );
    }
  }
  const sizes = Object.values(archives)
    .filter((a): a is string => a !== undefined)
    .map((a) => `${path.basename(a)} ${(fs.statSync(a).size / 1e6).toFixed(1)} MB`);
  ctx.note(`vfs: archives of (e): ${sizes.join(", ")}`);

  const archiveOf = (impl: VfsImpl, c: Comp) => archives[impl === "bfcfs" ? `bfcfs.${c}` : `zip.${c}`];

  // What each row runs, on which archive, and where its figure goes.
  interface Job {
    c: Comp;
    step: VfsStep;
    key: string;
  }
  const jobs: Job[] = [
    { c: "zstd", step: { op: "stat", list: statList }, key: "vfs.stat.us" },
    { c: "zstd", step: { op: "readfile", list: readList }, key: "vfs.readfile.filesps" },
    { c: "zstd", step: { op: "readdir", dir: layout.flat, calls: READDIR_CALLS }, key: "vfs.readdir.ms" },
    { c: "none", step: randread(layout.big, layout.bigSize), key: "vfs.randread.MBps" },
    { c: "zstd", step: randread(layout.big, layout.bigSize), key: "vfs.randread.zstd.MBps" },
  ];
  const higher = new Map(vfsRows("").map((r) => [r.key, r.higher]));

  for (const impl of IMPLS) {
    // zenfs parses its central directory slowly and inflates every entry at mount (minutes at full
    // scale): all of an archive's rows share one mount there, and full scale runs it once.
    const shared = impl === "zenfs";
    const reps = shared ? ctx.zenfsReps : ctx.reps;
    const batches: Job[][] = shared
      ? (["zstd", "none"] as const).map((c) => jobs.filter((j) => j.c === c))
      : jobs.map((j) => [j]);
    const best = new Map<string, number>();
    const mount: Record<Comp, number> = { zstd: Number.POSITIVE_INFINITY, none: Number.POSITIVE_INFINITY };
    let statRss = 0;
    for (const batch of batches) {
      const c = batch[0].c;
      const archive = archiveOf(impl, c);
      if (!archive) {
        for (const j of batch) ctx.put(j.key, impl, "n/a");
        continue;
      }
      const ops = batch.map((j) => j.step.op).join("+");
      ctx.progress(`  ${impl}: vfs ${ops} on ${path.basename(archive)} x${reps}`);
      const failed = new Set<string>();
      for (let i = 0; i < reps; i++) {
        warmPageCache(archive);
        const args: VfsArgs = { impl, archive, root: d.name, steps: batch.map((j) => j.step) };
        const m = ctx.task("vfs", args as unknown as Record<string, unknown>);
        const det = (m.details ?? {}) as { mountMs?: number; results?: VfsStepResult[]; error?: string };
        if (!m.ok || !det.results) {
          for (const j of batch) failed.add(j.key);
          ctx.note(
            `vfs: ${impl} ${ops} (${path.basename(archive)}): n/a: ${det.error ?? m.error ?? "failed"}`,
          );
          break;
        }
        if (typeof det.mountMs === "number") mount[c] = Math.min(mount[c], det.mountMs);
        batch.forEach((j, k) => {
          const r = det.results![k];
          if (failed.has(j.key)) return;
          const bad = r.error ?? (r.ok === false ? `wrong byte count (${String(r.bytes)})` : undefined);
          if (bad !== undefined || typeof r.value !== "number" || !Number.isFinite(r.value)) {
            failed.add(j.key);
            ctx.note(`vfs: ${impl} ${j.key}: n/a: ${bad ?? "no figure"}`);
            return;
          }
          const prev = best.get(j.key);
          const up = higher.get(j.key);
          if (prev === undefined || (up ? r.value > prev : r.value < prev)) best.set(j.key, r.value);
          if (j.step.op === "stat" && m.rssKiB !== undefined) statRss = Math.max(statRss, m.rssKiB);
        });
      }
      for (const j of batch) ctx.put(j.key, impl, failed.has(j.key) ? "n/a" : (best.get(j.key) ?? "n/a"));
    }
    if (statRss > 0) ctx.put("vfs.rss", impl, statRss / 1024);
    ctx.put("vfs.mount.ms", impl, Number.isFinite(mount.zstd) ? mount.zstd : "n/a");
    ctx.put("vfs.mount.none.ms", impl, Number.isFinite(mount.none) ? mount.none : "n/a");
  }
}

/**
 * Reads the archive once, untimed, so every run starts with it in the page cache as the rows
 * assume, even when something else on the machine dropped the caches in between.
 */
function warmPageCache(file: string): void {
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let pos = 0; fs.readSync(fd, buf, 0, buf.length, pos) > 0; pos += buf.length) {
      // reading is the point
    }
  } finally {
    fs.closeSync(fd);
  }
}

function randread(file: string, size: number): VfsStep {
  return { op: "randread", file, size, reads: RANDOM_READS };
}

/** Notes for the rows where bfcfs misses the issue's bound or loses to an anchor. */
export function vfsVerdicts(values: Map<string, Partial<Record<ToolId, Cell>>>): string[] {
  const out: string[] = [];
  for (const r of vfsRows("")) {
    const v = values.get(r.key);
    const ours = v?.bfcfs;
    if (typeof ours !== "number" || r.target === undefined) continue;
    const worse = (a: number, b: number) => (r.higher ? a < b : a > b);
    if (r.bound !== undefined && worse(ours, r.bound)) out.push(`vfs: bfcfs misses the target on ${r.key}`);
    for (const a of VFS_ANCHORS) {
      const theirs = v?.[a];
      if (typeof theirs === "number" && worse(ours, theirs))
        out.push(`vfs: bfcfs is slower than ${a} on ${r.key}`);
    }
  }
  return out;
}
