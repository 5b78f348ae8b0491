import fs from "node:fs";
import { BfcError, fromSystemError } from "../errors.ts";
import { type BlockSource, RawFile, Slice } from "./block-source.ts";
import { holdsFiles } from "./filesystem-probe.ts";
import { type Partition, type PartitionTable, partitionSlice, readPartitionTable } from "./partitions.ts";
import { Qcow2Image, type Qcow2Options } from "./qcow2.ts";
import { isQcow2Magic } from "./qcow2-header.ts";

export type OpenImageOptions = Qcow2Options;

export interface OpenPartitionOptions extends OpenImageOptions {
  /**
   * The partition number (as Linux numbers them), or 0 for the whole disk. When omitted: the whole
   * disk if it has no partition table, else the one partition holding a filesystem.
   */
  partition?: number;
}

/** Formats we recognise only to say they are not supported (instead of reading them as raw). */
const OTHER_FORMATS: { name: string; at: number; magic: string }[] = [
  { name: "VMDK", at: 0, magic: "KDMV" },
  { name: "VMDK (descriptor)", at: 0, magic: "# Disk DescriptorFile" },
  { name: "VHDX", at: 0, magic: "vhdxfile" },
  { name: "dynamic VHD", at: 0, magic: "conectix" },
  { name: "VDI", at: 0x40, magic: "\x7f\x10\xda\xbe" },
  { name: "QED", at: 0, magic: "QED\0" },
];

function readHead(file: string, n: number): Buffer {
  let fd: number | null = null;
  try {
    fd = fs.openSync(file, "r");
    const b = Buffer.alloc(n);
    const got = fs.readSync(fd, b, 0, n, 0);
    return b.subarray(0, got);
  } catch (e) {
    throw fromSystemError(e, `cannot read '${file}'`, file);
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

/** Opens a disk image: QCOW2 (detected by its magic, with its backing chain) or raw. */
export function openImage(file: string, options: OpenImageOptions = {}): BlockSource {
  const head = readHead(file, 0x44);
  if (isQcow2Magic(head)) return Qcow2Image.open(file, options);
  for (const f of OTHER_FORMATS) {
    if (head.toString("latin1", f.at, f.at + f.magic.length) === f.magic) {
      throw new BfcError(
        "ENOTSUP",
        "UNSUPPORTED",
        `${file}: is a ${f.name} image, which is not supported; convert it first (qemu-img convert -O qcow2 ${file} out.qcow2)`,
        { path: file },
      );
    }
  }
  return new RawFile(file);
}

function sizeText(n: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}

/** "1 (rootfs, ext4, 96 MiB), 5 (ext2, 96 MiB)": the partitions, for error messages. */
export function partitionSummary(table: PartitionTable): string {
  if (table.partitions.length === 0) return "none";
  return table.partitions
    .map((p) => {
      const what = p.extended ? "extended" : (p.filesystem?.type ?? "unreadable");
      const parts = [p.name, what, sizeText(p.size)].filter((s) => s !== undefined && s !== "");
      return `${p.index} (${parts.join(", ")})`;
    })
    .join(", ");
}

/**
 * Which partition `requested` means in `table` (null: the whole disk). Throws, listing the
 * partitions, when the number does not exist or is an extended partition, or when none was given
 * and the choice is not obvious.
 */
export function choosePartition(
  table: PartitionTable,
  requested: number | undefined,
  label: string,
): Partition | null {
  if (requested === 0) return null;
  if (requested !== undefined) {
    if (table.type === "none") {
      throw new BfcError(
        "ENOENT",
        "NOT_FOUND",
        `${label}: has no partition table, so there is no partition ${requested} (the whole disk${table.filesystem ? ` holds ${table.filesystem.type}` : ""}; omit the partition)`,
        { path: label },
      );
    }
    const p = table.partitions.find((x) => x.index === requested);
    if (p === undefined) {
      throw new BfcError(
        "ENOENT",
        "NOT_FOUND",
        `${label}: has no partition ${requested}; its partitions: ${partitionSummary(table)}`,
        { path: label },
      );
    }
    if (p.extended) {
      throw new BfcError(
        "EINVAL",
        "INVALID_ARGUMENT",
        `${label}: partition ${requested} is an extended partition (a container of logical partitions); its partitions: ${partitionSummary(table)}`,
        { path: label },
      );
    }
    return p;
  }
  if (table.type === "none") return null;
  const candidates = table.partitions.filter((p) => holdsFiles(p.filesystem));
  if (candidates.length === 1) return candidates[0];
  const why =
    candidates.length === 0
      ? "no partition holds a recognisable filesystem"
      : `${candidates.length} partitions hold filesystems`;
  throw new BfcError(
    "EINVAL",
    "AMBIGUOUS",
    `${label}: ${why}; choose a partition: ${partitionSummary(table)}`,
    { path: label },
  );
}

/** A partition (or the whole disk) of an opened image; closing it closes the image. */
export class PartitionSource extends Slice {
  readonly table: PartitionTable;
  /** null when this is the whole disk. */
  readonly partition: Partition | null;
  readonly image: BlockSource;

  constructor(image: BlockSource, table: PartitionTable, partition: Partition | null) {
    const slice = partition === null ? undefined : partitionSlice(image, partition);
    if (partition !== null && (slice === undefined || slice.size < partition.size)) {
      throw new BfcError(
        "EIO",
        "TRUNCATED",
        `${image.label}: partition ${partition.index} (${partition.start}+${partition.size} bytes) does not fit in the disk (${image.size} bytes)`,
        { path: image.label },
      );
    }
    super(
      image,
      partition?.start ?? 0,
      partition?.size ?? image.size,
      partition === null ? image.label : `${image.label} partition ${partition.index}`,
      true,
    );
    this.table = table;
    this.partition = partition;
    this.image = image;
  }
}

/**
 * Opens an image and returns the partition chosen by `options.partition` (see OpenPartitionOptions)
 * as a BlockSource; closing it closes the image.
 */
export function openPartition(file: string, options: OpenPartitionOptions = {}): PartitionSource {
  const image = openImage(file, options);
  try {
    const table = readPartitionTable(image);
    return new PartitionSource(image, table, choosePartition(table, options.partition, file));
  } catch (e) {
    image.close();
    throw e;
  }
}
