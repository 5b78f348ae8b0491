import { isBfcError } from "../errors.ts";
import { type BlockSource, Slice } from "./block-source.ts";
import { type FilesystemProbe, probeFilesystem } from "./filesystem-probe.ts";
import { readGpt } from "./gpt.ts";
import { isMbr, MBR_SECTOR, mbrEntries, parseMbr, TYPE_GPT_PROTECTIVE } from "./mbr.ts";

/** One partition, numbered as Linux numbers it (sdaN). */
export interface Partition {
  /** GPT: entry slot + 1; MBR: primaries 1–4 by slot, logical partitions 5, 6, … in chain order. */
  index: number;
  /** Byte offset on the disk. */
  start: number;
  /** Length in bytes. */
  size: number;
  /** First sector and sector count, in the table's sector size. */
  firstLba: number;
  sectors: number;
  typeName: string;
  /** MBR: the type byte in hex ("83"); GPT: the partition type GUID. */
  typeId: string;
  /** GPT partition name. */
  name?: string;
  /** GPT unique partition GUID. */
  uuid?: string;
  /** MBR active flag; GPT "legacy BIOS bootable" attribute. */
  bootable?: boolean;
  /** An MBR extended partition (a container of logical partitions, holds no filesystem). */
  extended?: boolean;
  /** An MBR logical partition. */
  logical?: boolean;
  /** What the partition holds, probed from its content (absent for extended partitions). */
  filesystem?: FilesystemProbe;
  /** Why this entry is suspect (e.g. it runs past the end of the disk). */
  warning?: string;
}

export interface PartitionTable {
  type: "gpt" | "mbr" | "none";
  sectorSize: number;
  /** GPT disk GUID, or the MBR disk signature as 0x%08x. */
  diskId?: string;
  partitions: Partition[];
  /** With no table: what the whole disk holds. */
  filesystem?: FilesystemProbe;
  /** Problems found and worked around (a damaged primary GPT, a looping EBR chain, …). */
  warnings: string[];
}

/** The part of `src` a partition covers (clipped to the disk; undefined if it starts beyond it). */
export function partitionSlice(src: BlockSource, p: Partition, owns = false): Slice | undefined {
  if (p.size === 0 || p.start >= src.size) return undefined;
  const size = Math.min(p.size, src.size - p.start);
  return new Slice(src, p.start, size, `${src.label} partition ${p.index}`, owns);
}

function probe(src: BlockSource, warnings: string[], what: string): FilesystemProbe | undefined {
  try {
    return probeFilesystem(src);
  } catch (e) {
    if (!isBfcError(e)) throw e;
    warnings.push(`${what}: cannot read its first blocks (${e.message})`);
    return undefined;
  }
}

function probePartitions(src: BlockSource, partitions: Partition[], warnings: string[]): void {
  for (const p of partitions) {
    if (p.extended) continue;
    if (p.start + p.size > src.size && p.warning === undefined) {
      p.warning = `partition ${p.index} ends beyond the end of the disk (${src.size} bytes)`;
    }
    if (p.warning !== undefined) warnings.push(p.warning);
    const slice = partitionSlice(src, p);
    if (slice !== undefined) p.filesystem = probe(slice, warnings, `partition ${p.index}`);
  }
}

/**
 * Reads the partition table of a disk: GPT (when the MBR has a protective or hybrid 0xEE entry),
 * else MBR, else none (the disk is one filesystem). Each partition's filesystem is probed.
 */
export function readPartitionTable(src: BlockSource): PartitionTable {
  const warnings: string[] = [];
  if (src.size >= MBR_SECTOR) {
    const sector0 = Buffer.alloc(MBR_SECTOR);
    src.read(sector0, 0);
    // A bare FAT or NTFS filesystem also ends sector 0 with 55 AA; its BPB is not a table.
    const whole = probe(src, warnings, "disk");
    const fsAtZero = whole !== undefined && (whole.type === "fat" || whole.type === "ntfs");
    if (isMbr(sector0) && !fsAtZero) {
      const entries = mbrEntries(sector0);
      if (entries.some((e) => e.type === TYPE_GPT_PROTECTIVE)) {
        const gpt = readGpt(src, warnings);
        if (gpt !== null) {
          probePartitions(src, gpt.partitions, warnings);
          return {
            type: "gpt",
            sectorSize: gpt.header.sectorSize,
            diskId: gpt.header.diskGuid,
            partitions: gpt.partitions,
            warnings,
          };
        }
        warnings.push("the MBR announces a GPT (type 0xEE) but none was found; reading the MBR instead");
      }
      const partitions = parseMbr(src, sector0, warnings);
      probePartitions(src, partitions, warnings);
      return {
        type: "mbr",
        sectorSize: MBR_SECTOR,
        diskId: `0x${sector0.readUInt32LE(440).toString(16).padStart(8, "0")}`,
        partitions,
        warnings,
      };
    }
    return { type: "none", sectorSize: MBR_SECTOR, partitions: [], filesystem: whole, warnings };
  }
  return { type: "none", sectorSize: MBR_SECTOR, partitions: [], filesystem: { type: "unknown" }, warnings };
}
