/** `bfc mv [-m MSG] <container> <from> <to>`: renames an entry (a directory with its subtree). */
import type { Command } from "commander";
import { type Ctx, run } from "./common.ts";
import { addUpdateOptions, openForUpdate, reportCommit, type UpdateCliOptions } from "./update.ts";

async function mv(
  ctx: Ctx,
  container: string,
  from: string,
  to: string,
  o: UpdateCliOptions,
): Promise<number> {
  const c = await openForUpdate(ctx, container, o);
  try {
    // Like mv(1): moving onto an existing directory moves into it.
    const dst = c.tryStat(to);
    const target =
      dst?.type === "directory" ? `${dst.path}/${from.replace(/\/+$/, "").split("/").pop()}` : to;
    c.rename(from, target);
    reportCommit(ctx, container, await c.commit({ message: o.message }));
    return 0;
  } finally {
    c.close();
  }
}

export function register(program: Command): void {
  const cmd = program
    .command("mv")
    .description("rename or move an entry (one new commit)")
    .argument("<container>", "an existing container")
    .argument("<from>", "the entry to move")
    .argument("<to>", "its new path (an existing directory: move into it)");
  addUpdateOptions(cmd, false)
    .addHelpText(
      "after",
      `
A moved file keeps its object (its content is not written again; the index records the name the
object was written under). Encrypted files are re-encrypted, since the path is part of their
authentication; directories and symlinks get new objects (a header and a name).

Examples:
  bfc mv archive.bfc notes.txt docs/notes.txt`,
    )
    .action((container: string, from: string, to: string, opts: UpdateCliOptions, c: Command) =>
      run(c, (ctx) => mv(ctx, container, from, to, opts)),
    );
}
