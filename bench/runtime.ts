/**
 * The "runtime" group: how long a container takes from `create` to the first output of its
 * process, and what its root filesystem costs on disk, for a ~100 MB root filesystem (busybox,
 * copies of the host's shared libraries, generated text; ~20 MB with --quick). Columns:
 *   bfc-none, bfc-zstd  `bfc container run --bundle B` (pack into <id>.bfc, FUSE + overlay, runc)
 *   dir                 `bfc container run --backend dir --bundle B` (plain copy + overlay, runc)
 *   squashfuse          the same pipeline by hand: mksquashfs -comp zstd -Xcompression-level 3,
 *                       squashfuse_ll, overlay, runc run
 * The container prints one line and exits; the time is taken when that line reaches our pipe.
 * Everything lives under `<tmp>/runtime/` and is removed (containers deleted, mounts swept).
 */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { defaultOciConfig } from "../src/runtime/oci-spec.ts";
import { makePool, prng } from "./datasets.ts";
import type { Cell } from "./report.ts";
import { MKSQUASHFS_ZSTD3, type ToolId } from "./tools.ts";

export const RUNTIME_COLUMNS = [
  "bfc-none",
  "bfc-zstd",
  "dir",
  "squashfuse",
] as const satisfies readonly ToolId[];
type Col = (typeof RUNTIME_COLUMNS)[number];

export interface RuntimeContext {
  put(key: string, tool: ToolId, v: Cell): void;
  note(msg: string): void;
  progress(msg: string): void;
  reps: number;
  tmp: string;
  /** Where the generated root filesystem is kept between runs (bench/data/<scale>/). */
  data: string;
  /** argv prefix running the bfc CLI. */
  cli: string[];
  /** Root filesystem size to generate, bytes. */
  bytes: number;
}

export function runtimeRows(mb: number): { key: string; label: string; target?: string }[] {
  const r = `${mb} MB rootfs`;
  return [
    { key: "runtime.first.ms", label: `container create → first output, ${r}, ms`, target: "≤ squashfuse" },
    { key: "runtime.pack.ms", label: `container create (pack the bundle), ${r}, ms` },
    { key: "runtime.start.ms", label: `container start → first output (created), ${r}, ms` },
    { key: "runtime.disk.MB", label: `container root filesystem on disk, ${r}, MB` },
  ];
}

function found(cmd: string, args: string[]): boolean {
  return !spawnSync(cmd, args, { stdio: "ignore" }).error;
}

/** Why the group cannot run here, or undefined. */
export function runtimeSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (runc, overlay mounts)";
  if (!fs.existsSync("/dev/fuse")) return "/dev/fuse is missing";
  if (!found("runc", ["--version"])) return "runc is not installed (apt-get install runc)";
  if (!["/bin/busybox", "/usr/bin/busybox"].some((p) => fs.existsSync(p)))
    return "busybox is not installed (apt-get install busybox-static)";
  return undefined;
}

/**
 * The root filesystem: busybox with its applets, up to 60% of `bytes` in copies of the host's
 * shared libraries (sorted by name, so the same host gives the same set), the rest generated text
 * (the datasets' material: text, JSON, code-like lines, ~20% incompressible) in /usr/share/doc-like
 * files of 2–62 KiB. Rebuilt when the manifest does not match.
 */
function ensureRootfs(dir: string, bytes: number): { files: number; bytes: number } {
  const manifest = path.join(dir, "..", "runtime-rootfs.json");
  try {
    const m = JSON.parse(fs.readFileSync(manifest, "utf8"));
    if (m.target === bytes && fs.existsSync(dir)) return m;
  } catch {
    // (re)build
  }
  fs.rmSync(dir, { recursive: true, force: true });
  for (const d of ["bin", "etc", "tmp", "proc", "sys", "dev", "usr/lib", "usr/share/doc"])
    fs.mkdirSync(path.join(dir, d), { recursive: true });
  const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((p) => fs.existsSync(p)) as string;
  fs.copyFileSync(busybox, path.join(dir, "bin", "busybox"));
  fs.chmodSync(path.join(dir, "bin", "busybox"), 0o755);
  for (const a of ["sh", "cat", "echo", "ls", "find", "sleep", "true"])
    fs.symlinkSync("busybox", path.join(dir, "bin", a));
  fs.writeFileSync(path.join(dir, "etc", "os-release"), 'NAME="bench rootfs"\nID=bench\n');
  let total = fs.statSync(busybox).size;
  let files = 2;
  const libs = "/usr/lib/x86_64-linux-gnu";
  let names: string[] = [];
  try {
    names = fs
      .readdirSync(libs)
      .filter((n) => /\.so(\.|$)/.test(n))
      .sort();
  } catch {
    // no host libraries: all text
  }
  for (const n of names) {
    const st = fs.lstatSync(path.join(libs, n));
    if (!st.isFile() || total + st.size > bytes * 0.6) continue;
    fs.copyFileSync(path.join(libs, n), path.join(dir, "usr", "lib", n));
    total += st.size;
    files++;
  }
  const pool = makePool(21, 8 * 1024 * 1024);
  const next = prng(0xb0f5);
  for (let i = 0; total < bytes; i++) {
    const sub = path.join(dir, "usr", "share", "doc", `pkg-${String(i >> 5).padStart(3, "0")}`);
    if (i % 32 === 0) fs.mkdirSync(sub, { recursive: true });
    const size = Math.min(bytes - total, 2048 + Math.floor(next() * 60 * 1024));
    const at = Math.floor(next() * (pool.length - size));
    fs.writeFileSync(path.join(sub, `file-${i}.txt`), pool.subarray(at, at + size));
    total += size;
    files++;
  }
  const m = { target: bytes, files, bytes: total };
  fs.writeFileSync(manifest, JSON.stringify(m));
  return m;
}

interface Timed {
  ok: boolean;
  /** Milliseconds until the first byte on stdout. */
  firstMs: number;
  error?: string;
}

/** Runs `argv` and times the first byte on its stdout (then waits for it to end). */
function timeFirstOutput(argv: string[], env?: NodeJS.ProcessEnv): Promise<Timed> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let first = -1;
    let stderr = "";
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], env });
    child.stdout.on("data", () => {
      if (first < 0) first = performance.now() - t0;
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      resolve({ ok: false, firstMs: Number.NaN, error: e.message });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code !== 0 || first < 0) {
        resolve({ ok: false, firstMs: Number.NaN, error: `exit ${code}: ${stderr.trim().slice(-300)}` });
      } else resolve({ ok: true, firstMs: first });
    });
  });
}

function sh(argv: string[]): { ok: boolean; out: string } {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: "utf8" });
  return { ok: r.status === 0, out: `${r.stdout ?? ""}${r.stderr ?? ""}`.trim() };
}

function duBytes(p: string): number {
  const r = sh(["du", "-s", "-B1", p]);
  return Number.parseInt(r.out.split(/\s/)[0] ?? "", 10);
}

function best(xs: number[]): number {
  return xs.length ? Math.min(...xs) : Number.NaN;
}

export async function measureRuntime(ctx: RuntimeContext): Promise<void> {
  const work = path.join(ctx.tmp, "runtime");
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  const rootfs = path.join(ctx.data, "runtime-rootfs");
  ctx.progress(`runtime: root filesystem (${(ctx.bytes / 1e6).toFixed(0)} MB)`);
  const made = ensureRootfs(rootfs, ctx.bytes);
  ctx.note(
    `runtime: root filesystem of ${made.files} files, ${(made.bytes / 1e6).toFixed(1)} MB (busybox, host shared libraries, generated text); warm page cache`,
  );
  const bundle = path.join(work, "bundle");
  fs.mkdirSync(bundle);
  // root.path may be absolute (OCI): the generated tree is used where it is.
  const config = defaultOciConfig(["echo", "first output"]);
  config.root = { path: rootfs, readonly: false };
  fs.writeFileSync(path.join(bundle, "config.json"), JSON.stringify(config, null, 2));
  const cfgFile = path.join(work, "config.json");
  const cfgFor = (c: Col) =>
    JSON.stringify({
      runtime: {
        state_dir: path.join(work, "state"),
        backends: {
          bfc: {
            container_path: path.join(work, "bfc"),
            compression: c === "bfc-zstd" ? "zstd" : "none",
            compression_level: 3,
          },
          dir: { container_path: path.join(work, "dir") },
        },
      },
    });
  const env = {
    ...process.env,
    NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? path.join(ctx.tmp, "compile-cache"),
  };
  const bfc = (args: string[]) => [...ctx.cli, "container", "--config", cfgFile, ...args];
  const bfcSync = (args: string[]) => {
    const argv = bfc(args);
    return spawnSync(argv[0] as string, argv.slice(1), { env, encoding: "utf8" });
  };
  const del = (id: string) => bfcSync(["delete", "--force", id]);
  // One untimed run first, so Node's compile cache is warm like the page cache.
  fs.writeFileSync(cfgFile, cfgFor("bfc-none"));
  await timeFirstOutput(bfc(["run", "--backend", "dir", "--bundle", bundle, "warmup"]), env);
  del("warmup");

  for (const col of ["bfc-none", "bfc-zstd", "dir"] as const) {
    fs.writeFileSync(cfgFile, cfgFor(col));
    const backend = col === "dir" ? "dir" : "bfc";
    const first: number[] = [];
    const pack: number[] = [];
    const start: number[] = [];
    let disk = Number.NaN;
    let failure = "";
    for (let i = 0; i < ctx.reps && !failure; i++) {
      ctx.progress(`  runtime ${col}: run ${i + 1}/${ctx.reps}`);
      const id = `bench-${col}-${i}`;
      const r = await timeFirstOutput(bfc(["run", "--backend", backend, "--bundle", bundle, id]), env);
      if (!r.ok) failure = r.error ?? "failed";
      else first.push(r.firstMs);
      disk = duBytes(col === "dir" ? path.join(work, "dir", id) : path.join(work, "bfc", `${id}.bfc`));
      del(id);
      if (failure) break;
      const t0 = performance.now();
      const c = bfcSync(["create", "--backend", backend, "--bundle", bundle, id]);
      if (c.status !== 0) {
        failure = c.stderr.trim();
        break;
      }
      pack.push(performance.now() - t0);
      const s = await timeFirstOutput(bfc(["run", id]), env);
      if (!s.ok) failure = s.error ?? "failed";
      else start.push(s.firstMs);
      del(id);
    }
    if (failure) {
      ctx.put("runtime.first.ms", col, "fails");
      ctx.note(`runtime ${col}: ${failure}`);
      continue;
    }
    ctx.put("runtime.first.ms", col, best(first));
    ctx.put("runtime.pack.ms", col, best(pack));
    ctx.put("runtime.start.ms", col, best(start));
    ctx.put("runtime.disk.MB", col, disk / 1e6);
  }
  await measureSquashfuse(ctx, work, rootfs, config);
  fs.rmSync(work, { recursive: true, force: true });
}

/** The squashfs pipeline by hand, timed from mksquashfs to the first output. */
async function measureSquashfuse(
  ctx: RuntimeContext,
  work: string,
  rootfs: string,
  config: ReturnType<typeof defaultOciConfig>,
): Promise<void> {
  const missing = ["mksquashfs", "squashfuse_ll", "fusermount3"].find(
    (c) => !found(c, ["-h"]) && !found(c, ["--help"]),
  );
  if (missing) {
    ctx.note(
      `runtime squashfuse: ${missing} is not installed (apt-get install squashfs-tools squashfuse fuse3)`,
    );
    return;
  }
  const dir = path.join(work, "sq");
  const runcRoot = path.join(dir, "runc");
  const first: number[] = [];
  const pack: number[] = [];
  const start: number[] = [];
  let disk = Number.NaN;
  for (let i = 0; i < ctx.reps; i++) {
    ctx.progress(`  runtime squashfuse: run ${i + 1}/${ctx.reps}`);
    fs.rmSync(dir, { recursive: true, force: true });
    const p = (n: string) => path.join(dir, n);
    for (const d of ["lower", "upper", "work", "rootfs", "bundle"]) fs.mkdirSync(p(d), { recursive: true });
    const id = `sq-${i}`;
    const t0 = performance.now();
    const mk = sh(["mksquashfs", rootfs, p("img.sqfs"), ...MKSQUASHFS_ZSTD3]);
    const packed = performance.now();
    if (!mk.ok) {
      ctx.note(`runtime squashfuse: mksquashfs failed: ${mk.out.slice(-300)}`);
      return;
    }
    const run = async (): Promise<number> => {
      const t = performance.now();
      const steps = [
        ["squashfuse_ll", p("img.sqfs"), p("lower")],
        [
          "mount",
          "-t",
          "overlay",
          "overlay",
          "-o",
          `lowerdir=${p("lower")},upperdir=${p("upper")},workdir=${p("work")}`,
          p("rootfs"),
        ],
      ];
      for (const s of steps) {
        const r = sh(s);
        if (!r.ok) throw new Error(`${s[0]}: ${r.out}`);
      }
      fs.writeFileSync(
        p("bundle/config.json"),
        JSON.stringify({ ...config, root: { path: p("rootfs"), readonly: false } }),
      );
      const spawned = performance.now();
      const r = await timeFirstOutput(["runc", "--root", runcRoot, "run", "--bundle", p("bundle"), id]);
      if (!r.ok) throw new Error(`runc run: ${r.error}`);
      return spawned - t + r.firstMs;
    };
    try {
      const startMs = await run();
      first.push(packed - t0 + startMs);
      pack.push(packed - t0);
      teardown(dir);
      start.push(await run());
      disk = fs.statSync(p("img.sqfs")).size;
    } catch (e) {
      ctx.note(`runtime squashfuse: ${(e as Error).message.slice(0, 300)}`);
      teardown(dir);
      return;
    }
    teardown(dir);
  }
  ctx.put("runtime.first.ms", "squashfuse", best(first));
  ctx.put("runtime.pack.ms", "squashfuse", best(pack));
  ctx.put("runtime.start.ms", "squashfuse", best(start));
  ctx.put("runtime.disk.MB", "squashfuse", disk / 1e6);
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Unmounts the overlay and the squashfuse mount of one run. */
function teardown(dir: string): void {
  sh(["umount", path.join(dir, "rootfs")]);
  sh(["fusermount3", "-u", path.join(dir, "lower")]);
}
