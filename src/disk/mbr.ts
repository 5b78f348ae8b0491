import type { BlockSource } from "./block-source.ts";
import type { Partition } from "./partitions.ts";

// The DOS partition table: four primary entries in sector 0, and logical partitions in a chain of
// extended boot records (EBRs) inside an extended partition. Little-endian; CHS fields ignored.

export const MBR_SECTOR = 512;
const ENTRIES_AT = 446;
const ENTRY_SIZE = 16;
export const TYPE_GPT_PROTECTIVE = 0xee;
const EXTENDED_TYPES = new Set([0x05, 0x0f, 0x85]);
/** Linux stops after 100 EBRs; anything longer is a loop in disguise. */
const MAX_EBRS = 128;

const MBR_TYPE_NAMES: Record<number, string> = {
  1: "FAT12",
  4: "FAT16 <32M",
  5: "Extended",
  6: "FAT16",
  7: "HPFS/NTFS/exFAT",
  11: "W95 FAT32",
  12: "W95 FAT32 (LBA)",
  14: "W95 FAT16 (LBA)",
  15: "W95 Ext'd (LBA)",
  17: "Hidden FAT12",
  39: "Hidden NTFS WinRE",
  130: "Linux swap / Solaris",
  131: "Linux",
  133: "Linux extended",
  142: "Linux LVM",
  165: "FreeBSD",
  166: "OpenBSD",
  168: "Darwin UFS",
  169: "NetBSD",
  175: "HFS / HFS+",
  218: "Non-FS data",
  238: "GPT",
  239: "EFI (FAT-12/16/32)",
  253: "Linux raid autodetect",
};

export function mbrTypeName(type: number): string {
  return MBR_TYPE_NAMES[type] ?? "unknown";
}

export interface MbrEntry {
  status: number;
  type: number;
  /** First sector (relative to whatever the entry is relative to) and sector count. */
  start: number;
  count: number;
}

export function hasBootSignature(sector: Uint8Array): boolean {
  return sector.length >= 512 && sector[510] === 0x55 && sector[511] === 0xaa;
}

export function mbrEntries(sector: Buffer): MbrEntry[] {
  const out: MbrEntry[] = [];
  for (let i = 0; i < 4; i++) {
    const at = ENTRIES_AT + i * ENTRY_SIZE;
    out.push({
      status: sector[at],
      type: sector[at + 4],
      start: sector.readUInt32LE(at + 8),
      count: sector.readUInt32LE(at + 12),
    });
  }
  return out;
}

/**
 * Whether sector 0 is a partition table: the boot signature, and entries whose status bytes are
 * 0x00 or 0x80 (a FAT or NTFS boot sector also ends in 55 AA, but has code or BPB bytes there).
 */
export function isMbr(sector: Buffer): boolean {
  if (!hasBootSignature(sector)) return false;
  return mbrEntries(sector).every((e) => e.status === 0 || e.status === 0x80);
}

function isUsed(e: MbrEntry): boolean {
  return e.type !== 0 && e.count !== 0;
}

function entryPartition(index: number, e: MbrEntry, firstLba: number, logical: boolean): Partition {
  const p: Partition = {
    index,
    start: firstLba * MBR_SECTOR,
    size: e.count * MBR_SECTOR,
    firstLba,
    sectors: e.count,
    typeName: mbrTypeName(e.type),
    typeId: e.type.toString(16).padStart(2, "0"),
    bootable: e.status === 0x80,
  };
  if (EXTENDED_TYPES.has(e.type)) p.extended = true;
  if (logical) p.logical = true;
  return p;
}

/**
 * The partitions of an MBR disk: primaries numbered by slot (1–4), then the logical partitions of
 * each extended partition, numbered from 5 in chain order. Chain faults (a loop, a missing
 * signature, an EBR beyond the disk) end the chain with a warning; what was found so far is kept.
 */
export function parseMbr(src: BlockSource, sector0: Buffer, warnings: string[]): Partition[] {
  const out: Partition[] = [];
  const entries = mbrEntries(sector0);
  entries.forEach((e, i) => {
    if (isUsed(e)) out.push(entryPartition(i + 1, e, e.start, false));
  });
  let next = 5;
  for (const ext of entries) {
    if (!isUsed(ext) || !EXTENDED_TYPES.has(ext.type)) continue;
    next = readLogicals(src, ext.start, out, next, warnings);
  }
  return out;
}

function readLogicals(
  src: BlockSource,
  extStart: number,
  out: Partition[],
  first: number,
  warnings: string[],
): number {
  const visited = new Set<number>();
  const sector = Buffer.alloc(MBR_SECTOR);
  let next = first;
  let ebr = extStart;
  for (;;) {
    if (visited.has(ebr)) {
      warnings.push(`extended partition chain loops back to the EBR at sector ${ebr}; stopped there`);
      break;
    }
    if (visited.size >= MAX_EBRS) {
      warnings.push(`extended partition chain is longer than ${MAX_EBRS} EBRs; stopped there`);
      break;
    }
    visited.add(ebr);
    if ((ebr + 1) * MBR_SECTOR > src.size) {
      warnings.push(`EBR at sector ${ebr} is beyond the end of the disk; logical partitions stop there`);
      break;
    }
    src.read(sector, ebr * MBR_SECTOR);
    if (!hasBootSignature(sector)) {
      warnings.push(`EBR at sector ${ebr} has no 55 AA signature; logical partitions stop there`);
      break;
    }
    const [data, link] = mbrEntries(sector);
    if (isUsed(data) && !EXTENDED_TYPES.has(data.type)) {
      out.push(entryPartition(next++, data, ebr + data.start, true));
    }
    if (!isUsed(link) || !EXTENDED_TYPES.has(link.type)) break;
    ebr = extStart + link.start;
  }
  return next;
}
