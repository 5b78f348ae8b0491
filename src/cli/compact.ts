/** `bfc compact [--keep-history] [-o OUT] <container>`: rewrites a container with only live objects. */
import type { Command } from "commander";
import { type Ctx, intOption, run } from "./common.ts";

interface CompactCliOptions {
  keepHistory?: boolean;
  output?: string;
  force?: boolean;
  wait?: string;
}

async function compactCommand(ctx: Ctx, container: string, o: CompactCliOptions): Promise<number> {
  const { compact } = await import("../container/compact.ts");
  const wait = intOption(o.wait, "--wait", 0, 86400) ?? 0;
  const r = await compact(container, {
    keepHistory: o.keepHistory,
    output: o.output,
    overwrite: o.force,
    lockTimeout: wait * 1000,
  });
  const saved = r.before - r.after;
  ctx.say(
    `Compacted '${o.output ?? container}': ${r.before} -> ${r.after} bytes (${saved >= 0 ? "-" : "+"}${Math.abs(saved)}), ` +
      `${r.commits} commit${r.commits === 1 ? "" : "s"}, ${r.entries} entries.`,
  );
  return 0;
}

export function register(program: Command): void {
  program
    .command("compact")
    .description("rewrite a container keeping only live objects")
    .argument("<container>", "the container")
    .option("--keep-history", "keep every commit (still readable with --commit N)")
    .option("-o, --output <file>", "write the result here instead of replacing the container")
    .option("-f, --force", "with -o: replace an existing file")
    .option("--wait <seconds>", "wait this long for another update of the container to finish", "0")
    .addHelpText(
      "after",
      `
Stored bytes are copied as they are (no password needed); metadata, limits, UUID and salt are
kept. The result replaces the container by rename once complete.

Examples:
  bfc compact archive.bfc
  bfc compact --keep-history -o slim.bfc archive.bfc`,
    )
    .action((container: string, opts: CompactCliOptions, c: Command) =>
      run(c, (ctx) => compactCommand(ctx, container, opts)),
    );
}
