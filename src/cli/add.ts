/**
 * `bfc add [-c …] [-C DIR] [-m MSG] <container> <inputs…>`: adds files, directories and symlinks to an
 * existing container as one new commit. Each input is stored under its base name (below `-C DIR`
 * when given): files replace files, directories merge into directories.
 */
import fs from "node:fs";
import type { Command } from "commander";
import { fromSystemError } from "../errors.ts";
import { CliError, type Ctx, run } from "./common.ts";
import { storedName } from "./create.ts";
import { addUpdateOptions, openForUpdate, reportCommit, type UpdateCliOptions } from "./update.ts";

interface AddOptions extends UpdateCliOptions {
  into?: string;
}

async function add(ctx: Ctx, container: string, inputs: string[], o: AddOptions): Promise<number> {
  const items: { arg: string; name: string; st: fs.BigIntStats }[] = [];
  const seen = new Map<string, string>();
  for (const arg of inputs) {
    const base = storedName(arg);
    const name = o.into ? `${o.into.replace(/\/+$/, "")}/${base}` : base;
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(arg, { bigint: true });
    } catch (e) {
      throw fromSystemError(e, `cannot access '${arg}'`, arg);
    }
    const prev = seen.get(name);
    if (prev !== undefined) {
      throw new CliError(`inputs '${prev}' and '${arg}' would both be stored as '${name}'`, "DUPLICATE_PATH");
    }
    seen.set(name, arg);
    items.push({ arg, name, st });
  }
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
