/**
 * The "fuse" group: `bfc mount` (bfcfs's FUSE server) against squashfuse_ll and the kernel's own
 * squashfs, serving the same trees: a zstd -3 BFC container (our Writer) and a
 * `mksquashfs -comp zstd -Xcompression-level 3` image of each of datasets a, b and c. Every figure
 * is taken cold: unmount, drop the page cache, mount, drop it again, then time the shell command
 * (find, stat, cat, dd, or a child doing random preads). Mounts and their processes live under
 * `<tmp>/fuse/` and are always cleaned up, with a lazy sweep of anything left there.
 */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { mountsAtOrUnder } from "../src/fuse/host-mounts.ts";
import type { Dataset } from "./datasets.ts";
import type { Cell } from "./report.ts";
import { type Measure, MKSQUASHFS_ZSTD3, type ToolId } from "./tools.ts";

export const FUSE_COLUMNS = [
  "bfcfs",
  "bfcfs-baseline",
  "squashfuse_ll",
  "kernel-squashfs",
] as const satisfies readonly ToolId[];
type Col = (typeof FUSE_COLUMNS)[number];

/** Random reads: how many, how big; the issue's figures for ~30k node_modules-like files, zstd -3. */
const RANDOM_READS = 20_000;
const SEQ_TARGET = 1000;
const RAND_TARGET = 50;

export interface FuseContext {
  task(name: string, args: Record<string, unknown>): Measure;
  put(key: string, tool: ToolId, v: Cell): void;
  note(msg: string): void;
  progress(msg: string): void;
  /** Cold runs per row (the big-file rows use `bigReps`). */
  reps: number;
  bigReps: number;
  /** Scratch directory; the group works in `<tmp>/fuse/`. */
  tmp: string;
  /** argv prefix running the bfc CLI (`node src/cli/main.ts` or `node dist/cli/main.js`). */
  cli: string[];
  /**
   * argv prefix of another build's bfc CLI (BFC_FUSE_BASELINE: e.g. a checkout of an older commit),
   * measured as the "bfcfs-baseline" column for before/after comparisons.
   */
  baselineCli?: string[];
  /** Wall-clock budget of one big-file command (dd, random reads): slower ones stop early. */
  budgetMs: number;
  /** Any other command is killed after this long. */
  timeoutMs: number;
}

export interface FuseRow {
  key: string;
  label: string;
  target?: string;
  higher: boolean;
  bound?: number;
}

/** The group's rows, in table order; `L` labels a dataset. */
export function fuseRows(L: (id: "a" | "b" | "c") => string): FuseRow[] {
  const vs = "≥ squashfuse_ll";
  return [
    {
      key: "fuse.mount.cold.ms",
      label: `fuse mount → listable, ${L("b")}, ms cold (median)`,
      target: "≤ squashfuse_ll",
      higher: false,
    },
    {
      key: "fuse.mount.warm.ms",
      label: `fuse mount → listable, ${L("b")}, ms warm (median)`,
      target: "≤ squashfuse_ll",
      higher: false,
    },
    { key: "fuse.find.cold", label: `fuse find ${L("b")}, files/s cold`, target: vs, higher: true },
    { key: "fuse.find.warm", label: `fuse find ${L("b")}, files/s warm`, target: vs, higher: true },
    {
      key: "fuse.stat.cold",
      label: `fuse find -exec stat ${L("b")}, files/s cold`,
      target: `${vs} (issue 7.3k, kernel 38k)`,
      higher: true,
    },
    {
      key: "fuse.stat.warm",
      label: `fuse find -exec stat ${L("b")}, files/s warm`,
      target: vs,
      higher: true,
    },
    {
      key: "fuse.cat.cold",
      label: `fuse cat every file ${L("b")}, files/s cold`,
      target: `${vs} (issue 4.2k, kernel 7.1k)`,
      higher: true,
    },
    { key: "fuse.cat.warm", label: `fuse cat every file ${L("b")}, files/s warm`, target: vs, higher: true },
    {
      key: "fuse.seq.a",
      label: `fuse cat ${L("a")}, MB/s cold`,
      target: `≥ ${SEQ_TARGET.toLocaleString("en-US")}, ${vs}`,
      higher: true,
      bound: SEQ_TARGET,
    },
    {
      key: "fuse.seq.c",
      label: `fuse dd bs=1M ${L("c")}, MB/s cold`,
      target: `≥ ${SEQ_TARGET.toLocaleString("en-US")}, ${vs}`,
      higher: true,
      bound: SEQ_TARGET,
    },
    {
      key: "fuse.rand.c",
      label: `fuse random 4 KiB pread ${L("c")}, MB/s cold`,
      target: `≥ ${RAND_TARGET}, ${vs}`,
      higher: true,
      bound: RAND_TARGET,
    },
  ];
}

// ---- tools ----

function found(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: "ignore" });
  return !r.error;
}

/** Why the group cannot run here, or undefined. */
export function fuseSkipReason(): string | undefined {
  if (!fs.existsSync("/dev/fuse")) return "/dev/fuse is missing";
  if (!found("fusermount3", ["-V"])) return "fusermount3 is not installed (apt-get install fuse3)";
  if (!found("squashfuse_ll", ["--help"]))
    return "squashfuse_ll is not installed (apt-get install squashfuse)";
  const mk = spawnSync("mksquashfs", ["-help"], { encoding: "utf8" });
  if (mk.error) return "mksquashfs is not installed (apt-get install squashfs-tools)";
  if (!/\bzstd\b/.test(`${mk.stdout}${mk.stderr}`)) return "mksquashfs is built without zstd";
  return undefined;
}

/** Versions for the JSON report. */
export function fuseVersions(): Record<string, string> {
  const first = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    return `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n")[0] ?? "";
  };
  let fuseNative = "missing";
  try {
    fuseNative = (createRequire(import.meta.url)("fuse-native/package.json") as { version: string }).version;
  } catch {
    // reported as missing
  }
  return {
    squashfuse_ll: first("squashfuse_ll", ["--version"]) || "squashfuse_ll",
    "kernel-squashfs": `Linux ${os.release()}`,
    "fuse-native": fuseNative,
  };
}

// ---- processes and mounts ----

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
  stdout: string;
  stderr: string;
  /** Stopped by the budget (`budget`) or killed at the timeout. */
  stopped?: "budget" | "timeout";
}

/**
 * Runs a command in its own process group, timed from spawn to exit. `budgetMs` sends SIGINT
 * after that long (dd then prints what it copied); everything is SIGKILLed at `timeoutMs`.
 */
function exec(
  argv: string[],
  opts: { stdout?: boolean; timeoutMs: number; budgetMs?: number; lines?: (n: number) => void },
): Promise<Ran> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ["ignore", opts.stdout || opts.lines ? "pipe" : "ignore", "pipe"],
      detached: true,
    });
    let stdout = "";
    let stderr = "";
    let stopped: Ran["stopped"];
    let ms = 0;
    const kill = (sig: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, sig);
      } catch {
        // already gone
      }
    };
    const timers: NodeJS.Timeout[] = [];
    if (opts.budgetMs !== undefined) {
      timers.push(
        setTimeout(() => {
          stopped = "budget";
          kill("SIGINT");
        }, opts.budgetMs),
      );
    }
    timers.push(
      setTimeout(() => {
        stopped = "timeout";
        kill("SIGKILL");
      }, opts.timeoutMs),
    );
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (d: string) => {
      if (opts.lines) {
        let n = 0;
        for (let i = d.indexOf("\n"); i >= 0; i = d.indexOf("\n", i + 1)) n++;
        opts.lines(n);
        if (opts.stdout) stdout += d;
      } else stdout += d;
    });
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (d: string) => {
      if (stderr.length < 64 * 1024) stderr += d;
    });
    child.on("exit", () => {
      ms = performance.now() - t0;
    });
    child.on("error", (e) => {
      stderr += e.message;
    });
    child.on("close", (code, signal) => {
      for (const t of timers) clearTimeout(t);
      if (!ms) ms = performance.now() - t0;
      resolve({ code, signal, ms, stdout, stderr, stopped });
    });
  });
}

function tail(s: string): string {
  return s.trim().split("\n").slice(-2).join(" | ").slice(0, 300);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Live (not zombie) processes with an argument at or below `root`, this one excluded. */
function processesUsing(root: string): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const argv = fs.readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
      if (!argv.some((a) => a === root || a.startsWith(`${root}/`))) continue;
      if (!alive(Number(name))) continue;
      out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

function waitSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Lazily unmounts everything at or below `root` and ends the processes still using it (serving
 * processes, stuck commands). Synchronous, for `finally` blocks and signal handlers. Returns what
 * it had to clean up.
 */
export function sweepFuse(root: string): string[] {
  const cleaned: string[] = [];
  for (const m of mountsAtOrUnder(root)) {
    const fuse = m.fstype === "fuse" || m.fstype.startsWith("fuse.");
    const r = fuse
      ? spawnSync("fusermount3", ["-uz", m.mountpoint], { stdio: "ignore" })
      : spawnSync("umount", ["-l", m.mountpoint], { stdio: "ignore" });
    cleaned.push(
      `${fuse ? "fusermount3 -uz" : "umount -l"} ${m.mountpoint}${r.status === 0 ? "" : " (failed)"}`,
    );
  }
  let pids = processesUsing(root);
  for (const sig of ["SIGTERM", "SIGKILL"] as const) {
    if (!pids.length) break;
    for (const pid of pids) {
      try {
        process.kill(pid, sig);
        cleaned.push(`${sig} ${pid}`);
      } catch {
        // gone
      }
    }
    for (let i = 0; i < 20 && pids.some(alive); i++) waitSync(100);
    pids = pids.filter(alive);
  }
  return cleaned;
}

function dropCaches(): boolean {
  spawnSync("sync", { stdio: "ignore" });
  try {
    fs.writeFileSync("/proc/sys/vm/drop_caches", "3");
    return true;
  } catch {
    return false;
  }
}

// ---- the group ----

type ImageId = "a" | "b" | "c";

interface Image {
  id: ImageId;
  d: Dataset;
  bfc?: string;
  sqfs?: string;
}

interface Mounted {
  col: Col;
  mnt: string;
  ms: number;
  pid?: number;
}

/** One row's command and how its output becomes a figure. */
interface Spec {
  key: string;
  warmKey?: string;
  image: ImageId;
  /** The dataset's tree below the mountpoint. */
  argv(tree: string, source: string): string[];
  stdout?: boolean;
  countLines?: boolean;
  /** Big-file rows: ctx.bigReps runs, and they stop after ctx.budgetMs (partial figure). */
  big?: boolean;
  /** The harness stops the command at the budget with SIGINT (dd then prints what it copied). */
  interrupt?: boolean;
  /** The figure from a finished run (`partial`: stopped by the budget), or why there is none. */
  value(r: Ran, lines: number, d: Dataset): { v: number; partial?: string } | { error: string; cell?: Cell };
  /** A command comparing what the first cold run read (still in the page cache) with the source. */
  verify?(tree: string, source: string, r: Ran): string[];
}

export async function measureFuse(ctx: FuseContext, datasets: Record<ImageId, Dataset>): Promise<void> {
  const root = path.join(ctx.tmp, "fuse");
  const leftover = sweepFuse(root);
  if (leftover.length) ctx.note(`fuse: cleaned up a previous run: ${leftover.join("; ")}`);
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(root, { recursive: true });

  // A signal while mounted: sweep, then leave (the mounts must not outlive the harness).
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`\n${sig}: unmounting ${root} ...\n`);
    sweepFuse(root);
    fs.rmSync(root, { recursive: true, force: true });
    process.exit(130);
  };
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  for (const s of signals) process.on(s, onSignal);
  try {
    await run(ctx, root, datasets);
  } finally {
    for (const s of signals) process.off(s, onSignal);
    const swept = sweepFuse(root);
    if (swept.length) ctx.note(`fuse: had to force the clean-up: ${swept.join("; ")}`);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

async function run(ctx: FuseContext, root: string, datasets: Record<ImageId, Dataset>): Promise<void> {
  const load = os.loadavg()[0]!;
  if (load > 0.5 * os.cpus().length) {
    ctx.note(
      `fuse: load average ${load.toFixed(2)} on ${os.cpus().length} CPUs at the start: figures are noisy`,
    );
  }
  const canDrop = dropCaches();
  if (!canDrop)
    ctx.note("fuse: cannot write /proc/sys/vm/drop_caches (not root?): 'cold' is a fresh mount only");

  // Images, built untimed.
  const images = new Map<ImageId, Image>();
  const sizes: string[] = [];
  for (const id of ["b", "a", "c"] as const) {
    const d = datasets[id];
    const img: Image = { id, d };
    const bfc = path.join(root, `${id}.bfc`);
    ctx.progress(`  fuse: build ${path.basename(bfc)} of ${d.label} (zstd -3, untimed)`);
    const m = ctx.task("create", { parent: d.parent, name: d.name, out: bfc, compression: "zstd", level: 3 });
    if (m.ok) img.bfc = bfc;
    else ctx.note(`fuse: cannot build ${path.basename(bfc)}: ${m.error}`);
    const sqfs = path.join(root, `${id}.sqfs`);
    ctx.progress(`  fuse: build ${path.basename(sqfs)} of ${d.label} (mksquashfs zstd -3, untimed)`);
    const r = await exec(
      ["mksquashfs", path.join(d.parent, d.name), sqfs, "-keep-as-directory", ...MKSQUASHFS_ZSTD3],
      { timeoutMs: ctx.timeoutMs },
    );
    if (r.code === 0) img.sqfs = sqfs;
    else ctx.note(`fuse: cannot build ${path.basename(sqfs)}: exit ${r.code}: ${tail(r.stderr)}`);
    images.set(id, img);
    const mb = (f?: string) => (f ? `${(fs.statSync(f).size / 1e6).toFixed(1)} MB` : "-");
    sizes.push(`${id}.bfc ${mb(img.bfc)}, ${id}.sqfs ${mb(img.sqfs)}`);
  }
  ctx.note(
    `fuse: images (zstd -3) of ${(["b", "a", "c"] as const).map((i) => datasets[i].label).join(", ")}: ${sizes.join("; ")}`,
  );

  const mnt: Record<Col, string> = {
    bfcfs: path.join(root, "mnt-bfcfs"),
    "bfcfs-baseline": path.join(root, "mnt-bfcfs-baseline"),
    squashfuse_ll: path.join(root, "mnt-squashfuse_ll"),
    "kernel-squashfs": path.join(root, "mnt-kernel"),
  };
  for (const m of Object.values(mnt)) fs.mkdirSync(m);
  const isBfc = (col: Col) => col === "bfcfs" || col === "bfcfs-baseline";
  const cliOf = (col: Col) => (col === "bfcfs-baseline" ? (ctx.baselineCli as string[]) : ctx.cli);
  const imageOf = (col: Col, id: ImageId) => (isBfc(col) ? images.get(id)?.bfc : images.get(id)?.sqfs);
  const cols = new Set<Col>(FUSE_COLUMNS.filter((c) => c !== "bfcfs-baseline" || ctx.baselineCli));

  async function mount(col: Col, id: ImageId): Promise<Mounted> {
    const img = imageOf(col, id)!;
    const at = mnt[col];
    const argv = isBfc(col)
      ? [...cliOf(col), "mount", img, at]
      : col === "squashfuse_ll"
        ? ["squashfuse_ll", img, at]
        : ["mount", "-t", "squashfs", "-o", "loop,ro", img, at];
    const t0 = performance.now();
    const r = await exec(argv, { timeoutMs: 60_000 });
    if (r.code !== 0) {
      sweepFuse(at);
      throw new Error(`mount failed: exit ${r.code}: ${tail(r.stderr)}`);
    }
    // Listable: the tree's top directory shows up.
    for (;;) {
      try {
        if (fs.readdirSync(at).length > 0) break;
      } catch {
        // not yet
      }
      if (performance.now() - t0 > 30_000) {
        sweepFuse(at);
        throw new Error("mounted, but not listable after 30 s");
      }
      await sleep(1);
    }
    const ms = performance.now() - t0;
    const pid = col === "kernel-squashfs" ? undefined : processesUsing(at)[0];
    return { col, mnt: at, ms, pid };
  }

  async function unmount(m: Mounted): Promise<void> {
    const argv = isBfc(m.col)
      ? [...cliOf(m.col), "umount", m.mnt]
      : m.col === "squashfuse_ll"
        ? ["fusermount3", "-u", m.mnt]
        : ["umount", m.mnt];
    const r = await exec(argv, { timeoutMs: 30_000 });
    if (r.code !== 0) ctx.note(`fuse: ${m.col}: unmount failed (${tail(r.stderr)}); detached lazily`);
    // The serving process goes once it notices (bfc mount polls once a second).
    for (let i = 0; m.pid !== undefined && alive(m.pid) && i < 50; i++) await sleep(50);
    if (r.code !== 0 || (m.pid !== undefined && alive(m.pid)) || mountsAtOrUnder(m.mnt).length) {
      if (m.pid !== undefined && alive(m.pid) && r.code === 0)
        ctx.note(`fuse: ${m.col}: the serving process outlived its unmount by 2.5 s; killed`);
      sweepFuse(m.mnt);
    }
  }

  /** Unmount (if needed), drop caches, mount, drop caches: the state every cold figure starts from. */
  async function coldMount(col: Col, id: ImageId): Promise<Mounted> {
    if (canDrop) dropCaches();
    const m = await mount(col, id);
    if (canDrop) dropCaches();
    return m;
  }

  // The kernel column needs loop devices; try once.
  if (images.get("b")?.sqfs) {
    try {
      const m = await mount("kernel-squashfs", "b");
      await unmount(m);
    } catch (e) {
      cols.delete("kernel-squashfs");
      ctx.note(`fuse: kernel-squashfs skipped: mount -t squashfs -o loop,ro failed: ${(e as Error).message}`);
    }
  }

  /** Mount times of (b), every sample: cold ones come with the (b) rows (3 rows × reps). */
  const mountCold = new Map<Col, number[]>();
  const sample = (m: Map<Col, number[]>, col: Col, ms: number) => m.set(col, [...(m.get(col) ?? []), ms]);
  const best = new Map<string, number>();
  const failed = new Set<string>();
  const higherOf = new Map(fuseRows(() => "").map((r) => [r.key, r.higher]));
  const keep = (key: string, col: Col, v: number) => {
    const k = `${key}|${col}`;
    const prev = best.get(k);
    if (prev === undefined || (higherOf.get(key) ? v > prev : v < prev)) best.set(k, v);
  };

  const b = datasets.b;
  const entries = fs.readdirSync(path.join(b.parent, b.name), { recursive: true }).length + 1;
  for (const spec of rowSpecs(ctx, entries)) {
    const d = images.get(spec.image)!.d;
    const source = path.join(d.parent, d.name);
    const reps = spec.big ? ctx.bigReps : ctx.reps;
    const done = new Set<Col>();
    ctx.progress(`  fuse: ${spec.key} on ${d.label} x${reps}`);
    for (let rep = 0; rep < reps; rep++) {
      for (const col of cols) {
        if (done.has(col)) continue;
        const fail = (why: string, cell: Cell = "fails") => {
          for (const key of [spec.key, spec.warmKey]) {
            if (!key) continue;
            ctx.put(key, col, cell);
            failed.add(`${key}|${col}`);
          }
          ctx.note(`fuse: ${col} ${spec.key}: ${why}`);
          done.add(col);
        };
        if (!imageOf(col, spec.image)) {
          fail("no image", "n/a");
          continue;
        }
        let m: Mounted;
        try {
          m = await coldMount(col, spec.image);
        } catch (e) {
          fail((e as Error).message);
          continue;
        }
        try {
          if (spec.image === "b") sample(mountCold, col, m.ms);
          const tree = path.join(m.mnt, d.name);
          const argv = spec.argv(tree, source);
          let lines = 0;
          const opts = {
            stdout: spec.stdout,
            timeoutMs: ctx.timeoutMs,
            budgetMs: spec.interrupt ? ctx.budgetMs : undefined,
            lines: spec.countLines ? (n: number) => (lines += n) : undefined,
          };
          const r = await exec(argv, opts);
          if (r.stopped === "timeout") {
            fail(`killed after ${(ctx.timeoutMs / 1000).toFixed(0)} s`, "timeout");
            continue;
          }
          const v = spec.value(r, lines, d);
          if ("error" in v) {
            fail(v.error, v.cell);
            continue;
          }
          keep(spec.key, col, v.v);
          if (v.partial) {
            // Slower than the budget allows: one run says enough.
            ctx.note(`fuse: ${col} ${spec.key}: ${v.partial}`);
            done.add(col);
          }
          if (rep === 0 && spec.verify) {
            const check = spec.verify(tree, source, r);
            const c = await exec(check, { stdout: true, timeoutMs: ctx.timeoutMs });
            if (c.stopped) ctx.note(`fuse: ${col} ${spec.key}: the content check (${check[0]}) was stopped`);
            else if (c.code !== 0) {
              fail(
                `WRONG BYTES: \`${check.slice(0, -2).join(" ")}\` against the source: ${tail(c.stdout || c.stderr)} (measured ${best.get(`${spec.key}|${col}`)?.toFixed(1)} before the check)`,
                "wrong bytes",
              );
              continue;
            }
          }
          if (spec.warmKey) {
            lines = 0;
            const w = await exec(argv, opts);
            const wv = spec.value(w, lines, d);
            if ("error" in wv) fail(`warm: ${wv.error}`, wv.cell);
            else keep(spec.warmKey, col, wv.v);
          }
        } finally {
          await unmount(m);
        }
      }
    }
    for (const col of cols) {
      for (const key of [spec.key, spec.warmKey]) {
        const v = key && best.get(`${key}|${col}`);
        if (key && typeof v === "number" && !failed.has(`${key}|${col}`)) ctx.put(key, col, v);
      }
    }
  }

  // Warm mounts remount without dropping caches, as many times as the cold ones; both report the median.
  const warmReps = 3 * ctx.reps;
  ctx.progress(`  fuse: mount (warm) on ${datasets.b.label} x${warmReps}`);
  const mountWarm = new Map<Col, number[]>();
  for (let rep = 0; rep < warmReps; rep++) {
    for (const col of cols) {
      if (!imageOf(col, "b")) continue;
      try {
        const m = await mount(col, "b");
        sample(mountWarm, col, m.ms);
        await unmount(m);
      } catch (e) {
        ctx.note(`fuse: ${col} warm mount: ${(e as Error).message}`);
      }
    }
  }
  for (const col of cols) {
    const c = mountCold.get(col);
    const w = mountWarm.get(col);
    if (c?.length) ctx.put("fuse.mount.cold.ms", col, median(c));
    if (w?.length) ctx.put("fuse.mount.warm.ms", col, median(w));
  }
}

const BENCH = import.meta.dirname;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function failure(r: Ran): string {
  return `exit ${r.code ?? r.signal}: ${tail(r.stderr)}`;
}

/** What each row runs. `entries`: what `find` lists for dataset b (its files, directories and root). */
function rowSpecs(ctx: FuseContext, entries: number): Spec[] {
  const perSec = (units: number, ms: number) => units / (ms / 1000);
  const catAll = (tree: string) => [
    "sh",
    "-c",
    'find "$1" -type f -print0 | xargs -0 cat > /dev/null',
    "sh",
    tree,
  ];
  const ddBytes = (r: Ran) => {
    const all = [...r.stderr.matchAll(/(\d+) bytes/g)];
    return all.length ? Number(all[all.length - 1]![1]) : Number.NaN;
  };
  const budgetS = (ctx.budgetMs / 1000).toFixed(0);
  return [
    {
      key: "fuse.find.cold",
      warmKey: "fuse.find.warm",
      image: "b",
      argv: (tree) => ["find", tree],
      countLines: true,
      value: (r, lines, d) => {
        if (r.code !== 0) return { error: failure(r) };
        if (lines !== entries) return { error: `find listed ${lines} entries, expected ${entries}` };
        return { v: perSec(d.files, r.ms) };
      },
    },
    {
      key: "fuse.stat.cold",
      warmKey: "fuse.stat.warm",
      image: "b",
      argv: (tree) => ["find", tree, "-type", "f", "-exec", "stat", "-c", "%s", "{}", "+"],
      stdout: true,
      value: (r, _lines, d) => {
        if (r.code !== 0) return { error: failure(r) };
        const sizes = r.stdout.split("\n").filter(Boolean).map(Number);
        const sum = sizes.reduce((x, y) => x + y, 0);
        if (sizes.length !== d.files || sum !== d.bytes) {
          return {
            error: `stat saw ${sizes.length} files of ${sum} bytes, expected ${d.files} of ${d.bytes}`,
          };
        }
        return { v: perSec(d.files, r.ms) };
      },
    },
    {
      key: "fuse.cat.cold",
      warmKey: "fuse.cat.warm",
      image: "b",
      argv: catAll,
      value: (r, _lines, d) => (r.code !== 0 ? { error: failure(r) } : { v: perSec(d.files, r.ms) }),
      verify: (tree, source) => ["diff", "-rq", tree, source],
    },
    {
      key: "fuse.seq.a",
      image: "a",
      argv: catAll,
      value: (r, _lines, d) => (r.code !== 0 ? { error: failure(r) } : { v: perSec(d.bytes / 1e6, r.ms) }),
      verify: (tree, source) => ["diff", "-rq", tree, source],
    },
    {
      key: "fuse.seq.c",
      image: "c",
      argv: (tree) => ["dd", `if=${tree}/big.bin`, "of=/dev/null", "bs=1M"],
      big: true,
      interrupt: true,
      value: (r, _lines, d) => {
        const bytes = ddBytes(r);
        if (!Number.isFinite(bytes)) return { error: failure(r) };
        const v = perSec(bytes / 1e6, r.ms);
        if (r.stopped === "budget") {
          return {
            v,
            partial: `dd stopped by the ${budgetS} s budget after ${(bytes / 1e6).toFixed(0)} of ${(d.bytes / 1e6).toFixed(0)} MB`,
          };
        }
        if (r.code !== 0 || bytes !== d.bytes)
          return { error: `read ${bytes} of ${d.bytes} bytes: ${failure(r)}` };
        return { v };
      },
      verify: (tree, source, r) => ["cmp", "-n", String(ddBytes(r)), `${tree}/big.bin`, `${source}/big.bin`],
    },
    {
      key: "fuse.rand.c",
      image: "c",
      argv: (tree, source) => [
        process.execPath,
        path.join(BENCH, "tasks", "pread.ts"),
        JSON.stringify({
          file: `${tree}/big.bin`,
          size: fs.statSync(`${source}/big.bin`).size,
          reads: RANDOM_READS,
          seed: 4242,
          budgetMs: ctx.budgetMs,
          source: `${source}/big.bin`,
        }),
      ],
      stdout: true,
      // The child stops itself at the budget (a SIGINT would lose its figure).
      big: true,
      value: (r) => {
        if (r.code !== 0) return { error: failure(r) };
        const o = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as {
          ms: number;
          reads: number;
          bytes: number;
          mismatches: number;
          firstMismatch: number | null;
          budgetHit: boolean;
        };
        if (o.mismatches > 0) {
          return {
            error: `WRONG BYTES: ${o.mismatches} of ${o.reads} reads differ from the source (first at offset ${o.firstMismatch})`,
            cell: "wrong bytes",
          };
        }
        if (o.bytes !== o.reads * 4096) return { error: `short reads: ${o.bytes} bytes in ${o.reads} reads` };
        // Timed inside the child, from open to close (not around the command: Node's start-up is not a read).
        const v = perSec(o.bytes / 1e6, o.ms);
        if (o.budgetHit) {
          return {
            v,
            partial: `random reads stopped by the ${budgetS} s budget after ${o.reads} of ${RANDOM_READS}`,
          };
        }
        return { v };
      },
    },
  ];
}

/** Notes for the rows where bfcfs loses to squashfuse_ll or misses the issue's bound. */
export function fuseVerdicts(values: Map<string, Partial<Record<ToolId, Cell>>>): string[] {
  const out: string[] = [];
  for (const r of fuseRows(() => "")) {
    const v = values.get(r.key);
    const ours = v?.bfcfs;
    if (typeof ours !== "number") continue;
    const worse = (a: number, b: number) => (r.higher ? a < b : a > b);
    if (r.bound !== undefined && worse(ours, r.bound)) out.push(`fuse: bfcfs misses the target on ${r.key}`);
    const theirs = v?.squashfuse_ll;
    if (typeof theirs === "number" && worse(ours, theirs)) {
      const ratio = r.higher ? theirs / ours : ours / theirs;
      out.push(`fuse: bfcfs is ${ratio.toFixed(1)}× slower than squashfuse_ll on ${r.key}`);
    }
  }
  return out;
}
