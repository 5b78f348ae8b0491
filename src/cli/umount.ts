/**
 * `bfc umount [--lazy] <mountpoint>`: unmounts a `bfc mount` (any FUSE mount, also a stale one whose
 * process was killed). The serving process notices within a second and exits.
 */
import type { Command } from "commander";
import { type Ctx, run } from "./common.ts";

async function umount(ctx: Ctx, mountpoint: string, o: { lazy?: boolean }): Promise<number> {
  const { unmountFuse } = await import("../fuse/mount.ts");
  await unmountFuse(mountpoint, { lazy: o.lazy });
  ctx.debug(`unmounted ${mountpoint}`);
  return 0;
}

export function register(program: Command): void {
  program
    .command("umount")
    .description("unmount a folder mounted with 'bfc mount'")
    .argument("<mountpoint>", "the mounted folder")
    .option("-z, --lazy", "detach now even if files are open there; finish when they close")
    .addHelpText(
      "after",
      `
Examples:
  bfc umount /mnt/site
  bfc umount --lazy /mnt/site   # a busy or stale mount`,
    )
    .action((mountpoint: string, opts: { lazy?: boolean }, c: Command) =>
      run(c, (ctx) => umount(ctx, mountpoint, opts)),
    );
}
