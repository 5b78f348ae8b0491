/**
 * Partition tables built byte by byte, for unit tests that need what the tools will not make
 * (4096-byte-sector GPTs on a plain file, damaged headers, looping EBR chains).
 */
import zlib from "node:zlib";

export interface GptPartSpec {
  first: number;
  last: number;
  type: string;
  uuid: string;
  name?: string;
  attributes?: bigint;
  /** Entry slot (default: the next one). */
  slot?: number;
}

export interface GptSpec {
  sectorSize: 512 | 4096;
  sectors: number;
  diskGuid: string;
  partitions: GptPartSpec[];
  entryCount?: number;
}

/** Inverse of formatGuid: the first three fields little-endian. */
export function guidBytes(guid: string): Buffer {
  const h = guid.replace(/-/g, "");
  const b = Buffer.from(h, "hex");
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

export interface BuiltGpt {
  disk: Buffer;
  primaryHeader: number;
  primaryEntries: number;
  backupHeader: number;
}

export function buildGpt(spec: GptSpec): BuiltGpt {
  const ss = spec.sectorSize;
  const count = spec.entryCount ?? 128;
  const entriesBytes = count * 128;
  const entriesSectors = Math.ceil(entriesBytes / ss);
  const disk = Buffer.alloc(spec.sectors * ss);
  const last = spec.sectors - 1;
  // Protective MBR.
  const pm = 446;
  disk[pm + 4] = 0xee;
  disk.writeUInt32LE(1, pm + 8);
  disk.writeUInt32LE(Math.min(last, 0xffffffff), pm + 12);
  disk[510] = 0x55;
  disk[511] = 0xaa;
  const entries = Buffer.alloc(entriesBytes);
  spec.partitions.forEach((p, i) => {
    const at = (p.slot ?? i) * 128;
    guidBytes(p.type).copy(entries, at);
    guidBytes(p.uuid).copy(entries, at + 16);
    entries.writeBigUInt64LE(BigInt(p.first), at + 32);
    entries.writeBigUInt64LE(BigInt(p.last), at + 40);
    entries.writeBigUInt64LE(p.attributes ?? 0n, at + 48);
    entries.write(p.name ?? "", at + 56, 72, "utf16le");
  });
  const header = (myLba: number, altLba: number, entriesLba: number) => {
    const h = Buffer.alloc(92);
    h.write("EFI PART", 0, "latin1");
    h.writeUInt32LE(0x00010000, 8);
    h.writeUInt32LE(92, 12);
    h.writeBigUInt64LE(BigInt(myLba), 24);
    h.writeBigUInt64LE(BigInt(altLba), 32);
    h.writeBigUInt64LE(BigInt(2 + entriesSectors), 40);
    h.writeBigUInt64LE(BigInt(last - 1 - entriesSectors), 48);
    guidBytes(spec.diskGuid).copy(h, 56);
    h.writeBigUInt64LE(BigInt(entriesLba), 72);
    h.writeUInt32LE(count, 80);
    h.writeUInt32LE(128, 84);
    h.writeUInt32LE(zlib.crc32(entries), 88);
    h.writeUInt32LE(zlib.crc32(h), 16);
    return h;
  };
  const backupEntries = last - entriesSectors;
  header(1, last, 2).copy(disk, ss);
  entries.copy(disk, 2 * ss);
  header(last, 1, backupEntries).copy(disk, last * ss);
  entries.copy(disk, backupEntries * ss);
  return { disk, primaryHeader: ss, primaryEntries: 2 * ss, backupHeader: last * ss };
}

export interface MbrEntrySpec {
  type: number;
  start: number;
  count: number;
  status?: number;
}

export function writeMbrSector(disk: Buffer, lba: number, entries: MbrEntrySpec[], diskId = 0): void {
  const at = lba * 512;
  if (lba === 0) disk.writeUInt32LE(diskId, 440);
  entries.forEach((e, i) => {
    const p = at + 446 + i * 16;
    disk[p] = e.status ?? 0;
    disk[p + 4] = e.type;
    disk.writeUInt32LE(e.start, p + 8);
    disk.writeUInt32LE(e.count, p + 12);
  });
  disk[at + 510] = 0x55;
  disk[at + 511] = 0xaa;
}

export interface LogicalSpec {
  /** Start of the logical partition's EBR, relative to the extended partition. */
  ebr: number;
  /** Start of the data relative to its EBR, and its length. */
  offset: number;
  count: number;
  type?: number;
}

/** Writes a chain of EBRs: each links to the next in the list (relative to the extended start). */
export function writeEbrChain(disk: Buffer, extStart: number, logicals: LogicalSpec[]): void {
  logicals.forEach((l, i) => {
    const next = logicals[i + 1];
    const entries: MbrEntrySpec[] = [{ type: l.type ?? 0x83, start: l.offset, count: l.count }];
    if (next !== undefined) entries.push({ type: 0x05, start: next.ebr, count: next.offset + next.count });
    writeMbrSector(disk, extStart + l.ebr, entries);
  });
}

/** A minimal ext superblock (enough for the probe) at byte 1024 of `at`. */
export function writeExtSuperblock(
  disk: Buffer,
  at: number,
  features: { compat?: number; incompat?: number; roCompat?: number; label?: string },
): void {
  const sb = at + 1024;
  disk.writeUInt32LE(1024, sb + 0x00);
  disk.writeUInt32LE(4096, sb + 0x04);
  disk.writeUInt32LE(2, sb + 0x18);
  disk.writeUInt32LE(32768, sb + 0x20);
  disk.writeUInt32LE(1024, sb + 0x28);
  disk.writeUInt16LE(0xef53, sb + 0x38);
  disk.writeUInt32LE(features.compat ?? 0, sb + 0x5c);
  disk.writeUInt32LE(features.incompat ?? 0, sb + 0x60);
  disk.writeUInt32LE(features.roCompat ?? 0, sb + 0x64);
  for (let i = 0; i < 16; i++) disk[sb + 0x68 + i] = i * 17;
  if (features.label) disk.write(features.label, sb + 0x78, 16, "latin1");
}
