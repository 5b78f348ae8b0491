/**
 * Runners for the comparison tools: the reference C implementation (only through $BFC_REFERENCE),
 * GNU tar (plain and zstd) and squashfs-tools. Each is detected, never installed; times are the
 * command's wall time, peak RSS comes from GNU time when /usr/bin/time is available.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { Dataset } from "./datasets.ts";

/** "zstd-enc": zstd -3 and encrypted with BENCH_PASSWORD (BFC tools only, dataset a only). */
export type Comp = "none" | "zstd" | "zstd-enc";
export const BENCH_PASSWORD = "bench-password";
export type ToolId =
  | "bfcfs"
  | "bfcfs-baseline"
  | "reference"
  | "tar"
  | "squashfs"
  | "yarn-zipfs"
  | "zenfs"
  | "squashfuse_ll"
  | "kernel-squashfs"
  | "bfc-none"
  | "bfc-zstd"
  | "dir"
  | "squashfuse"
  | "bfc-import"
  | "fuse2fs-bfc"
  | "fuse2fs-squashfs";

export interface Measure {
  ok: boolean;
  /** Time of the operation: in-process for bfcfs tasks, wall time for commands. */
  ms: number;
  /** Wall time of the whole process, startup included. */
  wallMs: number;
  rssKiB?: number;
  error?: string;
  details?: Record<string, unknown>;
}

export interface Runner {
  id: ToolId;
  version: string;
  comps: Comp[];
  ext(c: Comp): string;
  create(d: Dataset, out: string, c: Comp): Measure;
  list?(archive: string, c: Comp): Measure;
  /** `dest` exists; the tree ends up as `<dest>/<d.name>`. */
  extract(archive: string, dest: string, d: Dataset, c: Comp): Measure;
  verify?(archive: string, c: Comp): Measure;
  stat?(container: string, p: string): Measure;
}

const GNU_TIME = "/usr/bin/time";

/** mksquashfs options of the squashfs images the fuse and runtime groups compare with (zstd -3). */
export const MKSQUASHFS_ZSTD3 = [
  "-noappend",
  "-no-progress",
  "-quiet",
  "-no-xattrs",
  "-comp",
  "zstd",
  "-Xcompression-level",
  "3",
];

function probe(cmd: string, args: string[]): string | null {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.error) return null;
  return `${r.stdout ?? ""}${r.stderr ?? ""}`;
}

const hasGnuTime = probe(GNU_TIME, ["--version"])?.includes("GNU") === true;

function tail(s: string): string {
  return s.trim().split("\n").slice(-3).join(" | ").slice(0, 300);
}

/** Runs a command, stdout discarded; with `rssFile`, under GNU time to get its peak RSS. */
export function runCommand(argv: string[], opts: { cwd?: string; rssFile?: string } = {}): Measure {
  const timed = opts.rssFile !== undefined && hasGnuTime;
  const full = timed ? [GNU_TIME, "-f", "%M", "-o", opts.rssFile!, ...argv] : argv;
  const t0 = performance.now();
  const r = spawnSync(full[0], full.slice(1), {
    cwd: opts.cwd,
    stdio: ["ignore", "ignore", "pipe"],
    encoding: "utf8",
    maxBuffer: 16 * 1024 * 1024,
  });
  const ms = performance.now() - t0;
  const m: Measure = { ok: r.status === 0, ms, wallMs: ms };
  if (!m.ok) m.error = r.error ? String(r.error.message) : `exit ${r.status}: ${tail(r.stderr ?? "")}`;
  if (timed) {
    const kib = Number.parseInt(fs.readFileSync(opts.rssFile!, "utf8").trim().split("\n").pop() ?? "", 10);
    if (Number.isFinite(kib)) m.rssKiB = kib;
  }
  return m;
}

function firstLine(s: string | null): string {
  return (s ?? "").trim().split("\n")[0] ?? "";
}

function reference(bin: string, rssFile: string): Runner {
  return {
    id: "reference",
    version: firstLine(probe(bin, ["--version"])) || bin,
    comps: ["none", "zstd", "zstd-enc"],
    ext: () => ".bfc",
    create: (d, out, c) => {
      const flags = c === "none" ? [] : ["-c", "zstd", "-l", "3"];
      if (c === "zstd-enc") flags.push("-e", BENCH_PASSWORD);
      return runCommand([bin, "-q", "create", ...flags, out, d.name], { cwd: d.parent, rssFile });
    },
    list: (archive) => runCommand([bin, "list", archive]),
    extract: (archive, dest, _d, c) =>
      runCommand(
        [
          bin,
          "-q",
          "extract",
          ...(c === "zstd-enc" ? ["-p", BENCH_PASSWORD] : []),
          "-k",
          "-C",
          dest,
          archive,
        ],
        { rssFile },
      ),
    // Its verify takes no password (-p is progress there): an encrypted container is checked as it can.
    verify: (archive) => runCommand([bin, "-q", "verify", "--deep", archive]),
    stat: (container, p) => runCommand([bin, "info", container, p]),
  };
}

function tar(zstd: boolean, rssFile: string): Runner {
  return {
    id: "tar",
    version: firstLine(probe("tar", ["--version"])),
    comps: zstd ? ["none", "zstd"] : ["none"],
    ext: (c) => (c === "zstd" ? ".tar.zst" : ".tar"),
    create: (d, out, c) =>
      runCommand(
        ["tar", ...(c === "zstd" ? ["-I", "zstd -3 -T0"] : []), "-cf", out, "-C", d.parent, d.name],
        {
          rssFile,
        },
      ),
    list: (archive, c) => runCommand(["tar", ...(c === "zstd" ? ["--zstd"] : []), "-tf", archive]),
    extract: (archive, dest, _d, c) =>
      runCommand(["tar", ...(c === "zstd" ? ["--zstd"] : []), "-xf", archive, "-C", dest], { rssFile }),
  };
}

function squashfs(zstd: boolean, rssFile: string): Runner {
  const flags = (c: Comp) =>
    c === "zstd" ? ["-comp", "zstd", "-Xcompression-level", "3"] : ["-noI", "-noD", "-noF", "-noX"];
  return {
    id: "squashfs",
    version: firstLine(probe("mksquashfs", ["-version"])),
    comps: zstd ? ["none", "zstd"] : ["none"],
    ext: () => ".sqfs",
    create: (d, out, c) =>
      runCommand(
        [
          "mksquashfs",
          path.join(d.parent, d.name),
          out,
          "-noappend",
          "-no-progress",
          "-quiet",
          "-no-xattrs",
          ...flags(c),
        ],
        { rssFile },
      ),
    list: (archive) => runCommand(["unsquashfs", "-l", archive]),
    extract: (archive, dest, d) =>
      runCommand(["unsquashfs", "-q", "-n", "-d", path.join(dest, d.name), archive], { rssFile }),
  };
}

/** The comparison tools present on this machine, and a note for each one skipped. */
export function detectTools(scratch: string): { runners: Runner[]; notes: string[] } {
  const rssFile = path.join(scratch, "rss.txt");
  const runners: Runner[] = [];
  const notes: string[] = [];
  if (!hasGnuTime) notes.push("GNU time (/usr/bin/time) not found: no peak RSS for external tools");
  const zstd = probe("zstd", ["--version"]) !== null;
  const ref = process.env.BFC_REFERENCE;
  if (!ref) notes.push("reference: skipped (set BFC_REFERENCE to the reference bfc binary)");
  else {
    try {
      fs.accessSync(ref, fs.constants.X_OK);
      runners.push(reference(ref, rssFile));
    } catch {
      notes.push(`reference: skipped (BFC_REFERENCE=${ref} is not an executable)`);
    }
  }
  if (probe("tar", ["--version"])?.includes("GNU tar")) {
    runners.push(tar(zstd, rssFile));
    if (!zstd) notes.push("tar: zstd rows skipped (zstd not installed)");
  } else notes.push("tar: skipped (GNU tar not found)");
  const mk = probe("mksquashfs", ["-help"]);
  if (mk !== null && probe("unsquashfs", ["-help"]) !== null) {
    const sqZstd = /\bzstd\b/.test(mk);
    runners.push(squashfs(sqZstd, rssFile));
    if (!sqZstd) notes.push("squashfs: zstd rows skipped (mksquashfs built without zstd)");
  } else notes.push("squashfs: skipped (squashfs-tools not installed)");
  return { runners, notes };
}
