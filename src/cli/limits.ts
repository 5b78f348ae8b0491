/**
 * `bfc limits <container> [--max-files N] [--max-dirs N] [--max-bytes SIZE] [--max-file-size SIZE]
 * [--clear] [--json]`: shows, or sets as a new commit, the resource limits stored in a container.
 */
import type { Command } from "commander";
import type { ResourceLimits } from "../format/extension.ts";
import { type Ctx, printJson, run, UsageError } from "./common.ts";
import { addUpdateOptions, openForUpdate, reportCommit, type UpdateCliOptions } from "./update.ts";

interface LimitsOptions extends UpdateCliOptions {
  maxFiles?: string;
  maxDirs?: string;
  maxBytes?: string;
  maxFileSize?: string;
  clear?: boolean;
  json?: boolean;
}

const UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** "1000", "64k", "1.5G" (binary units) or "unlimited". */
export function parseSize(value: string, name: string): number | undefined {
  const v = value.trim().toLowerCase();
  if (v === "unlimited" || v === "none") return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/.exec(v);
  if (!m)
    throw new UsageError(
      `${name} must be a number with an optional K/M/G/T suffix or 'unlimited', got '${value}'`,
    );
  const n = Math.floor(Number(m[1]) * UNITS[m[2] ?? ""]!);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${name} is out of range: '${value}'`);
  return n;
}

function show(
  ctx: Ctx,
  l: ResourceLimits | undefined,
  usage: { files: number; directories: number; totalBytes: number; largestFile: number },
  json: boolean,
): void {
  if (json) {
    printJson(ctx, {
      limits: {
        max_files: l?.maxFiles ?? null,
        max_directories: l?.maxDirectories ?? null,
        max_total_bytes: l?.maxTotalBytes ?? null,
        max_file_size: l?.maxFileSize ?? null,
      },
      usage: {
        files: usage.files,
        directories: usage.directories,
        total_bytes: usage.totalBytes,
        largest_file: usage.largestFile,
      },
    });
    return;
  }
  const row = (label: string, used: number, max: number | undefined) =>
    ctx.print(`${label.padEnd(16)}${String(used).padStart(14)} / ${max === undefined ? "unlimited" : max}`);
  row("files", usage.files, l?.maxFiles);
  row("directories", usage.directories, l?.maxDirectories);
  row("total bytes", usage.totalBytes, l?.maxTotalBytes);
  row("largest file", usage.largestFile, l?.maxFileSize);
}

async function limits(ctx: Ctx, container: string, o: LimitsOptions): Promise<number> {
  const setting = o.clear || [o.maxFiles, o.maxDirs, o.maxBytes, o.maxFileSize].some((v) => v !== undefined);
  // Values are checked before the container is opened: a typo is a usage error, never a prompt.
  const given: ResourceLimits = {};
  if (o.maxFiles !== undefined) given.maxFiles = parseSize(o.maxFiles, "--max-files");
  if (o.maxDirs !== undefined) given.maxDirectories = parseSize(o.maxDirs, "--max-dirs");
  if (o.maxBytes !== undefined) given.maxTotalBytes = parseSize(o.maxBytes, "--max-bytes");
  if (o.maxFileSize !== undefined) given.maxFileSize = parseSize(o.maxFileSize, "--max-file-size");
  const c = await openForUpdate(ctx, container, o);
  try {
    if (setting) {
      // Keys present in `given` with an undefined value ('unlimited') remove that limit.
      c.setLimits({ ...(o.clear ? {} : c.resourceLimits), ...given });
      const r = await c.commit({ message: o.message ?? "limits" });
      // --json prints one document and nothing else on stdout.
      if (!o.json) reportCommit(ctx, container, r);
    }
    show(ctx, c.resourceLimits, c.currentUsage, o.json === true);
    return 0;
  } finally {
    c.close();
  }
}

export function register(program: Command): void {
  const cmd = program
    .command("limits")
    .description("show or set the resource limits stored in a container")
    .argument("<container>", "the container")
    .option("--max-files <n>", "most files and symlinks ('unlimited' to remove)")
    .option("--max-dirs <n>", "most directories")
    .option("--max-bytes <size>", "most bytes of file content in total (K/M/G/T suffixes)")
    .option("--max-file-size <size>", "largest single file")
    .option("--clear", "remove every limit")
    .option("--json", "print one JSON document");
  addUpdateOptions(cmd, false)
    .addHelpText(
      "after",
      `
Limits are checked before any byte is written: an add, a write through a mounted container or a
commit that would exceed one fails with EDQUOT (RESOURCE_LIMIT_EXCEEDED) and changes nothing.

Examples:
  bfc limits archive.bfc
  bfc limits archive.bfc --max-files 10000 --max-bytes 2G`,
    )
    .action((container: string, opts: LimitsOptions, c: Command) =>
      run(c, (ctx) => limits(ctx, container, opts)),
    );
}
