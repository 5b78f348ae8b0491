/**
 * `bfc recover [--dry-run] <container>`: removes what an interrupted commit left after the last
 * complete one. Readers already ignore it; the reference tool cannot open the file until it is gone.
 */
import fs from "node:fs";
import type { Command } from "commander";
import { type Ctx, run } from "./common.ts";

async function recover(ctx: Ctx, container: string, o: { dryRun?: boolean }): Promise<number> {
  const { Reader } = await import("../container/reader.ts");
  const { ContainerLock } = await import("../container/lock.ts");
  const lock = await ContainerLock.acquire(container);
  try {
    const r = await Reader.open(container);
    const { tornTail, end, commit } = r;
    r.close();
    if (tornTail === 0) {
      ctx.say(`'${container}' ends with a complete commit (${commit}); nothing to recover.`);
      return 0;
    }
    if (o.dryRun) {
      ctx.say(`Would remove ${tornTail} bytes after commit ${commit} (offset ${end}).`);
      return 0;
    }
    const fd = fs.openSync(container, "r+");
    try {
      fs.ftruncateSync(fd, end);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    ctx.say(`Removed ${tornTail} bytes of an interrupted commit; '${container}' is at commit ${commit}.`);
    return 0;
  } finally {
    lock.release();
  }
}

export function register(program: Command): void {
  program
    .command("recover")
    .description("remove the torn tail of an interrupted commit")
    .argument("<container>", "the container")
    .option("-n, --dry-run", "only report what would be removed")
    .action((container: string, opts: { dryRun?: boolean }, c: Command) =>
      run(c, (ctx) => recover(ctx, container, opts)),
    );
}
