/**
 * Benchmark harness: `npm run bench [-- --quick] [--only create,list,extract,verify,stat,vfs,fuse,runtime,commits,fuse-rw] [--reps N]`.
 * Generates the datasets on first use (bench/data/<scale>/), runs every operation in a fresh child
 * process (bfcfs through bench/tasks/*.ts, other tools as commands), keeps the best of a few runs
 * with warm caches, prints a table and writes it as JSON to bench/results/.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { type Dataset, type DatasetId, datasetLabel, ensureDataset, SCALES } from "./datasets.ts";
import {
  DISK_IMPORT_COLUMNS,
  diskImportRows,
  diskImportSkipReason,
  measureDiskImport,
} from "./disk-import.ts";
import {
  FUSE_COLUMNS,
  fuseRows,
  fuseSkipReason,
  fuseVerdicts,
  fuseVersions,
  measureFuse,
  sweepFuse,
} from "./fuse.ts";
import { type Cell, formatTable, type Row } from "./report.ts";
import { measureRuntime, RUNTIME_COLUMNS, runtimeRows, runtimeSkipReason } from "./runtime.ts";
import { BENCH_PASSWORD, type Comp, detectTools, type Measure, type Runner, type ToolId } from "./tools.ts";
import { anchorVersions, measureVfs, VFS_ANCHORS, vfsRows, vfsVerdicts } from "./vfs.ts";

const BENCH = import.meta.dirname;
const DATA = path.join(BENCH, "data");
const TMP = path.join(DATA, "tmp");
/**
 * Groups measured here, then groups that are scripts of their own (bench/<name>.ts, run as children
 * after the table, printing their own tables).
 */
const SCRIPT_GROUPS = { commits: "commits.ts", "fuse-rw": "fuse-rw.ts" } as const;
const GROUPS = [
  "create",
  "list",
  "extract",
  "verify",
  "stat",
  "vfs",
  "fuse",
  "runtime",
  "disk-import",
  ...(Object.keys(SCRIPT_GROUPS) as (keyof typeof SCRIPT_GROUPS)[]),
] as const;
type Group = (typeof GROUPS)[number];

const { values: opts } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    reps: { type: "string" },
    dist: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (opts.help) {
  console.log(`usage: npm run bench -- [--quick] [--only ${GROUPS.join(",")}] [--reps N]
  --quick   small datasets (a smoke test of the harness in about a minute)
  --only    run only these groups (default: all)
  --reps    runs per measurement (default 3, 2 for the big file and with --quick)
  --dist    load the built library (dist/, run \`npm run build\` first) instead of the .ts sources
Comparisons: tar (GNU, with zstd), squashfs-tools, and the reference C tool when BFC_REFERENCE is set;
the vfs group compares against @yarnpkg/libzip's ZipFS and @zenfs/core + @zenfs/archives (Zip); the fuse
group mounts with \`bfc mount\` against squashfuse_ll and the kernel's squashfs (needs root for cold caches); the
runtime group times \`bfc container run\` from create to first output (bfc none/zstd, dir) against a
squashfs + squashfuse_ll + overlay + runc pipeline (needs root and runc); the disk-import group times
\`bfc import\` of an ext4 image (raw and QCOW2) against fuse2fs + bfc create / mksquashfs (needs fuse2fs,
squashfs-tools, qemu-utils and /dev/fuse); commits times commits of 1,
100 and 10,000 changes and the space of 100 commits before and after compaction (bench/commits.ts);
fuse-rw untars ~30k small files into \`bfc mount --rw\`, an ext4 image through fuse2fs and a plain
folder (bench/fuse-rw.ts, needs root).`);
  process.exit(0);
}
const groups = new Set<Group>();
for (const g of (opts.only ?? GROUPS.join(",")).split(",").filter(Boolean)) {
  if (!(GROUPS as readonly string[]).includes(g)) {
    console.error(`unknown group '${g}' (groups: ${GROUPS.join(", ")})`);
    process.exit(2);
  }
  groups.add(g as Group);
}
/** The script groups asked for, each run as a child with the same --quick/--reps. */
function runScriptGroups(): void {
  for (const [g, script] of Object.entries(SCRIPT_GROUPS)) {
    if (!groups.has(g as Group)) continue;
    const args = [path.join(BENCH, script)];
    if (opts.quick) args.push("--quick");
    if (opts.reps) args.push("--reps", opts.reps);
    console.log(`\n== ${g} (bench/${script})`);
    const r = spawnSync(process.execPath, args, { stdio: "inherit" });
    if (r.status !== 0) console.log(`${g}: failed (exit ${r.status ?? r.signal})`);
  }
}
if ([...groups].every((g) => g in SCRIPT_GROUPS)) {
  runScriptGroups();
  process.exit(0);
}
const scale = SCALES[opts.quick ? "quick" : "full"];
const repsArg = opts.reps ? Number.parseInt(opts.reps, 10) : 0;
const reps = (d: DatasetId) => repsArg || (opts.quick || d === "c" ? 2 : 3);
const statReps = repsArg || (opts.quick ? 5 : 9);
const lib = opts.dist ? "dist" : "src";
if (opts.dist) checkDist();

/** dist/ must exist and should not be older than the sources. */
function checkDist(): void {
  const root = path.join(BENCH, "..");
  const built = path.join(root, "dist", "index.js");
  if (!fs.existsSync(built)) {
    console.error("--dist: dist/index.js is missing; run `npm run build` first");
    process.exit(2);
  }
  const t = fs.statSync(built).mtimeMs;
  const src = path.join(root, "src");
  const newer = fs
    .readdirSync(src, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && fs.statSync(path.join(e.parentPath, e.name)).mtimeMs > t);
  if (newer.length) process.stderr.write(`warning: dist/ is older than ${newer.length} file(s) in src/\n`);
}

// ---- bfcfs: the library, driven by the task scripts ----

function tail(s: string | null | undefined): string {
  return (s ?? "").trim().split("\n").slice(-3).join(" | ").slice(0, 300);
}

function task(name: string, args: Record<string, unknown>): Measure {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [path.join(BENCH, "tasks", `${name}.ts`), JSON.stringify(args)], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 16 * 1024 * 1024,
    env: opts.dist ? { ...process.env, BFC_BENCH_DIST: "1" } : process.env,
  });
  const wallMs = performance.now() - t0;
  const line = (r.stdout ?? "").trim().split("\n").pop() ?? "";
  if (r.status !== 0 || !line.startsWith("{")) {
    return { ok: false, ms: Number.NaN, wallMs, error: `exit ${r.status}: ${tail(r.stderr)}` };
  }
  const d = JSON.parse(line) as { ms: number; rssKiB: number; ok?: boolean };
  const m: Measure = { ok: d.ok !== false, ms: d.ms, wallMs, rssKiB: d.rssKiB, details: d };
  if (!m.ok) m.error = line;
  return m;
}

const bfcfs: Runner = {
  id: "bfcfs",
  version: JSON.parse(fs.readFileSync(path.join(BENCH, "..", "package.json"), "utf8")).version,
  comps: ["none", "zstd", "zstd-enc"],
  ext: () => ".bfc",
  create: (d, out, c) =>
    task("create", {
      parent: d.parent,
      name: d.name,
      out,
      compression: c === "none" ? "none" : "zstd",
      level: c === "none" ? undefined : 3,
      password: c === "zstd-enc" ? BENCH_PASSWORD : undefined,
    }),
  list: (archive) => task("list", { container: archive }),
  extract: (archive, dest, _d, c) =>
    task("extract", { container: archive, dest, password: c === "zstd-enc" ? BENCH_PASSWORD : undefined }),
  verify: (archive, c) =>
    task("verify", {
      container: archive,
      deep: true,
      password: c === "zstd-enc" ? BENCH_PASSWORD : undefined,
    }),
  stat: (container, p) => task("stat", { container, path: p }),
};

// ---- rows ----

const COMPS: Comp[] = ["none", "zstd"];
const compLabel = (c: Comp) => (c === "zstd-enc" ? "zstd-3 + password" : c === "zstd" ? "zstd-3" : "none  ");
const full = scale.name === "full";
/** The issue's figures (reference CLI on this machine, full scale), and targets. */
const TARGETS: Record<string, string> = {
  "create.none.a.MBps": "706 (ref)",
  "create.zstd.a.MBps": "192 (ref)",
  "create.none.b.filesps": "3,800 (ref)",
  "create.none.c.rss": "<= 150",
  "create.zstd.c.rss": "<= 150",
  "extract.none.a.MBps": "867 (ref)",
  "extract.zstd.a.MBps": "262 (ref)",
  "verify.none.a.MBps": "4,500 (ref)",
  ...(full ? { "list.none.b.ms": "17 (ref CLI)", "stat.none.d.ms": "<= 20" } : {}),
};

const rows: Row[] = [];
const byKey = new Map<string, Row>();
function row(key: string, label: string): void {
  const r: Row = { key, label, target: TARGETS[key], values: {} };
  rows.push(r);
  byKey.set(key, r);
}
const L = (id: DatasetId) => datasetLabel(id, scale);
for (const d of ["a", "b", "c"] as const) {
  for (const c of COMPS) {
    row(`create.${c}.${d}.MBps`, `create ${compLabel(c)} ${L(d)}, MB/s`);
    if (d !== "c") row(`create.${c}.${d}.filesps`, `create ${compLabel(c)} ${L(d)}, files/s`);
    if (c === "zstd") row(`create.${c}.${d}.ratio`, `create ${compLabel(c)} ${L(d)}, size ratio x`);
    if (d === "c") row(`create.${c}.${d}.rss`, `create ${compLabel(c)} ${L(d)}, peak RSS MiB`);
  }
}
row("list.none.b.ms", `list (open+iterate) ${L("b")}, ms in-process`);
row("list.none.b.wall", `list (open+iterate) ${L("b")}, ms whole process`);
for (const d of ["a", "b", "c"] as const) {
  for (const c of COMPS) {
    row(`extract.${c}.${d}.MBps`, `extract ${compLabel(c)} ${L(d)}, MB/s`);
    if (d === "b") row(`extract.${c}.${d}.filesps`, `extract ${compLabel(c)} ${L(d)}, files/s`);
    if (d === "c") row(`extract.${c}.${d}.rss`, `extract ${compLabel(c)} ${L(d)}, peak RSS MiB`);
  }
}
for (const c of COMPS) row(`verify.${c}.a.MBps`, `verify --deep ${compLabel(c)} ${L("a")}, MB/s`);
// Encryption (ChaCha20-Poly1305, Argon2id key from a password) on dataset a only.
row("create.zstd-enc.a.MBps", `create ${compLabel("zstd-enc")} ${L("a")}, MB/s`);
row("create.zstd-enc.a.filesps", `create ${compLabel("zstd-enc")} ${L("a")}, files/s`);
row("extract.zstd-enc.a.MBps", `extract ${compLabel("zstd-enc")} ${L("a")}, MB/s`);
row("verify.zstd-enc.a.MBps", `verify --deep ${compLabel("zstd-enc")} ${L("a")}, MB/s`);
row("stat.none.d.ms", `open+stat 1 path ${L("d")}, ms in-process (median)`);
row("stat.none.d.wall", `open+stat 1 path ${L("d")}, ms whole process (median)`);
for (const r of vfsRows(L("e"))) {
  row(r.key, r.label);
  byKey.get(r.key)!.target = r.target;
}
for (const r of fuseRows(L)) {
  row(r.key, r.label);
  byKey.get(r.key)!.target = r.target;
}
const runtimeBytes = full ? 100e6 : 20e6;
for (const r of runtimeRows(runtimeBytes / 1e6)) {
  row(r.key, r.label);
  byKey.get(r.key)!.target = r.target;
}
for (const r of diskImportRows(!full)) {
  row(r.key, r.label);
  byKey.get(r.key)!.target = r.target;
}

const notes: string[] = [];
function put(key: string, tool: ToolId, v: Cell): void {
  const r = byKey.get(key);
  if (!r) throw new Error(`no row ${key}`);
  r.values[tool] = v;
}
function failed(key: string, tool: ToolId, m: Measure): void {
  put(key, tool, "fails");
  notes.push(`${tool} ${key}: ${m.error ?? "failed"}`);
}

// ---- measuring ----

interface Best {
  ok: boolean;
  ms: number;
  wallMs: number;
  rssKiB?: number;
  error?: string;
  first: Measure;
}

/** Runs `n` times (`reset` before each), keeps the fastest time and the highest peak RSS. */
function best(n: number, run: () => Measure, reset: () => void, check?: (m: Measure) => string | null): Best {
  let out: Best | null = null;
  for (let i = 0; i < n; i++) {
    reset();
    const m = run();
    const bad = m.ok && i === 0 && check ? check(m) : null;
    if (!m.ok || bad) return { ...m, ok: false, error: m.error ?? bad ?? "failed", first: m };
    if (!out) out = { ...m, first: m };
    else {
      out.ms = Math.min(out.ms, m.ms);
      out.wallMs = Math.min(out.wallMs, m.wallMs);
      if (m.rssKiB !== undefined) out.rssKiB = Math.max(out.rssKiB ?? 0, m.rssKiB);
    }
  }
  return out!;
}

const rm = (p: string) => fs.rmSync(p, { recursive: true, force: true });

/**
 * Extraction outputs of many files are set aside (renamed) and deleted only at the end of the run.
 * ext4 avoids reusing inodes freed in the last 60 s (300 s more while their table block is
 * dirty): right after tens of thousands were deleted, creating a file scans past them
 * (`recently_deleted`), and a 50k-file extract took 14-20 s of kernel time instead of 3-4 s, for
 * every tool in turn. Outputs of few files are deleted at once (the big datasets need the room).
 */
const TRASH = path.join(DATA, "trash");

let trashed = 0;
function discard(p: string, files: number): void {
  if (files < 10_000 || !fs.existsSync(p)) {
    rm(p);
    return;
  }
  fs.mkdirSync(TRASH, { recursive: true });
  fs.renameSync(p, path.join(TRASH, String(trashed++)));
}

/**
 * Writes back what earlier runs left dirty, so a timed run does not pay for its predecessor: a
 * 2 GiB extract into ext4 took 1.3 s after a sync, and 3.2 s (the reference) or 4-6 s (bfcfs)
 * when it started while the previous run's output was still being written out and deleted.
 */
function settleDisk(): void {
  spawnSync("sync", { stdio: "ignore" });
}

const rate = (units: number, ms: number) => units / (ms / 1000);

function countFiles(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;
}

function progress(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

/** Create, then list/extract/verify the result, for one tool, dataset and compression. */
function measure(t: Runner, d: Dataset, c: Comp): void {
  const id = d.id;
  const archive = path.join(TMP, `${t.id}-${id}-${c}${t.ext(c)}`);
  const wantList = groups.has("list") && id === "b" && c === "none" && t.list !== undefined;
  const wantExtract = groups.has("extract");
  const wantVerify = groups.has("verify") && id === "a" && t.verify !== undefined;
  let have = false;
  if (groups.has("create")) {
    progress(`  ${t.id}: create ${c} ${d.label}`);
    const b = best(
      reps(id),
      () => t.create(d, archive, c),
      () => {
        rm(archive);
        settleDisk();
      },
    );
    if (!b.ok) failed(`create.${c}.${id}.MBps`, t.id, b);
    else {
      put(`create.${c}.${id}.MBps`, t.id, rate(d.bytes / 1e6, b.ms));
      if (id !== "c") put(`create.${c}.${id}.filesps`, t.id, rate(d.files, b.ms));
      if (c === "zstd") put(`create.${c}.${id}.ratio`, t.id, d.bytes / fs.statSync(archive).size);
      if (id === "c" && b.rssKiB !== undefined) put(`create.${c}.${id}.rss`, t.id, b.rssKiB / 1024);
      have = true;
    }
  }
  if (!have && (wantList || wantExtract || wantVerify)) {
    progress(`  ${t.id}: build ${c} ${d.label} (untimed)`);
    rm(archive);
    const m = t.create(d, archive, c);
    if (!m.ok) notes.push(`${t.id}: cannot build ${c} ${d.label}: ${m.error}`);
    have = m.ok;
  }
  if (have && wantList) {
    progress(`  ${t.id}: list ${d.label}`);
    const b = best(
      reps(id),
      () => t.list!(archive, c),
      () => {},
    );
    if (!b.ok) failed("list.none.b.wall", t.id, b);
    else {
      if (t.id === "bfcfs") put("list.none.b.ms", t.id, b.ms);
      put("list.none.b.wall", t.id, b.wallMs);
    }
  }
  if (have && wantExtract) {
    progress(`  ${t.id}: extract ${c} ${d.label}`);
    const dest = path.join(TMP, "out");
    const b = best(
      reps(id),
      () => t.extract(archive, dest, d, c),
      () => {
        discard(dest, d.files);
        fs.mkdirSync(dest, { recursive: true });
        settleDisk();
      },
      () => {
        const n = countFiles(path.join(dest, d.name));
        return n === d.files ? null : `extracted ${n} files under ${d.name}/, expected ${d.files}`;
      },
    );
    discard(dest, d.files);
    if (!b.ok) failed(`extract.${c}.${id}.MBps`, t.id, b);
    else {
      put(`extract.${c}.${id}.MBps`, t.id, rate(d.bytes / 1e6, b.ms));
      if (id === "b") put(`extract.${c}.${id}.filesps`, t.id, rate(d.files, b.ms));
      if (id === "c" && b.rssKiB !== undefined) put(`extract.${c}.${id}.rss`, t.id, b.rssKiB / 1024);
    }
  }
  if (have && wantVerify) {
    progress(`  ${t.id}: verify --deep ${c} ${d.label}`);
    const b = best(
      reps(id),
      () => t.verify!(archive, c),
      () => {},
    );
    // An expected failure (the reference cannot deep-verify compressed containers) is a result.
    if (!b.ok) put(`verify.${c}.${id}.MBps`, t.id, "fails");
    else put(`verify.${c}.${id}.MBps`, t.id, rate(d.bytes / 1e6, b.ms));
  }
  rm(archive);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function measureStat(t: Runner, d: Dataset): void {
  progress(`  ${t.id}: open+stat ${d.label} x${statReps}`);
  const ms: number[] = [];
  const wall: number[] = [];
  for (let i = 0; i < statReps; i++) {
    const m = t.stat!(d.container!, d.probe!);
    if (!m.ok) {
      failed("stat.none.d.wall", t.id, m);
      return;
    }
    ms.push(m.ms);
    wall.push(m.wallMs);
  }
  if (t.id === "bfcfs") put("stat.none.d.ms", t.id, median(ms));
  put("stat.none.d.wall", t.id, median(wall));
}

// ---- main ----

const need = new Set<DatasetId>();
if (groups.has("create") || groups.has("extract")) for (const d of ["a", "b", "c"] as const) need.add(d);
if (groups.has("list")) need.add("b");
if (groups.has("verify")) need.add("a");
if (groups.has("stat")) need.add("d");
if (groups.has("vfs")) need.add("e");
const fuseSkip = groups.has("fuse") ? fuseSkipReason() : undefined;
if (groups.has("fuse") && !fuseSkip) for (const d of ["a", "b", "c"] as const) need.add(d);

// Mounts a killed run may have left in TMP (the fuse group's) go before TMP does.
const FUSE_TMP = path.join(TMP, "fuse");
sweepFuse(FUSE_TMP);
rm(TMP);
rm(TRASH); // left by an interrupted run
fs.mkdirSync(TMP, { recursive: true });
const free = fs.statfsSync(DATA);
const freeGiB = (free.bavail * free.bsize) / 2 ** 30;
// Extraction outputs of (b) are set aside until the end: up to 4 tools x 2 compressions x reps.
const setAside = groups.has("extract")
  ? 8 * reps("b") * scale.small.count * ((scale.small.min + scale.small.max) / 2 + 4096)
  : 0;
const wantGiB = ((scale.big.size * 3 + scale.many.count * scale.many.size + setAside) / 2 ** 30) * 1.2;
if (freeGiB < wantGiB)
  progress(`warning: ${freeGiB.toFixed(1)} GiB free, about ${wantGiB.toFixed(1)} needed`);

const { runners, notes: toolNotes } = detectTools(TMP);
notes.push(...toolNotes);
const tools = [bfcfs, ...runners];

const datasets = new Map<DatasetId, Dataset>();
for (const id of ["a", "b", "c", "d", "e"] as const) {
  if (need.has(id)) datasets.set(id, await ensureDataset(id, scale, DATA));
}

const started = performance.now();
try {
  for (const id of ["a", "b", "c"] as const) {
    const d = datasets.get(id);
    if (!d) continue;
    progress(`dataset ${d.label}: ${d.files} files, ${(d.bytes / 1e6).toFixed(0)} MB`);
    for (const t of tools) for (const c of t.comps) if (c !== "zstd-enc" || id === "a") measure(t, d, c);
  }
  const d = datasets.get("d");
  if (d) for (const t of tools) if (t.stat) measureStat(t, d);
  const e = datasets.get("e");
  if (e) {
    progress(`dataset ${e.label}: ${e.entries} entries, ${e.files} files, ${(e.bytes / 1e6).toFixed(0)} MB`);
    measureVfs(
      {
        task,
        put,
        note: (n) => notes.push(n),
        progress,
        reps: repsArg || (opts.quick ? 2 : 3),
        zenfsReps: repsArg || (opts.quick ? 2 : 1),
        tmp: TMP,
      },
      e,
    );
    notes.push(...vfsVerdicts(new Map(rows.map((r) => [r.key, r.values]))));
  }
  if (groups.has("fuse") && fuseSkip) notes.push(`fuse: group skipped: ${fuseSkip}`);
  else if (groups.has("fuse")) {
    const [a, b, c] = (["a", "b", "c"] as const).map((id) => datasets.get(id)!);
    progress(`fuse: ${b.label}, ${a.label}, ${c.label}`);
    await measureFuse(
      {
        task,
        put,
        note: (n) => notes.push(n),
        progress,
        reps: repsArg || (opts.quick ? 2 : 3),
        bigReps: repsArg || 2,
        tmp: TMP,
        cli: [process.execPath, path.join(BENCH, "..", opts.dist ? "dist/cli/main.js" : "src/cli/main.ts")],
        baselineCli: process.env.BFC_FUSE_BASELINE
          ? [process.execPath, process.env.BFC_FUSE_BASELINE]
          : undefined,
        budgetMs: opts.quick ? 20_000 : 60_000,
        timeoutMs: opts.quick ? 300_000 : 900_000,
      },
      { a, b, c },
    );
    notes.push(...fuseVerdicts(new Map(rows.map((r) => [r.key, r.values]))));
  }
  const runtimeSkip = groups.has("runtime") ? runtimeSkipReason() : undefined;
  if (groups.has("runtime") && runtimeSkip) notes.push(`runtime: group skipped: ${runtimeSkip}`);
  else if (groups.has("runtime")) {
    await measureRuntime({
      put,
      note: (n) => notes.push(n),
      progress,
      reps: repsArg || 3,
      tmp: TMP,
      data: path.join(DATA, scale.name),
      cli: [process.execPath, path.join(BENCH, "..", opts.dist ? "dist/cli/main.js" : "src/cli/main.ts")],
      bytes: runtimeBytes,
    });
  }
  const diskImportSkip = groups.has("disk-import") ? diskImportSkipReason() : undefined;
  if (groups.has("disk-import") && diskImportSkip)
    notes.push(`disk-import: group skipped: ${diskImportSkip}`);
  else if (groups.has("disk-import")) {
    measureDiskImport({
      put,
      note: (n) => notes.push(n),
      progress,
      reps: repsArg || 3,
      tmp: TMP,
      data: path.join(DATA, scale.name),
      cli: [process.execPath, path.join(BENCH, "..", opts.dist ? "dist/cli/main.js" : "src/cli/main.ts")],
      quick: !full,
    });
  }
} finally {
  sweepFuse(FUSE_TMP);
  rm(TMP);
  if (trashed > 0) progress(`removing ${trashed} set-aside extraction outputs`);
  rm(TRASH);
}

// Tools with a figure in some row (a tool detected but unused by the groups run is left out).
const columns = [
  ...new Set([
    ...tools.map((t) => t.id),
    ...VFS_ANCHORS,
    ...FUSE_COLUMNS,
    ...RUNTIME_COLUMNS,
    ...DISK_IMPORT_COLUMNS,
  ]),
].filter((t) => rows.some((r) => r.values[t] !== undefined));
const targetHeader = full ? "issue" : "issue (full scale)";
const cpu = os.cpus();
const lines = [
  `bfcfs bench: scale ${scale.name}, library ${lib}/, node ${process.version}, ${cpu.length} x ${cpu[0]?.model ?? "cpu"}, ${new Date().toISOString()}`,
  "",
  formatTable(rows, columns, targetHeader),
  "",
  "MB = 10^6 bytes of original content.",
  ...(["create", "list", "extract", "verify", "stat"].some((g) => groups.has(g as Group))
    ? [
        `best of ${repsArg || (opts.quick ? 2 : "3 (2 for (c))")} runs in fresh processes, warm cache;`,
        "bfcfs times are measured inside the child (after Node startup and module load), other tools' are wall",
        `times of the command; 'whole process' rows include startup; peak RSS is the highest of the runs; open+stat: median of ${statReps}.`,
      ]
    : []),
  ...(groups.has("vfs")
    ? [
        "vfs rows: one operation per fresh process after its mount, warmed on other paths first; best of the runs;",
        "mount = the best mount time seen across those runs; yarn-zipfs and zenfs read the zip of the same tree;",
        `zenfs runs all of an archive's rows after one mount (it takes minutes at full scale)${full && !repsArg ? ", once" : ""}.`,
      ]
    : []),
  ...(groups.has("fuse") && !fuseSkip
    ? [
        "fuse rows: every figure cold (unmount, drop caches, mount, drop caches, then the command; warm: the same",
        "command again right after); wall time of the command, except random reads (timed in the child from open to",
        `close); best of ${repsArg || (opts.quick ? 2 : 3)} (${repsArg || 2} for (c)); mount = bfc mount / squashfuse_ll / mount -o loop until the`,
        "mountpoint lists: median of the cold mounts of the (b) rows and of as many warm remounts;",
        "squashfs images are mksquashfs -comp zstd -Xcompression-level 3.",
      ]
    : []),
  ...(groups.has("runtime") && rows.some((r) => r.key.startsWith("runtime.") && Object.keys(r.values).length)
    ? [
        "runtime rows: best of the runs; bfc-* and dir are `bfc container run` (a new Node process: CLI start, pack,",
        "mount, overlay, runc) timed to the first byte of the container's output, with a warm Node compile cache;",
        "squashfuse is mksquashfs -comp zstd -Xcompression-level 3, squashfuse_ll, overlay and runc run, spawned",
        "directly; 'start' is the same on an already created container; disk = du of the container file / folder / image.",
      ]
    : []),
  ...(groups.has("disk-import") &&
  rows.some((r) => r.key.startsWith("diskimport.") && Object.keys(r.values).length)
    ? [
        "disk-import rows: whole commands in fresh processes, warm page cache, best of the runs; MB/s = content bytes,",
        "entries/s = every entry; fuse2fs-* = [qemu-img convert -O raw] + fuse2fs -o ro,fakeroot + bfc create -q /",
        "mksquashfs + fusermount -u, all timed; peak RSS = the importing / packing process (GNU time), the highest run.",
      ]
    : []),
  `total ${((performance.now() - started) / 1000).toFixed(0)} s of measuring`,
  ...notes.map((n) => `note: ${n}`),
];
console.log(lines.join("\n"));

const resultsDir = path.join(BENCH, "results");
fs.mkdirSync(resultsDir, { recursive: true });
const jsonPath = path.join(resultsDir, full ? "latest.json" : "latest-quick.json");
const json = {
  date: new Date().toISOString(),
  scale: scale.name,
  library: lib,
  node: process.version,
  cpus: cpu.length,
  cpuModel: cpu[0]?.model,
  groups: [...groups],
  tools: {
    ...Object.fromEntries(tools.map((t) => [t.id, t.version])),
    ...(groups.has("vfs") ? anchorVersions() : {}),
    ...(groups.has("fuse") && !fuseSkip ? fuseVersions() : {}),
  },
  datasets: [...datasets.values()].map(({ id, label, files, bytes, entries }) => ({
    id,
    label,
    files,
    bytes,
    ...(entries !== undefined ? { entries } : {}),
  })),
  rows: rows.filter((r) => Object.keys(r.values).length > 0),
  notes,
};
fs.writeFileSync(jsonPath, JSON.stringify(json, null, 2) + "\n");
progress(`results written to ${path.relative(process.cwd(), jsonPath)}`);
runScriptGroups();
