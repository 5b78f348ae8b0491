/** `bfc stat [--json] <container> <path>`: everything the container records about one entry. */
import type { Command } from "commander";
import type { Reader } from "../container/reader.ts";
import { type Ctx, printJson, run } from "./common.ts";
import { entryJson, fullModeString, hex8, localNs } from "./format.ts";
import { readerOptions, warnTornTail } from "./password.ts";

export interface StatOptions {
  commit?: string;
  json?: boolean;
}

const TYPE_NAMES = {
  file: "regular file",
  directory: "directory",
  symlink: "symbolic link",
  other: "special file",
} as const;

function label(name: string): string {
  return `${name}:`.padStart(9);
}

function targetOf(r: Reader, i: number): string | null {
  try {
    return r.readlinkAtSync(i);
  } catch {
    return null;
  }
}

async function stat(ctx: Ctx, container: string, name: string, o: StatOptions): Promise<number> {
  const { Reader } = await import("../container/reader.ts");
  ctx.debug(`Opening container: ${container}`);
  const r = await Reader.open(container, readerOptions(o));
  warnTornTail(ctx, r);
  try {
    const e = r.stat(name);
    const target = e.type === "symlink" && e.index >= 0 ? targetOf(r, e.index) : undefined;
    if (o.json) {
      printJson(ctx, entryJson(e, target));
      return 0;
    }
    const shown = e.path === "" ? "/" : e.path;
    ctx.print(`${label("File")} ${e.type === "symlink" ? `${shown} -> ${target ?? "(unreadable)"}` : shown}`);
    ctx.print(
      `${label("Type")} ${TYPE_NAMES[e.type]}${e.index < 0 ? " (implied by the entries beneath it, not stored)" : ""}`,
    );
    ctx.print(`${label("Size")} ${e.size}`);
    ctx.print(
      `${label("Mode")} ${(e.mode & 0o7777).toString(8).padStart(4, "0")} (${fullModeString(e.mode)})`,
    );
    if (e.index >= 0) {
      ctx.print(`${label("Modified")} ${localNs(e.mtimeNs)}`);
      if (e.type !== "directory") ctx.print(`${label("CRC32C")} 0x${hex8(e.crc32c)}`);
      if (e.type === "file") {
        ctx.print(`${label("Stored")} ${e.objectSize} bytes, payload ${e.storedSize} bytes`);
        ctx.print(
          `${label("Codec")} compression ${e.compression}, ${e.encrypted ? "encrypted (ChaCha20-Poly1305)" : "not encrypted"}`,
        );
      } else {
        ctx.print(`${label("Stored")} ${e.objectSize} bytes`);
      }
      ctx.print(`${label("Offset")} ${e.objectOffset}`);
    }
    return 0;
  } finally {
    r.close();
  }
}

export function register(program: Command): void {
  program
    .command("stat")
    .description("show everything recorded about one entry")
    .argument("<container>", "the container")
    .argument("<path>", "the entry")
    .option("--json", "print one JSON document (see docs/cli.md)")
    .option("--commit <n>", "show this commit instead of the latest (see 'bfc log')")
    .addHelpText(
      "after",
      `
Examples:
  bfc stat archive.bfc docs/readme.txt
  bfc stat --json archive.bfc docs/readme.txt | jq .size`,
    )
    .action((container: string, name: string, opts: StatOptions, c: Command) =>
      run(c, (ctx) => stat(ctx, container, name, opts)),
    );
}
