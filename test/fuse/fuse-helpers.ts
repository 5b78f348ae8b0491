/**
 * Helpers for the FUSE tests: whether FUSE can be used here, asynchronous child processes (a mount
 * served by this process must never be touched by a synchronous call from it), the suite's temp root
 * with its leak bookkeeping (mounts under it, serving processes whose argv names it), and the
 * generated source tree.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fuseMountpoints } from "../../src/fuse/mount.ts";
import { processesWhere } from "../../src/fuse/mount-process.ts";
import { prng, ROOT, randomBytes } from "../helpers.ts";

export const MAIN = path.join(ROOT, "src", "cli", "main.ts");
export const FUSERMOUNT = fs.existsSync("/usr/bin/fusermount3") ? "fusermount3" : "fusermount";

/** Why the FUSE tests cannot run here, or undefined when they can (either backend will do). */
export function fuseSkipReason(): string | undefined {
  if (!fs.existsSync("/dev/fuse")) return "/dev/fuse is absent (no FUSE in this kernel or container)";
  if (process.getuid?.() === 0) return undefined;
  return nativeSkipReason();
}

/** Why the fuse-native backend cannot be used here, or undefined when it can. */
export function nativeSkipReason(): string | undefined {
  if (!fs.existsSync("/dev/fuse")) return "/dev/fuse is absent (no FUSE in this kernel or container)";
  try {
    createRequire(import.meta.url)("fuse-native");
  } catch (e) {
    return `fuse-native cannot load (${(e as Error).message.split("\n")[0]}); install libfuse2`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Child processes, always asynchronous.

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

export interface ExecOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}

/** A clean environment: UTF-8 locale (error messages and names), TZ=UTC, no BFC_* variables. */
function environment(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("BFC_")) env[k] = v;
  env.TZ = "UTC";
  env.LC_ALL = "C.UTF-8";
  env.LANG = "C.UTF-8";
  delete env.LANGUAGE;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Runs a program to its end; never rejects (the exit status is in the result). */
export function run(file: string, args: string[], opts: ExecOptions = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      {
        cwd: opts.cwd,
        env: environment(opts.env),
        encoding: "buffer",
        maxBuffer: 256 * 1024 * 1024,
        timeout: opts.timeoutMs ?? 60_000,
        killSignal: "SIGKILL",
      },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: unknown; signal?: NodeJS.Signals }) | null;
        if (e && typeof e.code === "string") {
          // the program could not be started at all
          resolve({ code: null, signal: null, stdout: Buffer.alloc(0), stderr: e.message });
          return;
        }
        resolve({
          code: e ? ((e.code as number | undefined) ?? null) : 0,
          signal: e?.signal ?? null,
          stdout,
          stderr: stderr.toString("utf8"),
        });
      },
    );
  });
}

/** `bfc …` from source, asynchronously. */
export function bfc(args: string[], opts: ExecOptions = {}): Promise<Result> {
  return run(process.execPath, [MAIN, ...args], opts);
}

/** `sh -c script "$@"`, for pipelines. */
export function sh(script: string, args: string[] = [], opts: ExecOptions = {}): Promise<Result> {
  return run("sh", ["-c", script, "sh", ...args], opts);
}

/** sha256sum of `files` (relative to `dir`) run as one child: path → hash. */
export async function sha256sums(dir: string, files: string[]): Promise<Map<string, string>> {
  const r = await run("sha256sum", ["--", ...files], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  const out = new Map<string, string>();
  for (const line of r.stdout.toString("utf8").split("\n")) {
    if (line) out.set(line.slice(66), line.slice(0, 64));
  }
  return out;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 50 ms until it holds or `ms` pass; returns whether it held. */
export async function waitFor(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (cond()) return true;
    if (Date.now() > end) return false;
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------------
// The suite's temp root and leak bookkeeping.

/** FUSE mountpoints at or under `root` (from /proc/self/mountinfo, never the mounts themselves). */
export function mountsUnder(root: string): string[] {
  return [...fuseMountpoints()].filter((m) => m === root || m.startsWith(`${root}/`));
}

/**
 * Processes (other than this one) whose argv names something under `root` and runs `mount`: the
 * serving processes the suite started, found in /proc (the root is a fresh mkdtemp directory, so no
 * one else's process matches). `under` narrows it to one mountpoint.
 */
export function servingPids(root: string, under?: string): number[] {
  return processesWhere(
    (argv) =>
      argv.includes("mount") && (under ? argv.includes(under) : argv.some((a) => a.startsWith(`${root}/`))),
  );
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/**
 * A suite's temp root. Everything it mounts lives under it; `cleanup` (async, for hooks) and the
 * exit-time safety net (sync) lazily unmount whatever is left and kill the serving processes, and
 * only then remove the directory (never recursing into a live mount).
 */
export class SuiteRoot {
  readonly dir: string;
  /** What a cleanup had to force: a mount still there or a process still alive after a normal unmount. */
  readonly leaks: string[] = [];
  /** In-process unmounters (mountFuse), run first by cleanups. */
  readonly inProcess = new Set<() => Promise<void>>();
  /** Child processes started directly by the suite (foreground mounts). */
  readonly children = new Set<number>();

  constructor(prefix = "bfc-fuse-") {
    this.dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
    process.on("exit", () => this.cleanupSync());
  }

  path(...parts: string[]): string {
    return path.join(this.dir, ...parts);
  }

  /** A fresh empty directory to mount on. */
  mountpoint(name: string): string {
    return fs.mkdtempSync(path.join(this.dir, `mnt-${name}-`));
  }

  /**
   * Unmounts `mnt` the normal way (`bfc umount`) if it is still mounted, waits for its serving
   * process to exit, and forces (lazy unmount, SIGKILL) what remains, recording that as a leak.
   */
  async release(mnt: string): Promise<void> {
    if (mountsUnder(mnt).includes(mnt)) {
      const r = await bfc(["umount", mnt]);
      if (r.code !== 0) {
        this.leaks.push(`bfc umount ${mnt} failed: ${r.stderr.trim()}`);
        await run(FUSERMOUNT, ["-uz", mnt]);
      }
    }
    if (!(await waitFor(() => servingPids(this.dir, mnt).length === 0, 5000))) {
      for (const pid of servingPids(this.dir, mnt)) {
        this.leaks.push(`process ${pid} serving ${mnt} still alive 5 s after unmount`);
        kill(pid, "SIGKILL");
      }
    }
  }

  /** Everything left: in-process mounts, mounts under the root, processes, then the directory. */
  async cleanup(): Promise<void> {
    for (const unmount of this.inProcess) await unmount().catch(() => {});
    this.inProcess.clear();
    for (const m of mountsUnder(this.dir)) {
      this.leaks.push(`mount left at ${m}`);
      await run(FUSERMOUNT, ["-uz", m]);
    }
    for (const pid of this.children) kill(pid, "SIGTERM");
    for (const pid of servingPids(this.dir)) kill(pid, "SIGTERM");
    if (!(await waitFor(() => servingPids(this.dir).length === 0, 3000))) {
      for (const pid of servingPids(this.dir)) kill(pid, "SIGKILL");
    }
  }

  /** The exit-time net: no event loop, so synchronous; mounts are detached lazily (no request is sent). */
  cleanupSync(): void {
    for (const m of mountsUnder(this.dir)) {
      try {
        execFileSync(FUSERMOUNT, ["-uz", m], { stdio: "ignore" });
      } catch {
        // nothing more to do
      }
    }
    for (const pid of this.children) kill(pid, "SIGKILL");
    for (const pid of servingPids(this.dir)) kill(pid, "SIGKILL");
    if (mountsUnder(this.dir).length === 0) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** `bfc umount`, then the mount is gone and its serving process exits within a couple of seconds. */
export async function umountCli(root: SuiteRoot, mnt: string): Promise<void> {
  const r = await bfc(["umount", mnt]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!mountsUnder(mnt).includes(mnt), "still mounted after bfc umount");
  assert.ok(await waitFor(() => servingPids(root.dir, mnt).length === 0, 5000), "serving process lingers");
}

/** Starts a foreground mount (`bfc mount -f`) as a direct child; resolves when it exits. */
export function spawnForeground(
  root: SuiteRoot,
  args: string[],
): { pid: number; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> } {
  const child = spawn(process.execPath, [MAIN, "mount", "--foreground", ...args], {
    env: environment(),
    stdio: ["ignore", "ignore", "pipe"],
  });
  const pid = child.pid ?? -1;
  root.children.add(pid);
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d: string) => {
    stderr += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>(
    (resolve) => {
      child.on("close", (code, signal) => {
        root.children.delete(pid);
        resolve({ code, signal, stderr });
      });
    },
  );
  return { pid, exited };
}

// ---------------------------------------------------------------------------------------------
// The generated tree.

export interface TreeInfo {
  /** Relative paths of regular files. */
  files: string[];
  /** Relative paths of directories (not the root). */
  dirs: string[];
  /** Relative path → link target. */
  links: Map<string, string>;
}

/**
 * Mtimes on a 1/16 s grid: exact in a double (so utimes stores exactly these nanoseconds), and half
 * of them fall on half milliseconds, which shows that FUSE truncates to milliseconds.
 */
function mtimeAt(k: number): number {
  return 1_700_000_000 + 37 * k + (k % 16) / 16;
}

function text(n: number, seed: number): Buffer {
  const next = prng(seed);
  const parts: string[] = [];
  let len = 0;
  while (len < n) {
    const line = `${Math.floor(next() * 1e9)} the quick brown fox ${"~".repeat(Math.floor(next() * 40))}\n`;
    parts.push(line);
    len += line.length;
  }
  return Buffer.from(parts.join("")).subarray(0, n);
}

/**
 * Writes the test tree under `root` (created): nested directories, ~200 small files of varied sizes
 * (text and random), an empty file, an executable, UTF-8 names with spaces, relative symlinks to a
 * file and to a directory, a dangling link and a two-link loop. Modes and mtimes are fixed.
 */
export function generateTree(root: string): TreeInfo {
  const next = prng(0x5eed);
  const dirs = [
    "a",
    "a/b",
    "a/b/c",
    "a/b/c/d",
    "docs",
    "docs/guide",
    "ünïcödé",
    "ünïcödé/日本語 フォルダ",
    "with space",
    "with space/inner dir",
    "empty-dir",
    "many",
  ];
  const files: { rel: string; data: Buffer; mode: number }[] = [];
  const add = (rel: string, data: Buffer, mode = 0o644) => files.push({ rel, data, mode });
  add("empty.txt", Buffer.alloc(0));
  add("run.sh", Buffer.from("#!/bin/sh\necho run\n"), 0o755);
  add("secret.txt", Buffer.from("only the owner\n"), 0o600);
  add("hello.txt", Buffer.from("hello world\n"));
  add("ünïcödé/日本語 フォルダ/こんにちは 世界.txt", Buffer.from("こんにちは\n"));
  add("with space/file name.txt", Buffer.from("spaces are fine\n"));
  add("with space/inner dir/émoji 🎉.md", Buffer.from("# party\n"));
  add("a/b/c/d/deep.bin", randomBytes(300 * 1024, 1));
  add("docs/guide/compressible.txt", text(256 * 1024, 2));
  const placed = dirs.filter((d) => d !== "empty-dir");
  for (let k = 0; files.length < 200; k++) {
    const dir = k < 60 ? "many" : (placed[Math.floor(next() * placed.length)] as string);
    // sizes from 1 byte to ~40 KiB, skewed small; every third file incompressible
    const size = 1 + Math.floor(next() ** 3 * 40 * 1024);
    const data = k % 3 === 0 ? randomBytes(size, 100 + k) : text(size, 100 + k);
    add(
      `${dir}/file-${String(k).padStart(3, "0")}${k % 5 === 0 ? " copy" : ""}.${k % 3 ? "txt" : "bin"}`,
      data,
    );
  }
  const links = new Map<string, string>([
    ["link-to-file", "hello.txt"],
    ["link-to-dir", "a/b"],
    ["a/b/up-link", "../../docs/guide/compressible.txt"],
    ["docs/to-unicode", "../ünïcödé/日本語 フォルダ"],
    ["dangling", "does/not/exist"],
    ["loop1", "loop2"],
    ["loop2", "loop1"],
  ]);

  fs.mkdirSync(root, { recursive: true });
  for (const d of dirs) fs.mkdirSync(path.join(root, d), { recursive: true });
  for (const f of files) fs.writeFileSync(path.join(root, f.rel), f.data);
  for (const [rel, target] of links) fs.symlinkSync(target, path.join(root, rel));
  // Modes and times last (creating children moves a directory's mtime), deepest first.
  let k = 0;
  for (const f of files) {
    fs.chmodSync(path.join(root, f.rel), f.mode);
    const t = mtimeAt(k++);
    fs.utimesSync(path.join(root, f.rel), t, t);
  }
  for (const rel of links.keys()) {
    const t = mtimeAt(k++);
    fs.lutimesSync(path.join(root, rel), t, t);
  }
  for (const d of [...dirs].sort((x, y) => y.length - x.length)) {
    fs.chmodSync(path.join(root, d), d === "docs" ? 0o750 : 0o755);
    const t = mtimeAt(k++);
    fs.utimesSync(path.join(root, d), t, t);
  }
  return { files: files.map((f) => f.rel), dirs, links };
}
