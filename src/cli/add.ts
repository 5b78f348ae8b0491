/**
 * `bfc add [-c …] [-C DIR] [-m MSG] <container> <inputs…>`: adds files, directories and symlinks to an
 * existing container as one new commit. Each input is stored under its base name (below `-C DIR`
 * when given): files replace files, directories merge into directories.
 */
import fs from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { type Ctx, run, UsageError } from "./common.ts";
import { collectInputs, type Input, inputHolding } from "./create.ts";
import { addUpdateOptions, openForUpdate, reportCommit, type UpdateCliOptions } from "./update.ts";

interface AddOptions extends UpdateCliOptions {
  into?: string;
}

async function add(ctx: Ctx, container: string, inputs: string[], o: AddOptions): Promise<number> {
  const items = collectInputs(inputs, o.into);
  refuseSelf(container, items);
  const c = await openForUpdate(ctx, container, o);
  try {
    for (const i of items) {
      if (i.st.isDirectory()) await c.addTree(i.arg, i.name);
      else if (i.st.isFile()) await c.addFile(i.name, i.arg);
      else if (i.st.isSymbolicLink()) {
        const existing = c.tryStat(i.name);
        if (existing) c.remove(i.name, { recursive: existing.type === "directory" });
        c.symlink(i.name, fs.readlinkSync(i.arg, { encoding: "buffer" }), {
          mode: Number(i.st.mode),
          mtime: i.st.mtimeNs,
        });
      } else ctx.warn(`skipped '${i.arg}': not a regular file, directory or symlink`);
      ctx.debug(`staged ${i.arg} as ${i.name}`);
    }
    reportCommit(ctx, container, await c.commit({ message: o.message }));
    return 0;
  } finally {
    c.close();
  }
}

/**
 * Refuses to add the container to itself, as a file or inside an input directory: the commit would
 * read the file it is appending to (and store its lock file).
 */
function refuseSelf(container: string, items: Input[]): void {
  let real: string;
  let st: fs.BigIntStats;
  try {
    real = fs.realpathSync(container);
    st = fs.statSync(real, { bigint: true });
  } catch {
    return; // opening it will report what is wrong
  }
  for (const i of items) {
    if (i.st.isFile() && i.st.ino === st.ino && i.st.dev === st.dev) {
      throw new UsageError(`input '${i.arg}' is the container itself`);
    }
  }
  const holder = inputHolding(items, path.dirname(real));
  if (holder) {
    throw new UsageError(
      `the container '${container}' is inside the input '${holder.arg}'; it cannot hold itself`,
    );
  }
}

export function register(program: Command): void {
  const cmd = program
    .command("add")
    .description("add or replace files, directories and symlinks (one new commit)")
    .argument("<container>", "an existing container")
    .argument("<inputs...>", "files, directories and symlinks, each stored under its base name")
    .option("-C, --into <dir>", "store the inputs under this directory of the container");
  addUpdateOptions(cmd, true)
    .addHelpText(
      "after",
      `
Unchanged entries keep their stored bytes; the new commit appends only what changed, then a new
index. An interrupted add leaves the container at its previous commit.

Examples:
  bfc add archive.bfc notes.txt            add or replace notes.txt
  bfc add -C docs -c zstd archive.bfc guide/   merge guide/ into docs/guide`,
    )
    .action((container: string, inputs: string[], opts: AddOptions, c: Command) =>
      run(c, (ctx) => add(ctx, container, inputs, opts)),
    );
}
