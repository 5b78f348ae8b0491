/**
 * `bfc umount [--lazy] <mountpoint>`: unmounts a `bfc mount` (any FUSE mount, also a stale one whose
 * process was killed). Returns once the serving process has exited, unless --lazy or --no-wait. A
 * read-write mount commits its changes first, while still mounted: when that fails, it stays
 * mounted (exit 1) and nothing is lost.
 */
import fs from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { CliError, type Ctx, run } from "./common.ts";

async function umount(ctx: Ctx, mountpoint: string, o: { lazy?: boolean; wait?: boolean }): Promise<number> {
  const { canonicalMountpoint, unmountFuse } = await import("../fuse/mount.ts");
  const { mountProcesses } = await import("../fuse/mount-process.ts");
  const mp = canonicalMountpoint(mountpoint);
  // The serving process still has work after the kernel lets go: a read-write mount commits its
  // last changes. Returning only once it exits means the container is complete when we do.
  // A foreground `bfc mount -f` names the mountpoint as it was given (through a link, maybe).
  const given = path.resolve(mountpoint);
  const names = given === mp ? [mp] : [mp, given];
  const pids = [...new Set(names.flatMap((n) => mountProcesses(n)))];
  // A read-write mount commits first, while it is still mounted: if that fails (a full disk), the
  // changes stay reachable there instead of being lost with the serving process.
  if (!o.lazy && pids.some((p) => readWriteMount(argvOf(p)))) await commitFirst(mp);
  await unmountFuse(mp, { lazy: o.lazy });
  ctx.debug(`unmounted ${mp}`);
  if (o.lazy || o.wait === false || pids.length === 0) return 0;
  // Still serving: the same pid with a command line that names this mountpoint (a pid reused by
  // another process after the mount process exited does not count).
  const serving = () =>
    pids.some((p) => {
      const argv = argvOf(p);
      return argv.includes("mount") && names.some((n) => argv.includes(n));
    });
  const until = async (ms: number) => {
    const end = Date.now() + ms;
    while (serving()) {
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 25));
    }
    return true;
  };
  if (!(await until(1500))) {
    ctx.warn(`waiting for the mount process (pid ${pids.join(", ")}) to finish its last commit and exit …`);
    await until(Number.POSITIVE_INFINITY);
  }
  return 0;
}

function argvOf(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return [];
  }
}

/** Whether a `bfc mount` command line asks for a read-write mount (--rw, or -w alone or in a cluster). */
export function readWriteMount(argv: string[]): boolean {
  const end = argv.indexOf("--");
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => a === "--rw" || /^-[^-]*w/.test(a));
}

/** fsync of the mounted root: the serving process commits (FSYNCDIR) and answers how that went. */
async function commitFirst(mp: string): Promise<void> {
  let fd: number;
  try {
    fd = fs.openSync(mp, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  } catch {
    // not reachable (a dead serving process): nothing can be committed, and unmounting is the fix
    return;
  }
  try {
    await new Promise<void>((resolve, reject) => fs.fsync(fd, (e) => (e ? reject(e) : resolve())));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOTCONN") return;
    throw new CliError(
      `cannot commit the changes made in ${mp} (${err.message.replace(/, fsync$/, "")}); it stays mounted with ` +
        `them: fix that (e.g. make room) and run 'bfc umount ${mp}' again, or 'bfc umount --lazy ${mp}' ` +
        "to unmount and lose them",
      "IO_ERROR",
    );
  } finally {
    fs.closeSync(fd);
  }
}

export function register(program: Command): void {
  program
    .command("umount")
    .description("unmount a folder mounted with 'bfc mount'")
    .argument("<mountpoint>", "the mounted folder")
    .option(
      "-z, --lazy",
      "detach now even if files are open there; finish when they close (a read-write mount's last commit is then not checked)",
    )
    .option("--no-wait", "return once unmounted, without waiting for the mount process to exit")
    .addHelpText(
      "after",
      `
A read-write mount (bfc mount --rw) commits its changes first, while still mounted: if that
fails (a full disk), it stays mounted with them and the command exits 1.

Examples:
  bfc umount /mnt/site
  bfc umount --lazy /mnt/site   # a busy or stale mount`,
    )
    .action((mountpoint: string, opts: { lazy?: boolean; wait?: boolean }, c: Command) =>
      run(c, (ctx) => umount(ctx, mountpoint, opts)),
    );
}
