import zlib from "node:zlib";
import type { BlockSource } from "./block-source.ts";
import type { Partition } from "./partitions.ts";

// The GUID partition table: a header at LBA 1 (sector size 512 or 4096) pointing at an array of
// entries, both CRC-32 protected, with a backup header at the disk's last LBA and a backup entry
// array before it. All little-endian.

const SIGNATURE = "EFI PART";
const MIN_HEADER_SIZE = 92;
/** sgdisk writes 128 × 128 bytes; a few MiB leaves room for any real table and no more. */
const MAX_ENTRIES_BYTES = 4 * 1024 * 1024;
const MIN_ENTRY_SIZE = 128;
export const GPT_SECTOR_SIZES = [512, 4096] as const;

const GPT_TYPE_NAMES: Record<string, string> = {
  "0FC63DAF-8483-4772-8E79-3D69D8477DE4": "Linux filesystem",
  "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": "Linux x86-64 root (/)",
  "44479540-F297-41B2-9AF7-D131D5F0458A": "Linux x86 root (/)",
  "B921B045-1DF0-41C3-AF44-4C6F280D3FAE": "Linux ARM64 root (/)",
  "933AC7E1-2EB4-4F13-B844-0E14E2AEF915": "Linux /home",
  "3B8F8425-20E0-4F3B-907F-1A25A76F98E8": "Linux /srv",
  "BC13C2FF-59E6-4262-A352-B275FD6F7172": "Freedesktop $BOOT",
  "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "Linux swap",
  "E6D6D379-F507-44C2-A23C-238F2A3DF928": "Linux LVM",
  "A19D880F-05FC-4D3B-A006-743F0F84911E": "Linux RAID",
  "CA7D7CCB-63ED-4C53-861C-1742536059CC": "Linux LUKS",
  "8DA63339-0007-60C0-C436-083AC8230908": "Linux reserved",
  "C12A7328-F81F-11D2-BA4B-00A0C93EC93B": "EFI system partition",
  "21686148-6449-6E6F-744E-656564454649": "BIOS boot partition",
  "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": "Microsoft basic data",
  "E3C9E316-0B5C-4DB8-817D-F92DF00215AE": "Microsoft reserved",
  "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC": "Windows RE",
};

export function gptTypeName(guid: string): string {
  return GPT_TYPE_NAMES[guid] ?? "unknown";
}

/** A GUID as printed: the first three fields are stored little-endian, the last two in byte order. */
export function formatGuid(b: Uint8Array): string {
  const h = (from: number, to: number, reverse: boolean) => {
    const part = Array.from(b.subarray(from, to));
    if (reverse) part.reverse();
    return part.map((x) => x.toString(16).padStart(2, "0")).join("");
  };
  return `${h(0, 4, true)}-${h(4, 6, true)}-${h(6, 8, true)}-${h(8, 10, false)}-${h(10, 16, false)}`.toUpperCase();
}

export interface GptHeader {
  sectorSize: number;
  myLba: number;
  alternateLba: number;
  firstUsable: number;
  lastUsable: number;
  diskGuid: string;
  entriesLba: number;
  entryCount: number;
  entrySize: number;
}

export interface GptTable {
  header: GptHeader;
  partitions: Partition[];
}

function u64(b: Buffer, at: number): number | null {
  const v = b.readBigUInt64LE(at);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(v);
}

/**
 * Reads and checks the header at `lba` and its entry array. Returns the table, or a reason why
 * this copy is unusable.
 */
export function readGptAt(src: BlockSource, sectorSize: number, lba: number): GptTable | string {
  const diskSectors = Math.floor(src.size / sectorSize);
  if (lba < 1 || lba >= diskSectors) return `no sector ${lba} on the disk`;
  const hb = Buffer.alloc(sectorSize);
  src.read(hb, lba * sectorSize);
  if (hb.toString("latin1", 0, 8) !== SIGNATURE) return "no EFI PART signature";
  const headerSize = hb.readUInt32LE(12);
  if (headerSize < MIN_HEADER_SIZE || headerSize > sectorSize) return `header size ${headerSize} is invalid`;
  const stored = hb.readUInt32LE(16);
  const copy = Buffer.from(hb.subarray(0, headerSize));
  copy.writeUInt32LE(0, 16);
  if (zlib.crc32(copy) !== stored) return "header CRC mismatch";
  const myLba = u64(hb, 24);
  const alternateLba = u64(hb, 32);
  const firstUsable = u64(hb, 40);
  const lastUsable = u64(hb, 48);
  const entriesLba = u64(hb, 72);
  if (
    myLba === null ||
    alternateLba === null ||
    firstUsable === null ||
    lastUsable === null ||
    entriesLba === null
  ) {
    return "a sector number is out of range";
  }
  if (myLba !== lba) return `header says it is at sector ${myLba}, found at ${lba}`;
  const entryCount = hb.readUInt32LE(80);
  const entrySize = hb.readUInt32LE(84);
  if (entrySize < MIN_ENTRY_SIZE || entrySize % 8 !== 0) return `entry size ${entrySize} is invalid`;
  const entriesBytes = entryCount * entrySize;
  if (entriesBytes > MAX_ENTRIES_BYTES)
    return `entry array of ${entryCount} × ${entrySize} bytes is too large`;
  const entriesSectors = Math.ceil(entriesBytes / sectorSize);
  if (entriesLba < 1 || entriesLba + entriesSectors > diskSectors)
    return "entry array is beyond the end of the disk";
  if (entriesLba <= lba && lba < entriesLba + entriesSectors) return "entry array overlaps the header";
  const eb = Buffer.alloc(entriesBytes);
  src.read(eb, entriesLba * sectorSize);
  if (zlib.crc32(eb) !== hb.readUInt32LE(88)) return "entry array CRC mismatch";
  const header: GptHeader = {
    sectorSize,
    myLba,
    alternateLba,
    firstUsable,
    lastUsable,
    diskGuid: formatGuid(hb.subarray(56, 72)),
    entriesLba,
    entryCount,
    entrySize,
  };
  return { header, partitions: parseEntries(eb, header, diskSectors) };
}

function parseEntries(eb: Buffer, h: GptHeader, diskSectors: number): Partition[] {
  const out: Partition[] = [];
  for (let i = 0; i < h.entryCount; i++) {
    const e = eb.subarray(i * h.entrySize, i * h.entrySize + MIN_ENTRY_SIZE);
    if (e.subarray(0, 16).every((x) => x === 0)) continue;
    const typeId = formatGuid(e.subarray(0, 16));
    const first = u64(e, 32);
    const last = u64(e, 40);
    const p: Partition = {
      index: i + 1,
      start: 0,
      size: 0,
      firstLba: first ?? 0,
      sectors: 0,
      typeName: gptTypeName(typeId),
      typeId,
      uuid: formatGuid(e.subarray(16, 32)),
      name: utf16Name(e.subarray(56, 128)),
      bootable: (e.readUInt32LE(48) & 4) !== 0,
    };
    if (
      first === null ||
      last === null ||
      last < first ||
      (last + 1) * h.sectorSize > Number.MAX_SAFE_INTEGER
    ) {
      p.warning = `entry ${i + 1} has an invalid sector range`;
    } else {
      p.sectors = last - first + 1;
      p.start = first * h.sectorSize;
      p.size = p.sectors * h.sectorSize;
      if (last >= diskSectors) p.warning = `partition ${i + 1} ends beyond the end of the disk`;
    }
    out.push(p);
  }
  return out;
}

function utf16Name(b: Buffer): string {
  let end = 0;
  while (end + 1 < b.length && (b[end] !== 0 || b[end + 1] !== 0)) end += 2;
  return b.toString("utf16le", 0, end);
}

/**
 * Finds the GPT: the primary header at LBA 1 with 512- then 4096-byte sectors; if neither is
 * valid, the backup header at the last LBA (with a warning). Returns null when there is none.
 */
export function readGpt(src: BlockSource, warnings: string[]): GptTable | null {
  const problems: string[] = [];
  for (const ss of GPT_SECTOR_SIZES) {
    if (src.size < 2 * ss) continue;
    const primary = readGptAt(src, ss, 1);
    if (typeof primary !== "string") {
      checkBackup(src, primary.header, warnings);
      return primary;
    }
    if (primary !== "no EFI PART signature")
      problems.push(`primary GPT header (${ss}-byte sectors): ${primary}`);
  }
  for (const ss of GPT_SECTOR_SIZES) {
    const last = Math.floor(src.size / ss) - 1;
    if (last < 2) continue;
    const backup = readGptAt(src, ss, last);
    if (typeof backup !== "string") {
      const why = problems.length > 0 ? problems.join("; ") : "primary GPT header not found";
      warnings.push(`${why}; using the backup GPT at sector ${last}`);
      return backup;
    }
  }
  if (problems.length > 0) warnings.push(`${problems.join("; ")}; no valid backup GPT either`);
  return null;
}

function checkBackup(src: BlockSource, h: GptHeader, warnings: string[]): void {
  const backup = readGptAt(src, h.sectorSize, h.alternateLba);
  if (typeof backup === "string") {
    warnings.push(`backup GPT header at sector ${h.alternateLba} is unusable (${backup})`);
  }
}
