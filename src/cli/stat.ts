/** `bfc stat [--json] <container> <path>`: everything the container records about one entry. */
import type { Command } from "commander";
import { type ExtendedEntries, specialAsEntry } from "../container/extended-entries.ts";
import type { Reader } from "../container/reader.ts";
import { normalizeLookup } from "../format/path.ts";
import { type Ctx, printJson, run } from "./common.ts";
import { extendedOf, extrasOf, type Listed } from "./extended.ts";
import { type EntryExtras, entryJson, fullModeString, hex8, localNs } from "./format.ts";
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
  character: "character device",
  block: "block device",
  fifo: "fifo",
  socket: "socket",
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

/** The entry at a path: from the index, a special entry, or a directory implied by special entries. */
function find(r: Reader, x: ExtendedEntries | null, name: string): Listed {
  const p = normalizeLookup(name);
  const special = x?.special(p);
  if (special) return { entry: specialAsEntry(special), special };
  if (x?.impliedDirs.has(p)) {
    const entry = r.stat("");
    return { entry: { ...entry, path: p } };
  }
  return { entry: r.stat(name) };
}

/** Lines for what the extension area records (owner, more times, links, device, xattrs). */
function extraLines(x: EntryExtras): string[] {
  const out: string[] = [];
  if (x.rdevMajor !== undefined) out.push(`${label("Device")} ${x.rdevMajor},${x.rdevMinor ?? 0}`);
  if (x.nlink !== undefined && x.nlink > 1) {
    out.push(
      `${label("Links")} ${x.nlink}${x.hardlinkOf !== undefined ? ` (shares the content of ${x.hardlinkOf})` : ""}`,
    );
  }
  if (x.uid !== undefined || x.gid !== undefined)
    out.push(`${label("Owner")} uid ${x.uid ?? "-"}, gid ${x.gid ?? "-"}`);
  if (x.atimeNs !== undefined) out.push(`${label("Accessed")} ${localNs(x.atimeNs)}`);
  if (x.ctimeNs !== undefined) out.push(`${label("Changed")} ${localNs(x.ctimeNs)}`);
  if (x.birthtimeNs !== undefined) out.push(`${label("Born")} ${localNs(x.birthtimeNs)}`);
  for (const [k, v] of x.xattrs ?? []) out.push(`${label("Xattr")} ${k} (${v.length} bytes)`);
  return out;
}

async function stat(ctx: Ctx, container: string, name: string, o: StatOptions): Promise<number> {
  const { Reader } = await import("../container/reader.ts");
  ctx.debug(`Opening container: ${container}`);
  const r = await Reader.open(container, readerOptions(o));
  warnTornTail(ctx, r);
  try {
    const x = extendedOf(r);
    const l = find(r, x, name);
    const e = l.entry;
    const extras = x ? extrasOf(x, l) : undefined;
    const target = e.type === "symlink" && e.index >= 0 ? targetOf(r, e.index) : undefined;
    if (o.json) {
      printJson(ctx, entryJson(e, target, extras));
      return 0;
    }
    const shown = e.path === "" ? "/" : e.path;
    const type = TYPE_NAMES[extras?.specialType ?? e.type];
    ctx.print(`${label("File")} ${e.type === "symlink" ? `${shown} -> ${target ?? "(unreadable)"}` : shown}`);
    if (l.special) ctx.print(`${label("Type")} ${type} (kept in the extension area, no object)`);
    else
      ctx.print(
        `${label("Type")} ${type}${e.index < 0 ? " (implied by the entries beneath it, not stored)" : ""}`,
      );
    ctx.print(`${label("Size")} ${e.size}`);
    ctx.print(
      `${label("Mode")} ${(e.mode & 0o7777).toString(8).padStart(4, "0")} (${fullModeString(e.mode)})`,
    );
    if (l.special) ctx.print(`${label("Modified")} ${localNs(e.mtimeNs)}`);
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
    if (extras) for (const line of extraLines(extras)) ctx.print(line);
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
