/**
 * `bfc import [-f] [-c none|zstd|auto] [-l N] [-e PASS | -k KEYFILE | …] [--partition N]
 * [--allow-backing DIR]… <image> <container>`: the ext2/3/4 filesystem of a raw or QCOW2 disk image
 * into a new container, without mounting anything; `--list-partitions <image>` shows what can be
 * imported. Written aside and moved into place like `create`.
 */
import fs from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import type { ImportSummary } from "../disk/import.ts";
import { isBfcError } from "../errors.ts";
import { CliError, type Ctx, intOption, run, UsageError } from "./common.ts";
import { backingPolicy, fsText, partitionRows, repeatable, tableText } from "./disk.ts";
import { humanSize, plural } from "./format.ts";
import { type CreateSecretOptions, createCredentials } from "./password.ts";
import { Progress, progressAllowed } from "./progress.ts";

export interface ImportCliOptions extends CreateSecretOptions {
  force?: boolean;
  compression?: string;
  compressionLevel?: string;
  partition?: string;
  listPartitions?: boolean;
  allowBacking?: string[];
  ignoreJournal?: boolean;
  workers?: string;
  progress?: boolean;
}

async function listPartitions(ctx: Ctx, image: string, o: ImportCliOptions): Promise<number> {
  const { openImage, choosePartition } = await import("../disk/open-disk.ts");
  const { readPartitionTable } = await import("../disk/partitions.ts");
  const src = openImage(image, { allowBacking: backingPolicy(o.allowBacking) });
  try {
    const table = readPartitionTable(src);
    ctx.print(`Partition table: ${tableText(table)}`);
    if (table.type === "none") ctx.print(`Filesystem: ${fsText(table.filesystem)}`);
    else if (table.partitions.length > 0) {
      ctx.print("");
      for (const line of partitionRows(table)) ctx.print(line);
    }
    for (const w of table.warnings) ctx.warn(w);
    let choice: string;
    try {
      const p = choosePartition(table, undefined, image);
      choice = p === null ? "the whole disk" : `partition ${p.index}`;
    } catch {
      choice = "none; choose one with --partition N";
    }
    ctx.print("");
    ctx.print(`Imported without --partition: ${choice}`);
    return 0;
  } finally {
    src.close();
  }
}

function summaryLines(s: ImportSummary): string[] {
  const where = s.partition === null ? "the whole disk" : `partition ${s.partition}`;
  const parts = [
    plural(s.files, "file"),
    plural(s.directories, "directory", "directories"),
    plural(s.symlinks, "symlink"),
    plural(s.hardlinks, "hard link"),
    plural(s.specials, "special file"),
  ];
  const lines = [
    `Imported ${s.filesystem} from ${where} of '${s.image}' into '${s.container}'.`,
    `${s.entries} entries (${parts.join(", ")}); ${humanSize(s.bytes)} of content stored in ${humanSize(s.storedBytes)}, container ${humanSize(s.containerSize)}`,
  ];
  if (s.notStored.length > 0) lines.push(`Not stored: ${s.notStored.join("; ")}`);
  if (s.remarks.length > 0) lines.push(`Note: ${s.remarks.join("; ")}`);
  return lines;
}

async function importCommand(
  ctx: Ctx,
  image: string,
  container: string | undefined,
  o: ImportCliOptions,
): Promise<number> {
  if (o.listPartitions) {
    if (container !== undefined) throw new UsageError("--list-partitions takes only the image");
    if (o.partition !== undefined) throw new UsageError("give either --list-partitions or --partition");
    return listPartitions(ctx, image, o);
  }
  if (container === undefined) throw new UsageError("missing required argument 'container'");
  const compression = o.compression ?? "none";
  if (compression !== "none" && compression !== "zstd" && compression !== "auto") {
    throw new UsageError(`-c/--compression must be none, zstd or auto, got '${o.compression}'`);
  }
  const level = intOption(o.compressionLevel, "-l/--compression-level", 1, 22);
  const partition = intOption(o.partition, "--partition", 0, 65535);
  const workers = intOption(o.workers, "--workers", 0, 64) ?? 0;
  const target = path.resolve(container);
  let existing: fs.Stats | null = null;
  try {
    existing = fs.statSync(target);
  } catch {
    existing = null;
  }
  if (existing?.isDirectory()) throw new CliError(`'${container}' is a directory`, "EISDIR");
  if (existing && !o.force) {
    throw new CliError(`container '${container}' already exists; use -f to overwrite`, "ALREADY_EXISTS");
  }
  if (!fs.existsSync(path.dirname(target))) {
    throw new CliError(`cannot create '${container}': its directory does not exist`, "ENOENT");
  }
  const creds = await createCredentials(ctx, o);
  const { importInThread } = await import("../disk/import-thread.ts");
  const showBar = progressAllowed(ctx, o.progress);
  const progress = showBar
    ? new Progress(ctx, { bytes: 0, entries: 0 }, { label: "Importing", force: o.progress })
    : null;
  await progress?.ready();
  const controller = new AbortController();
  const interrupted = () => controller.abort();
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  let totalsSet = false;
  try {
    const summary = await importInThread(image, container, {
      partition,
      allowBacking: backingPolicy(o.allowBacking),
      compression,
      level,
      overwrite: o.force === true,
      ignoreJournal: o.ignoreJournal === true,
      workers,
      ...creds,
      signal: controller.signal,
      countFirst: showBar,
      onProgress: progress
        ? (p) => {
            if (!totalsSet) {
              progress.setTotals({ bytes: p.totalBytes, entries: p.totalEntries });
              totalsSet = true;
            }
            progress.update(p.bytes, p.entries);
          }
        : undefined,
      onWarning: (m) => ctx.warn(m),
      onEntry: ctx.verbose ? (p, type) => ctx.debug(`Added: ${p} (${type})`) : undefined,
    });
    progress?.stop();
    for (const line of summaryLines(summary)) ctx.say(line);
    return 0;
  } catch (e) {
    progress?.stop();
    if (controller.signal.aborted) {
      ctx.error("interrupted; nothing was written", "ECANCELED");
      return 130;
    }
    if (isBfcError(e) && e.reason === "NEEDS_RECOVERY") {
      throw new CliError(e.message.replace("(ignoreJournal)", "(--ignore-journal)"), e.reason);
    }
    throw e;
  } finally {
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
  }
}

export function register(program: Command): void {
  program
    .command("import")
    .description("import the ext2/3/4 filesystem of a raw or QCOW2 disk image into a new container")
    .argument("<image>", "a raw or QCOW2 disk image, or a bare filesystem image")
    .argument("[container]", "the container to write")
    .option("--partition <n>", "the partition to import (0: the whole disk); see --list-partitions")
    .option("--list-partitions", "show the image's partitions and which one is imported by default")
    .option("-f, --force", "replace an existing container (only once the new one is complete)")
    .option("-c, --compression <type>", "none, zstd, or auto (zstd for files that gain from it)", "none")
    .option("-l, --compression-level <n>", "zstd level 1..22", "3")
    .option(
      "-e, --encrypt <pass>",
      "encrypt with this password (visible to other users: prefer the options below)",
    )
    .option("-k, --keyfile <file>", "encrypt with the 32-byte key in <file>")
    .option("--password-file <file>", "encrypt with the password on the first line of <file> ('-' for stdin)")
    .option("--ask-password", "encrypt with a password from $BFC_PASSWORD, else asked twice on the terminal")
    .option(
      "--allow-backing <dir>",
      "also follow QCOW2 backing files under <dir> ('any': wherever they are); repeatable",
      repeatable,
    )
    .option("--ignore-journal", "import a filesystem whose journal was not replayed (metadata may be stale)")
    .option(
      "--workers <n>",
      "threads that compress and encrypt (default 0: the importing thread itself, the least memory)",
    )
    .option("--progress", "show a progress bar at once (default: only for long runs on a terminal)")
    .option("--no-progress", "never show a progress bar")
    .addHelpText(
      "after",
      `
Everything is imported: files, directories, symlinks, hard links, device nodes, fifos and sockets,
with modes, owners, nanosecond times and xattrs (kept in the container's extension area). Without
--partition the whole disk is imported when it has no partition table, else the one partition that
holds a filesystem. What a container cannot keep is reported in one 'Not stored:' line.

Examples:
  bfc import --list-partitions vm.qcow2
  bfc import --partition 1 -c zstd vm.qcow2 rootfs.bfc
  bfc import -f --password-file pw.txt disk.img secret.bfc`,
    )
    .action((image: string, container: string | undefined, opts: ImportCliOptions, c: Command) =>
      run(c, (ctx) => importCommand(ctx, image, container, opts)),
    );
}
