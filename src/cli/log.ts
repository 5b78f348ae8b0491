/** `bfc log [--json] <container>`: the commits of a container, newest first. */
import type { Command } from "commander";
import { type Ctx, printJson, run } from "./common.ts";
import { localNs } from "./format.ts";
import { warnTornTail } from "./password.ts";

async function log(ctx: Ctx, container: string, o: { json?: boolean }): Promise<number> {
  const { Reader } = await import("../container/reader.ts");
  const r = await Reader.open(container);
  try {
    const commits = r.commits();
    warnTornTail(ctx, r);
    if (o.json) {
      printJson(ctx, {
        commits: commits.map((c, k) => {
          const prevEnd = commits[k + 1]?.end ?? 0;
          return {
            commit: c.commit,
            time_ns:
              c.extension.commitInfo?.timeNs.toString() ??
              c.extension.metadata?.modifiedNs?.toString() ??
              null,
            message: c.extension.commitInfo?.message ?? null,
            entries: c.entries,
            end: c.end,
            bytes: c.end - (prevEnd || 4096),
            signed: c.extension.signature !== undefined,
          };
        }),
        torn_tail: r.tornTail,
      });
      return 0;
    }
    commits.forEach((c, k) => {
      const prevEnd = commits[k + 1]?.end ?? 4096;
      const t = c.extension.commitInfo?.timeNs ?? c.extension.metadata?.modifiedNs;
      const when = t !== undefined ? localNs(t) : "-";
      const msg = c.extension.commitInfo?.message;
      const signed = c.extension.signature ? "  [signed]" : "";
      ctx.print(
        `commit ${c.commit}  ${when}  ${c.entries} entries  +${c.end - prevEnd} bytes${signed}${msg ? `  ${msg}` : ""}`,
      );
    });
    return 0;
  } finally {
    r.close();
  }
}

export function register(program: Command): void {
  program
    .command("log")
    .description("list the commits of a container, newest first")
    .argument("<container>", "the container")
    .option("--json", "print one JSON document (see docs/cli.md)")
    .addHelpText(
      "after",
      `
Any commit can be read with --commit N (list, cat, extract, stat, info, verify, digest, mount).

Examples:
  bfc log archive.bfc
  bfc list --commit 1 archive.bfc`,
    )
    .action((container: string, opts: { json?: boolean }, c: Command) =>
      run(c, (ctx) => log(ctx, container, opts)),
    );
}
