/**
 * `bfc extract [-C DIR] [-f] [-k] [-p PASS | -K KEYFILE | --password-file F] <container> [paths…]`.
 * Output lines as the reference (`Created: d/`, `Extracted: f`, `Extracted: l -> t`), in container
 * order, then `Successfully extracted N entries` or `Extracted N entries with M errors`.
 */
import fs from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import type { ExtractFailure, ExtractReport } from "../container/extract.ts";
import type { Entry, Reader } from "../container/reader.ts";
import { baseName, normalizeLookup } from "../format/path.ts";
import { CliError, type Ctx, run } from "./common.ts";
import { addSecretOptions, openWithCredentials, type SecretOptions } from "./password.ts";
import { Progress } from "./progress.ts";

export interface ExtractCliOptions extends SecretOptions {
  directory?: string;
  force?: boolean;
  keepPaths?: boolean;
  progress?: boolean;
  specials?: boolean;
  sameOwner?: boolean;
}

/** Entries selected by path arguments (list semantics), in index order; and the arguments matching nothing. */
export function selectEntries(r: Reader, paths: string[]): { entries: Entry[]; unmatched: string[] } {
  if (paths.length === 0) return { entries: [...r.entries()], unmatched: [] };
  const picked = new Map<number, Entry>();
  const unmatched: string[] = [];
  for (const p of paths) {
    if (normalizeLookup(p) === "") {
      for (const e of r.entries()) picked.set(e.index, e);
      continue;
    }
    let any = false;
    for (const e of r.list(p)) {
      any = true;
      if (e.index >= 0) picked.set(e.index, e);
    }
    if (!any) unmatched.push(p);
  }
  return { entries: [...picked.values()].sort((a, b) => a.index - b.index), unmatched };
}

/**
 * Prints per-entry lines in container order although the library reports symlinks last (it
 * creates them after everything else, so none can redirect a later write): each entry's lines wait
 * until every entry before it has reported.
 */
class OrderedLines {
  private readonly ctx: Ctx;
  private readonly order: readonly Entry[];
  /** Position of each path in `order`: built at the first report out of order (most never are). */
  private slot: Map<string, number> | undefined;
  private readonly lines = new Map<number, { err: boolean; text: string; reason?: string }[]>();
  private readonly done = new Set<number>();
  private next = 0;

  constructor(ctx: Ctx, order: readonly Entry[]) {
    this.ctx = ctx;
    this.order = order;
  }

  out(entryPath: string, text: string): void {
    this.add(entryPath, { err: false, text });
  }

  /** The entry has reported, with nothing to print. */
  quiet(entryPath: string): void {
    this.add(entryPath, null);
  }

  err(entryPath: string, text: string, reason: string): void {
    this.add(entryPath, { err: true, text, reason });
  }

  private add(entryPath: string, line: { err: boolean; text: string; reason?: string } | null): void {
    // The usual case: the entry whose turn it is (the library reports in order but for symlinks and
    // hard links, which it creates last).
    if (
      this.next < this.order.length &&
      this.order[this.next]?.path === entryPath &&
      !this.done.has(this.next)
    ) {
      if (line) this.emit(line);
      this.next++;
      this.drain();
      return;
    }
    if (!this.slot) {
      this.slot = new Map();
      for (let k = 0; k < this.order.length; k++) this.slot.set((this.order[k] as Entry).path, k);
    }
    const k = this.slot.get(entryPath);
    if (k === undefined || k < this.next) {
      if (line) this.emit(line);
      return;
    }
    const list = this.lines.get(k) ?? [];
    if (line) list.push(line);
    this.lines.set(k, list);
    this.done.add(k);
    this.drain();
  }

  private drain(): void {
    while (this.next < this.order.length && this.done.has(this.next)) {
      for (const l of this.lines.get(this.next) ?? []) this.emit(l);
      this.lines.delete(this.next);
      this.done.delete(this.next);
      this.next++;
    }
  }

  /** Prints whatever is left (entries that reported nothing are skipped). */
  end(): void {
    for (let k = this.next; k < this.order.length; k++) {
      for (const l of this.lines.get(k) ?? []) this.emit(l);
    }
    this.lines.clear();
    this.done.clear();
    this.next = this.order.length;
  }

  private emit(l: { err: boolean; text: string; reason?: string }): void {
    if (l.err) this.ctx.error(l.text, l.reason ?? "EIO");
    else this.ctx.say(l.text);
  }
}

function failureText(f: ExtractFailure): { text: string; reason: string } {
  const e = f.error;
  let text = e.message;
  if (e.reason === "ALREADY_EXISTS" && text.endsWith("already exists")) text += "; use -f to overwrite";
  if (e.reason === "IO_ERROR") {
    const cause = e.cause as NodeJS.ErrnoException | undefined;
    const m = cause?.message ? /^[A-Z0-9]+: ([^,]+)/.exec(cause.message) : null;
    if (cause?.message && m && text.endsWith(cause.message)) {
      text = `${text.slice(0, text.length - cause.message.length)}${m[1]}`;
    }
  }
  return { text, reason: e.reason === "IO_ERROR" ? e.code : e.reason };
}

/** One warning line for the special entries not created, or null. */
function skippedText(s: ExtractReport["skipped"], asked: boolean): string | null {
  const total = s.fifos + s.devices + s.sockets;
  if (total === 0) return null;
  const parts: string[] = [];
  if (s.devices > 0) parts.push(`${s.devices} device node${s.devices === 1 ? "" : "s"}`);
  if (s.fifos > 0) parts.push(`${s.fifos} fifo${s.fifos === 1 ? "" : "s"}`);
  if (s.sockets > 0) parts.push(`${s.sockets} socket${s.sockets === 1 ? "" : "s"}`);
  const why = asked
    ? "sockets are never created, device nodes only by root"
    : "--specials creates fifos and, as root, device nodes";
  return `skipped ${parts.join(", ")} (${why})`;
}

async function extractCommand(
  ctx: Ctx,
  container: string,
  paths: string[],
  o: ExtractCliOptions,
): Promise<number> {
  const r = await openWithCredentials(ctx, container, o, (rd) =>
    selectEntries(rd, paths).entries.some((e) => e.type === "file" && e.encrypted),
  );
  try {
    const { extract } = await import("../container/extract.ts");
    const sel = selectEntries(r, paths);
    for (const p of sel.unmatched) ctx.error(`no entry matches '${p}'`, "NOT_FOUND");
    if (sel.entries.length === 0) {
      if (paths.length > 0) throw new CliError("no entries found matching the specified paths", "NOT_FOUND");
    }
    const dest = o.directory ?? ".";
    const keep = o.keepPaths === true;
    const outOf = (e: Entry) => (keep ? e.path : baseName(e.path));
    if (paths.length > 0) ctx.debug(`Extracting entries matching: ${paths.join(", ")}`);
    ctx.debug(
      `Extracting ${sel.entries.length} entries into '${dest}'${keep ? "" : " by base name (no -k)"}`,
    );
    if (o.directory !== undefined && !fs.existsSync(dest)) ctx.debug(`Creating directory: ${dest}`);

    // Directories that exist already are used silently, as the reference does.
    const existed = new Set<string>();
    let totalBytes = 0;
    for (const e of sel.entries) {
      if (e.type === "file") totalBytes += e.size;
      if (e.type !== "directory") continue;
      try {
        if (fs.lstatSync(path.join(dest, outOf(e))).isDirectory()) existed.add(e.path);
      } catch {
        // not there yet
      }
    }

    const lines = new OrderedLines(ctx, sel.entries);
    const progress = new Progress(
      ctx,
      { bytes: totalBytes, entries: sel.entries.length },
      { label: "Extracting", force: o.progress },
    );
    await progress.ready();
    let report: Awaited<ReturnType<typeof extract>>;
    try {
      report = await extract(r, dest, {
        paths: sel.entries.length > 0 ? paths : [],
        entries: sel.entries,
        overwrite: o.force === true,
        preservePaths: keep,
        specials: o.specials === true,
        sameOwner: o.sameOwner === true,
        onEntry: (x) => {
          if (x.type === "directory") {
            if (!existed.has(x.path)) lines.out(x.path, `Created: ${x.output}/`);
            else lines.quiet(x.path);
          } else if (x.type === "symlink") lines.out(x.path, `Extracted: ${x.output} -> ${x.target}`);
          else if (x.linkedTo !== undefined) lines.out(x.path, `Linked: ${x.output} => ${x.linkedTo}`);
          else if (x.type !== "file") lines.out(x.path, `Created: ${x.output} (${x.type})`);
          else lines.out(x.path, `Extracted: ${x.output}`);
        },
        onError: (f) => {
          const { text, reason } = failureText(f);
          lines.err(f.path, text, reason);
        },
        onProgress: (p) => progress.update(p.bytes, p.entries),
      });
    } finally {
      progress.stop();
      lines.end();
    }
    if (report.threads > 0) ctx.debug(`${report.threads} threads wrote the small files`);
    const skippedLine = skippedText(report.skipped, o.specials === true);
    if (skippedLine) ctx.warn(skippedLine);
    const failed = report.failed.length;
    if (failed === 0) ctx.say(`Successfully extracted ${report.matched} entries`);
    else ctx.say(`Extracted ${report.matched} entries with ${failed} errors`);
    return failed > 0 || sel.unmatched.length > 0 ? 1 : 0;
  } finally {
    r.close();
  }
}

export function register(program: Command): void {
  const cmd = program
    .command("extract")
    .description("extract entries from a container")
    .argument("<container>", "the container to extract from")
    .argument("[paths...]", "only these entries and what lies under them (default: everything)")
    .option("-C, --directory <dir>", "extract into <dir> (created if missing)")
    .option("-f, --force", "overwrite existing files and symlinks")
    .option(
      "-k, --keep-paths",
      "recreate the full paths (default: each entry by its base name, as the reference)",
    )
    .option("--specials", "create fifos and, as root, device nodes (default: skip them with a warning)")
    .option("--same-owner", "restore recorded owners (needs root; containers imported from disk images)")
    .option("--progress", "show a progress bar at once (default: only for long runs on a terminal)")
    .option("--no-progress", "never show a progress bar");
  addSecretOptions(cmd)
    .addHelpText(
      "after",
      `
Examples:
  bfc extract -k archive.bfc                  everything, with its directories
  bfc extract -k -C /tmp/out archive.bfc docs docs and what lies under it, into /tmp/out
  bfc extract archive.bfc docs/readme.txt     one file, into the current directory
  bfc extract -k --password-file pw.txt secret.bfc`,
    )
    .action((container: string, paths: string[], opts: ExtractCliOptions, c: Command) =>
      run(c, (ctx) => extractCommand(ctx, container, paths, opts)),
    );
}
