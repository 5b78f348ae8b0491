/**
 * `bfc disk [--json] [--allow-backing DIR|any]… <image>`: what a disk image is (raw or QCOW2, its
 * backing chain) and what it holds (the partition table, each partition's filesystem).
 */
import type { Command } from "commander";
import type { BackingPolicy } from "../disk/backing-file.ts";
import type { FilesystemProbe } from "../disk/filesystem-probe.ts";
import type { ImageLayer } from "../disk/image-layers.ts";
import type { Partition, PartitionTable } from "../disk/partitions.ts";
import { type Ctx, printJson, run } from "./common.ts";
import { humanSize, shortSize } from "./format.ts";

export interface DiskOptions {
  json?: boolean;
  allowBacking?: string[];
}

/** The --allow-backing values (directories, or "any") as the library's policy. */
export function backingPolicy(allow: string[] | undefined): BackingPolicy | undefined {
  if (allow === undefined || allow.length === 0) return undefined;
  return allow.includes("any") ? "any" : allow;
}

/** Commander's collector for repeatable options. */
export function repeatable(v: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), v];
}

/** Cluster sizes are powers of two from 512 bytes to 2 MiB. */
function clusterText(n: number): string {
  if (n >= 1024 * 1024) return `${n / (1024 * 1024)} MiB`;
  return n >= 1024 ? `${n / 1024} KiB` : `${n}-byte`;
}

function formatText(l: ImageLayer): string {
  if (l.qcow2 === undefined) return "raw";
  const q = l.qcow2;
  const parts = [
    `qcow2 v${q.version}`,
    `${clusterText(q.clusterSize)} clusters`,
    `compression type ${q.compression}`,
  ];
  if (q.extendedL2) parts.push("extended L2 (subclusters)");
  if (q.snapshots > 0)
    parts.push(`${q.snapshots} internal snapshot${q.snapshots === 1 ? "" : "s"} (not read)`);
  if (q.dirty) parts.push("dirty");
  if (q.corrupt) parts.push("marked corrupt");
  return parts.join(", ");
}

export function fsText(fs: FilesystemProbe | undefined): string {
  if (fs === undefined) return "-";
  const extra: string[] = [];
  if (fs.label !== undefined) extra.push(`label ${JSON.stringify(fs.label)}`);
  if (fs.uuid !== undefined) extra.push(`UUID ${fs.uuid}`);
  return extra.length > 0 ? `${fs.type} (${extra.join(", ")})` : fs.type;
}

export function tableText(t: PartitionTable): string {
  if (t.type === "none") return "none";
  const kind = t.type === "gpt" ? "GPT" : "MBR (DOS)";
  const id = t.type === "gpt" ? `disk GUID ${t.diskId}` : `disk identifier ${t.diskId}`;
  return `${kind}, ${t.sectorSize}-byte sectors, ${id}`;
}

/** Columns padded to their widest cell; numbers right-aligned. */
function columns(rows: string[][], right: Set<number>): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) =>
    r
      .map((cell, c) => (right.has(c) ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
      .join("  ")
      .trimEnd(),
  );
}

export function partitionRows(t: PartitionTable): string[] {
  const gpt = t.type === "gpt";
  const head = gpt
    ? ["#", "Start", "Sectors", "Size", "Type", "Name", "Filesystem"]
    : ["#", "Boot", "Start", "Sectors", "Size", "Id", "Type", "Filesystem"];
  const rows = t.partitions.map((p: Partition) => {
    const fs = p.extended ? "-" : fsText(p.filesystem);
    return gpt
      ? [
          String(p.index),
          String(p.firstLba),
          String(p.sectors),
          shortSize(p.size),
          p.typeName,
          p.name ?? "",
          fs,
        ]
      : [
          String(p.index),
          p.bootable ? "*" : "",
          String(p.firstLba),
          String(p.sectors),
          shortSize(p.size),
          p.typeId,
          p.typeName,
          fs,
        ];
  });
  const right = gpt ? new Set([0, 1, 2, 3]) : new Set([0, 2, 3, 4]);
  return columns([head, ...rows], right).map((line) => `  ${line}`);
}

async function disk(ctx: Ctx, image: string, o: DiskOptions): Promise<number> {
  const { openImage } = await import("../disk/open-disk.ts");
  const { readPartitionTable } = await import("../disk/partitions.ts");
  const { imageLayers } = await import("../disk/image-layers.ts");
  const src = openImage(image, { allowBacking: backingPolicy(o.allowBacking) });
  try {
    const layers = imageLayers(src);
    const table = readPartitionTable(src);
    const warnings = [
      ...(layers[0].format === "qcow2" ? ((src as { warnings?: string[] }).warnings ?? []) : []),
      ...table.warnings,
    ];
    if (o.json) {
      const { partitions, warnings: _, ...tableFields } = table;
      printJson(ctx, {
        image,
        ...layers[0],
        backingChain: layers.slice(1),
        partitionTable: tableFields,
        partitions,
        warnings,
      });
      return 0;
    }
    const top = layers[0];
    ctx.print(`Image: ${image}`);
    ctx.print(`Format: ${formatText(top)}`);
    ctx.print(`File size: ${humanSize(top.fileSize)}`);
    ctx.print(`Virtual size: ${humanSize(top.virtualSize)}`);
    for (const l of layers.slice(1)) {
      const how = l.formatRecorded ? "" : ", format probed";
      ctx.print(`Backing file: ${l.backingName} -> ${l.path} (${formatText(l)}${how})`);
    }
    ctx.print(`Partition table: ${tableText(table)}`);
    if (table.type === "none") {
      ctx.print(`Filesystem: ${fsText(table.filesystem)}`);
    } else if (table.partitions.length > 0) {
      ctx.print("");
      for (const line of partitionRows(table)) ctx.print(line);
    }
    for (const w of warnings) ctx.warn(w);
    return 0;
  } finally {
    src.close();
  }
}

export function register(program: Command): void {
  program
    .command("disk")
    .description("show a disk image's format, backing chain, partitions and their filesystems")
    .argument("<image>", "a raw or QCOW2 disk image (or a bare filesystem image)")
    .option("--json", "print one JSON document (see docs/cli.md)")
    .option(
      "--allow-backing <dir>",
      "also follow backing files under <dir> ('any': wherever they are); repeatable",
      repeatable,
    )
    .addHelpText(
      "after",
      `
Backing files are followed only inside the image's own directory (after resolving symlinks) unless
allowed with --allow-backing: an image names its backing file, so a hostile one could point anywhere.

Examples:
  bfc disk vm.qcow2
  bfc disk --json disk.img
  bfc disk --allow-backing /var/lib/images overlay.qcow2`,
    )
    .action((image: string, opts: DiskOptions, cmd: Command) => run(cmd, (ctx) => disk(ctx, image, opts)));
}
