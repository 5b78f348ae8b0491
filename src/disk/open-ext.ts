import { BfcError } from "../errors.ts";
import { type BlockSource, Slice } from "./block-source.ts";
import { ExtFileSystem, type ExtOpenOptions } from "./ext/filesystem.ts";
import type { FilesystemProbe } from "./filesystem-probe.ts";
import { type OpenPartitionOptions, openImage, openPartition } from "./open-disk.ts";
import type { Partition, PartitionTable } from "./partitions.ts";

export interface ExtVolumeOptions extends OpenPartitionOptions, ExtOpenOptions {
  /**
   * Byte offset of the filesystem inside the (virtual) disk, instead of a partition number: the
   * partition table is then not read at all.
   */
  offset?: number;
  /** With `offset`: bytes that belong to the filesystem (default: to the end of the disk). */
  size?: number;
}

/** An ext2/3/4 filesystem opened inside a disk image; `close` releases the image. */
export interface ExtVolume {
  fs: ExtFileSystem;
  /** The filesystem's bytes (a partition, a slice at `offset`, or the whole disk). */
  source: BlockSource;
  /** The partition table (null when opened by offset). */
  table: PartitionTable | null;
  /** The partition holding the filesystem (null: the whole disk, or opened by offset). */
  partition: Partition | null;
  close(): void;
}

const EXT_TYPES = new Set(["ext2", "ext3", "ext4"]);

function count(value: unknown, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new BfcError("EINVAL", "INVALID_ARGUMENT", `${what} must be a non-negative integer`);
  }
  return value;
}

function openByOffset(image: string, o: ExtVolumeOptions): BlockSource {
  const offset = count(o.offset, "offset") ?? 0;
  const size = count(o.size, "size");
  const disk = openImage(image, o);
  try {
    const length = size ?? disk.size - offset;
    if (length < 0 || offset + length > disk.size) {
      throw new BfcError(
        "EINVAL",
        "INVALID_ARGUMENT",
        `${image}: ${offset}+${length} bytes lie beyond the end of the disk (${disk.size} bytes)`,
        { path: image },
      );
    }
    return new Slice(disk, offset, length, offset === 0 ? disk.label : `${disk.label}@${offset}`, true);
  } catch (e) {
    disk.close();
    throw e;
  }
}

/** Refuses, with a clear message, a partition the table's probe found to hold something other than ext. */
function checkProbe(probe: FilesystemProbe | undefined, where: string): void {
  if (probe === undefined || probe.type === "unknown" || EXT_TYPES.has(probe.type)) return;
  throw new BfcError(
    "ENOTSUP",
    "UNSUPPORTED",
    `${where} holds ${probe.type}, not an ext2/ext3/ext4 filesystem (the only kind read here)`,
    { path: where },
  );
}

/**
 * Opens the ext2/3/4 filesystem of a raw or QCOW2 disk image: the partition chosen as
 * `openPartition` chooses it (by number; else the whole disk without a table, or the one partition
 * holding a filesystem), or the slice at `offset`.
 */
export function openExtVolume(image: string, o: ExtVolumeOptions = {}): ExtVolume {
  if (o.offset !== undefined && o.partition !== undefined) {
    throw new BfcError("EINVAL", "INVALID_ARGUMENT", "give either a partition or an offset, not both");
  }
  let source: BlockSource;
  let table: PartitionTable | null = null;
  let partition: Partition | null = null;
  if (o.offset !== undefined || o.size !== undefined) source = openByOffset(image, o);
  else {
    const p = openPartition(image, o);
    source = p;
    table = p.table;
    partition = p.partition;
  }
  try {
    if (table !== null) {
      const probe = partition === null ? table.filesystem : partition.filesystem;
      checkProbe(probe, partition === null ? image : `${image}: partition ${partition.index}`);
    }
    const fs = ExtFileSystem.open(source, o);
    return {
      fs,
      source,
      table,
      partition,
      close() {
        fs.close();
        source.close();
      },
    };
  } catch (e) {
    source.close();
    throw e;
  }
}
