/**
 * `bfc umount [--lazy] <mountpoint>`: unmounts a `bfc mount` (any FUSE mount, also a stale one whose
 * process was killed). Returns once the serving process has exited (a read-write mount commits its
 * last changes first), unless --lazy or --no-wait.
 */
import fs from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { type Ctx, run } from "./common.ts";

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
  await unmountFuse(mp, { lazy: o.lazy });
  ctx.debug(`unmounted ${mp}`);
  if (o.lazy || o.wait === false || pids.length === 0) return 0;
  // Still serving: the same pid with a command line that names this mountpoint (a pid reused by
  // another process after the mount process exited does not count).
  const serving = () =>
    pids.some((p) => {
      try {
        const argv = fs.readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0");
        return argv.includes("mount") && names.some((n) => argv.includes(n));
      } catch {
        return false;
      }
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

export function register(program: Command): void {
  program
    .command("umount")
    .description("unmount a folder mounted with 'bfc mount'")
    .argument("<mountpoint>", "the mounted folder")
    .option("-z, --lazy", "detach now even if files are open there; finish when they close")
    .option("--no-wait", "return once unmounted, without waiting for the mount process to exit")
    .addHelpText(
      "after",
      `
Examples:
  bfc umount /mnt/site
  bfc umount --lazy /mnt/site   # a busy or stale mount`,
    )
    .action((mountpoint: string, opts: { lazy?: boolean; wait?: boolean }, c: Command) =>
      run(c, (ctx) => umount(ctx, mountpoint, opts)),
    );
}
