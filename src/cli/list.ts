/** `bfc list [-l] [-s] [-c] [--json] <container> [prefix]`: the reference's listing formats. */
import type { Command } from "commander";
import type { Entry, Reader } from "../container/reader.ts";
import { normalizeLookup } from "../format/path.ts";
import { CliError, type Ctx, printJson, run } from "./common.ts";
import { extendedOf, extrasOf, mergeSpecials } from "./extended.ts";
import { entryJson, hex8, localMinute, modeString, shortSize } from "./format.ts";
import { readerOptions, warnTornTail } from "./password.ts";

export interface ListOptions {
  commit?: string;
  long?: boolean;
  size?: boolean;
  checksum?: boolean;
  json?: boolean;
}

/** One line of `bfc list` output, exactly as the reference formats it (reference spec §20). */
export function listLine(e: Entry, o: ListOptions): string {
  const file = e.type === "file";
  const crc = `0x${hex8(e.crc32c)}`;
  const size = shortSize(e.size).padStart(8);
  if (o.long) {
    return `${modeString(e.mode)} ${size} ${localMinute(e.mtimeMs)} ${o.checksum && file ? `${crc} ` : ""}${e.path}`;
  }
  if (o.size && o.checksum && file) return `${size} ${crc} ${e.path}`;
  if (o.size) return `${size} ${e.path}`;
  if (o.checksum && file) return `${crc} ${e.path}`;
  return e.path;
}

async function list(
  ctx: Ctx,
  container: string,
  prefix: string | undefined,
  o: ListOptions,
): Promise<number> {
  const { Reader } = await import("../container/reader.ts");
  ctx.debug(`Opening container: ${container}`);
  const r = await Reader.open(container, readerOptions(o));
  warnTornTail(ctx, r);
  try {
    ctx.debug(prefix ? `Listing entries under '${prefix}'` : "Listing entries");
    const x = extendedOf(r);
    const specials = x ? x.specialsUnder(normalizeLookup(prefix ?? "")) : [];
    const listed = () => mergeSpecials(r.list(prefix ?? ""), specials);
    let n = 0;
    if (o.json) {
      const entries = [];
      for (const l of listed()) {
        const e = l.entry;
        let target: string | null | undefined;
        if (e.type === "symlink") {
          try {
            target = r.readlinkAtSync(e.index);
          } catch {
            target = null;
          }
        }
        entries.push(entryJson(e, target, x ? extrasOf(x, l) : undefined));
      }
      n = entries.length;
      if (n === 0 && prefix) throw notFound(prefix);
      printJson(ctx, { container, prefix: prefix ?? null, entries });
    } else if (!o.long && !o.size && !o.checksum && specials.length === 0) {
      n = printPaths(ctx, r, prefix ?? "");
      if (n === 0) {
        if (prefix) throw notFound(prefix);
        ctx.print("Container is empty");
      }
    } else {
      const plain = !o.long && !o.size && !o.checksum;
      for (const l of listed()) {
        ctx.print(plain ? l.entry.path : listLine(l.entry, o));
        n++;
      }
      if (n === 0) {
        if (prefix) throw notFound(prefix);
        ctx.print("Container is empty");
      }
    }
    ctx.debug(`Listed ${n} entries`);
    return 0;
  } finally {
    r.close();
  }
}

/**
 * The plain listing straight from the index bytes: paths are copied into one buffer without
 * building entry objects or strings (a 50k-entry listing is a few milliseconds of work).
 */
function printPaths(ctx: Ctx, r: Reader, prefix: string): number {
  const ix = r.index;
  const p = normalizeLookup(prefix);
  const key = Buffer.from(p);
  const self = p === "" ? -1 : ix.find(key);
  const [lo, hi] = ix.descendantRange(key);
  const picks: number[] = self >= 0 ? [self] : [];
  let total = self >= 0 ? ix.pathByteLength(self) + 1 : 0;
  for (let i = lo; i < hi; i++) total += ix.pathByteLength(i) + 1;
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  const put = (i: number) => {
    const s = ix.pathStart(i);
    at += ix.blob.copy(out, at, s, s + ix.pathByteLength(i));
    out[at++] = 0x0a;
  };
  for (const i of picks) put(i);
  for (let i = lo; i < hi; i++) put(i);
  ctx.flush();
  if (total > 0) process.stdout.write(out);
  return picks.length + hi - lo;
}

function notFound(prefix: string): CliError {
  return new CliError(`no entries found matching '${prefix}'`, "NOT_FOUND");
}

export function register(program: Command): void {
  program
    .command("list")
    .description("list the entries of a container")
    .argument("<container>", "the container to list")
    .argument("[prefix]", "only this entry and what lies under it (not a plain string prefix)")
    .option("-l, --long", "long format: mode, size, modification time, path (like 'ls -l')")
    .option("-s, --size", "show sizes")
    .option("-c, --checksum", "show CRC-32C checksums of regular files")
    .option("--json", "print one JSON document (see docs/cli.md)")
    .option("--commit <n>", "show this commit instead of the latest (see 'bfc log')")
    .addHelpText(
      "after",
      `
Examples:
  bfc list archive.bfc                 list every entry
  bfc list -l archive.bfc docs         long format, docs and everything under it
  bfc list -sc archive.bfc             sizes and checksums
  bfc list --json archive.bfc | jq -r '.entries[] | select(.type == "file") | .path'`,
    )
    .action((container: string, prefix: string | undefined, opts: ListOptions, cmd: Command) =>
      run(cmd, (ctx) => list(ctx, container, prefix, opts)),
    );
}
