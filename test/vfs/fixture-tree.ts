/**
 * The tree the VFS conformance suite runs against, and the ways to materialize it: a host folder
 * (node:fs), a zip (the `zip` CLI), a bfc container (our writer) and a memory filesystem (through the
 * VFS write API). Every entry has a fixed mode and mtime so that stats can be compared exactly.
 */

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Writer, type WriterOptions } from "../../src/container/writer.ts";
import type { Vfs } from "../../src/vfs/vfs.ts";
import { randomBytes } from "../helpers.ts";

export type FixtureEntry =
  | { kind: "dir"; path: string; mode: number; mtime: number }
  | { kind: "file"; path: string; mode: number; mtime: number; data: Buffer }
  | { kind: "symlink"; path: string; target: string; mtime: number };

/** A deterministic generator (mulberry32) for the random payload and the random offsets. */

function compressible(n: number): Buffer {
  const lines: string[] = [];
  let len = 0;
  for (let k = 0; len < n; k++) {
    const line = `line ${k}: the quick brown fox jumps over the lazy dog ${k % 7}\n`;
    lines.push(line);
    len += line.length;
  }
  return Buffer.from(lines.join("")).subarray(0, n);
}

/**
 * Even seconds plus a binary-exact fraction (0, ¼, ½, ¾): exact in a double, so utimes stores the
 * same nanoseconds everywhere, and the same whole second in a zip's DOS time and extended timestamp.
 */
const BASE_S = 1_700_000_000;
let tick = 0;
function mtime(): number {
  const k = tick++;
  return BASE_S + 2000 * k + (k % 4) * 0.25;
}

const dir = (p: string, mode = 0o755): FixtureEntry => ({ kind: "dir", path: p, mode, mtime: mtime() });
const file = (p: string, data: string | Buffer, mode = 0o644): FixtureEntry => ({
  kind: "file",
  path: p,
  mode,
  mtime: mtime(),
  data: Buffer.from(data),
});
const link = (p: string, target: string): FixtureEntry => ({
  kind: "symlink",
  path: p,
  target,
  mtime: mtime(),
});

export const RANDOM_SIZE = 1536 * 1024;
export const COMPRESSIBLE_SIZE = 200 * 1024;

/** Parents before children. */
export const ENTRIES: readonly FixtureEntry[] = [
  dir("a"),
  dir("a/b"),
  dir("a/b/c"),
  file("a/top.txt", "top of a\n"),
  file("a/b/c/deep.txt", "three levels down\n"),
  dir("empty-dir"),
  dir("docs", 0o750),
  file("docs/readme.md", "# readme\n\nSome text.\n"),
  file("docs/secret.txt", "only the owner\n", 0o600),
  dir("big"),
  file("big/compressible.txt", compressible(COMPRESSIBLE_SIZE)),
  file("big/random.bin", randomBytes(RANDOM_SIZE, 0xbfc)),
  dir("bin"),
  file("bin/run.sh", "#!/bin/sh\necho run\n", 0o755),
  dir("ünïcödé"),
  file("ünïcödé/日本語.txt", "こんにちは\n"),
  dir("with space"),
  file("with space/file name.txt", "spaces are fine\n"),
  file("empty.txt", ""),
  file("hello.txt", "hello world\n"),
  file(".dotfile", "hidden\n"),
  link("link-file", "hello.txt"),
  link("link-dir", "a/b"),
  link("a/b/up-link", "../../docs/readme.md"),
  link("docs/to-a", "../a"),
  link("dangling", "does-not-exist"),
  link("loop1", "loop2"),
  link("loop2", "loop1"),
  link("self", "self"),
];

export const byPath = new Map(ENTRIES.map((e) => [e.path, e]));

export const FILES = ENTRIES.filter((e) => e.kind === "file").map((e) => e.path);
export const DIRS = ENTRIES.filter((e) => e.kind === "dir").map((e) => e.path);
export const SYMLINKS = ENTRIES.filter((e) => e.kind === "symlink").map((e) => e.path);

/** Writes the tree under `root` (created) with node:fs, modes and mtimes included. */
export function materializeHost(root: string): void {
  fs.mkdirSync(root, { recursive: true });
  for (const e of ENTRIES) {
    const full = path.join(root, e.path);
    if (e.kind === "dir") fs.mkdirSync(full);
    else if (e.kind === "file") fs.writeFileSync(full, e.data);
    else fs.symlinkSync(e.target, full);
  }
  // Modes and times last: creating children moves a directory's mtime.
  for (const e of ENTRIES) {
    const full = path.join(root, e.path);
    if (e.kind !== "symlink") fs.chmodSync(full, e.mode);
    fs.lutimesSync(full, e.mtime, e.mtime);
  }
}

/**
 * Writes the tree under the VFS directory `base` through the VFS write API (mkdir, writeFile,
 * symlink, chmod, lutimes).
 */
export function materializeVfs(vfs: Vfs, base: string): void {
  const at = (p: string) => (base === "/" ? `/${p}` : `${base}/${p}`);
  for (const e of ENTRIES) {
    if (e.kind === "dir") vfs.mkdirSync(at(e.path), { mode: e.mode });
    else if (e.kind === "file") vfs.writeFileSync(at(e.path), e.data, { mode: e.mode });
    else vfs.symlinkSync(e.target, at(e.path));
  }
  for (const e of ENTRIES) {
    if (e.kind !== "symlink") vfs.chmodSync(at(e.path), e.mode);
    vfs.lutimesSync(at(e.path), e.mtime, e.mtime);
  }
}

export function haveZip(): boolean {
  try {
    execFileSync("zip", ["-v"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Zips the contents of `srcDir` with the zip CLI, symlinks stored as links (-y), UTF-8 names. */
export function buildZip(srcDir: string, zipFile: string): void {
  execFileSync("zip", ["-q", "-r", "-y", zipFile, "."], {
    cwd: srcDir,
    env: { ...process.env, LANG: "C.UTF-8", LC_ALL: "C.UTF-8" },
  });
}

/** Builds a bfc container of `srcDir` (zstd) with our writer. */
export async function buildBfc(srcDir: string, file: string, options: WriterOptions = {}): Promise<void> {
  const w = await Writer.create(file, { compression: "zstd", ...options });
  await w.addTree(srcDir, "");
  await w.finish();
}
