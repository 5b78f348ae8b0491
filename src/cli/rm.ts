/** `bfc rm [-r] [-f] [-m MSG] <container> <paths…>`: removes entries as one new commit. */
import type { Command } from "commander";
import { CliError, type Ctx, run } from "./common.ts";
import { addUpdateOptions, openForUpdate, reportCommit, type UpdateCliOptions } from "./update.ts";

interface RmOptions extends UpdateCliOptions {
  recursive?: boolean;
  force?: boolean;
}

async function rm(ctx: Ctx, container: string, paths: string[], o: RmOptions): Promise<number> {
  const c = await openForUpdate(ctx, container, o);
  try {
    for (const p of paths) {
      const e = c.tryStat(p);
      if (!e) {
        if (o.force) continue;
        throw new CliError(`'${p}': no such entry`, "NOT_FOUND");
      }
      c.remove(p, { recursive: o.recursive });
      ctx.debug(`removed ${p}`);
    }
    reportCommit(ctx, container, await c.commit({ message: o.message }));
    return 0;
  } finally {
    c.close();
  }
}

export function register(program: Command): void {
  const cmd = program
    .command("rm")
    .description("remove entries (one new commit)")
    .argument("<container>", "an existing container")
    .argument("<paths...>", "entries to remove")
    .option("-r, --recursive", "remove directories and everything beneath them")
    .option("-f, --force", "ignore paths that do not exist");
  addUpdateOptions(cmd, false)
    .addHelpText(
      "after",
      `
Removed content stays in the file (older commits still reference it) until 'bfc compact'.

Examples:
  bfc rm archive.bfc notes.txt
  bfc rm -r archive.bfc build/`,
    )
    .action((container: string, paths: string[], opts: RmOptions, c: Command) =>
      run(c, (ctx) => rm(ctx, container, paths, opts)),
    );
}
