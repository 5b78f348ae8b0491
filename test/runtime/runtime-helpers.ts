/**
 * Helpers for the container runtime tests: whether they can run here (root, /dev/fuse, fuse-native,
 * runc, a static busybox), a tiny busybox root filesystem and OCI bundles around it, a config file
 * confining everything to one temp root, and the leak checks (mounts, serving processes, runc
 * containers) with a cleanup that forces whatever is left.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { processesWhere } from "../../src/fuse/mount-process.ts";
import { mountsAtOrUnder } from "../../src/runtime/mounts.ts";
import { defaultOciConfig } from "../../src/runtime/oci-spec.ts";

export const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find((p) => fs.existsSync(p));

function onPath(bin: string): boolean {
  return (process.env.PATH ?? "").split(":").some((d) => d && fs.existsSync(path.join(d, bin)));
}

/** Why the runtime tests cannot run here, or undefined when they can. */
export function runtimeSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return "not root (runc and overlay mounts need root)";
  if (!fs.existsSync("/dev/fuse")) return "/dev/fuse is absent";
  try {
    createRequire(import.meta.url)("fuse-native");
  } catch (e) {
    return `fuse-native cannot load (${(e as Error).message.split("\n")[0]}); install libfuse2`;
  }
  if (!onPath("runc")) return "runc is not installed (Debian: apt-get install runc)";
  if (!BUSYBOX) return "busybox is not installed (Debian: apt-get install busybox-static)";
  try {
    if (execFileSync("file", ["-L", BUSYBOX], { encoding: "utf8" }).includes("dynamically linked"))
      return `${BUSYBOX} is dynamically linked (install busybox-static)`;
  } catch {
    // no `file` command: assume the Debian package's static build
  }
  return undefined;
}

const APPLETS = ["sh", "cat", "echo", "ls", "sleep", "mkdir", "rm", "touch", "test", "[", "true", "hostname"];

/** A root filesystem: busybox, its applets as symlinks, an os-release file, empty mountpoints. */
export function buildRootfs(dir: string): void {
  for (const d of ["bin", "etc", "tmp", "proc", "sys", "dev", "data"])
    fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.copyFileSync(BUSYBOX as string, path.join(dir, "bin", "busybox"));
  fs.chmodSync(path.join(dir, "bin", "busybox"), 0o755);
  for (const a of APPLETS) fs.symlinkSync("busybox", path.join(dir, "bin", a));
  fs.writeFileSync(path.join(dir, "etc", "os-release"), 'NAME="bfcfs tiny"\nID=bfcfs-tiny\nVERSION_ID=1\n');
  fs.writeFileSync(path.join(dir, "etc", "hostname"), "tiny\n");
  fs.chmodSync(path.join(dir, "tmp"), 0o1777);
}

/** A config.json like `runc spec`'s, running `args`, with a writable root. */
export function ociConfig(args: string[], env: string[] = []): Record<string, unknown> {
  return defaultOciConfig(args, env) as unknown as Record<string, unknown>;
}

/** A bundle folder: config.json (from `config`, or raw text) and a copy of `rootfs` (unless null). */
export function makeBundle(
  dir: string,
  config: Record<string, unknown> | string | null,
  rootfs: string | null,
): string {
  fs.mkdirSync(dir, { recursive: true });
  if (config !== null) {
    fs.writeFileSync(
      path.join(dir, "config.json"),
      typeof config === "string" ? config : JSON.stringify(config, null, 2),
    );
  }
  if (rootfs !== null)
    fs.cpSync(rootfs, path.join(dir, "rootfs"), { recursive: true, verbatimSymlinks: true });
  return dir;
}

/** Processes whose command line names something under `root` (our serving `bfc mount`s). */
export function processesUnder(root: string): number[] {
  return processesWhere((argv) => argv.includes("mount") && argv.some((a) => a.startsWith(`${root}/`)));
}

/** Lazily unmounts everything under `root`, kills serving processes and runc containers, removes it. */
export function forceCleanup(root: string, runcRoot: string): void {
  try {
    const list = execFileSync("runc", ["--root", runcRoot, "list", "-q"], { encoding: "utf8" });
    for (const id of list.split("\n").filter(Boolean)) {
      execFileSync("runc", ["--root", runcRoot, "delete", "--force", id], { stdio: "ignore" });
    }
  } catch {
    // no runc state
  }
  for (const m of mountsAtOrUnder(root)) {
    try {
      execFileSync("umount", ["-l", m.mountpoint], { stdio: "ignore" });
    } catch {
      // gone meanwhile
    }
  }
  for (const pid of processesUnder(root)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  if (mountsAtOrUnder(root).length === 0) fs.rmSync(root, { recursive: true, force: true });
}

export function tempRoot(prefix: string): string {
  return fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
}

/** Flips `n` bytes of `file` at `offset` (negative: from the end). */
export function flipBytes(file: string, offset: number, n = 8): void {
  const size = fs.statSync(file).size;
  const at = offset < 0 ? size + offset : offset;
  const fd = fs.openSync(file, "r+");
  try {
    const b = Buffer.alloc(n);
    fs.readSync(fd, b, 0, n, at);
    for (let i = 0; i < n; i++) b[i] = (b[i] as number) ^ 0xa5;
    fs.writeSync(fd, b, 0, n, at);
  } finally {
    fs.closeSync(fd);
  }
}

/** Whether `pid` runs (a zombie does not: where PID 1 does not reap, dead processes stay as zombies). */
export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
