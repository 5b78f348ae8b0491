import type { BlockSource } from "./block-source.ts";

// What a partition (or a bare image) holds, judged by content rather than by the table's type code,
// which is often wrong or generic ("Linux filesystem", 0x83). Recognises ext2/3/4 precisely (the
// importer reads those) and names the usual other tenants so a listing can say why they are skipped.

export type FilesystemType =
  | "ext2"
  | "ext3"
  | "ext4"
  /** An ext3/4 external journal device. */
  | "jbd"
  | "lvm"
  | "luks"
  | "swap"
  | "fat"
  | "ntfs"
  | "squashfs"
  | "xfs"
  | "btrfs"
  | "iso9660"
  | "unknown";

export interface FilesystemProbe {
  type: FilesystemType;
  label?: string;
  uuid?: string;
}

/** Covers every signature below (btrfs's superblock sits at 64 KiB). */
const PROBE_BYTES = 0x11000;

const EXT_MAGIC = 0xef53;
const EXT_COMPAT_HAS_JOURNAL = 0x4;
const EXT_INCOMPAT_JOURNAL_DEV = 0x8;
/** Features ext2/ext3 know (filetype, recover, meta_bg; sparse_super, large_file, btree_dir): anything else is ext4. */
const EXT3_INCOMPAT = 0x2 | 0x4 | 0x10;
const EXT3_RO_COMPAT = 0x1 | 0x2 | 0x4;

function ascii(b: Uint8Array, start: number, text: string): boolean {
  if (start + text.length > b.length) return false;
  for (let i = 0; i < text.length; i++) if (b[start + i] !== text.charCodeAt(i)) return false;
  return true;
}

/** A fixed-size, NUL- or space-padded label; undefined when empty. */
function label(b: Buffer, start: number, length: number): string | undefined {
  const raw = b.subarray(start, start + length);
  const nul = raw.indexOf(0);
  const s = raw
    .toString("utf8", 0, nul < 0 ? raw.length : nul)
    .replace(/[\s\p{Cc}]+$/u, "")
    .replace(/\p{Cc}/gu, "?");
  return s === "" ? undefined : s;
}

export function formatUuidBytes(b: Uint8Array): string {
  const h = Buffer.from(b).toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function probeExt(b: Buffer): FilesystemProbe | null {
  if (b.length < 2048 || b.readUInt16LE(1080) !== EXT_MAGIC) return null;
  const sb = b.subarray(1024, 2048);
  // A stray 0xEF53 is not enough: the block size must be sane too.
  if (sb.readUInt32LE(0x18) > 6 || sb.readUInt32LE(0x20) === 0 || sb.readUInt32LE(0x28) === 0) return null;
  const compat = sb.readUInt32LE(0x5c);
  const incompat = sb.readUInt32LE(0x60);
  const roCompat = sb.readUInt32LE(0x64);
  let type: FilesystemType;
  if (incompat & EXT_INCOMPAT_JOURNAL_DEV) type = "jbd";
  else if (incompat & ~EXT3_INCOMPAT || roCompat & ~EXT3_RO_COMPAT) type = "ext4";
  else if (compat & EXT_COMPAT_HAS_JOURNAL) type = "ext3";
  else type = "ext2";
  return { type, label: label(sb, 0x78, 16), uuid: formatUuidBytes(sb.subarray(0x68, 0x78)) };
}

function probeFat(b: Buffer): FilesystemProbe | null {
  if (b.length < 512 || b[510] !== 0x55 || b[511] !== 0xaa) return null;
  const fat32 = ascii(b, 82, "FAT32   ");
  const fat1x = ascii(b, 54, "FAT12   ") || ascii(b, 54, "FAT16   ") || ascii(b, 54, "FAT     ");
  const bps = b.readUInt16LE(11);
  const spc = b[13];
  const sane =
    (bps === 512 || bps === 1024 || bps === 2048 || bps === 4096) &&
    spc !== 0 &&
    (spc & (spc - 1)) === 0 &&
    b.readUInt16LE(14) !== 0 &&
    (b[16] === 1 || b[16] === 2);
  if (!sane || (!fat32 && !fat1x)) return null;
  const at = fat32 ? 67 : 39;
  const serial = b.readUInt32LE(at).toString(16).toUpperCase().padStart(8, "0");
  const name = label(b, at + 4, 11);
  return {
    type: "fat",
    label: name === "NO NAME" ? undefined : name,
    uuid: `${serial.slice(0, 4)}-${serial.slice(4)}`,
  };
}

function probeSwap(b: Buffer): FilesystemProbe | null {
  for (const page of [4096, 8192, 16384, 65536]) {
    if (ascii(b, page - 10, "SWAPSPACE2") || ascii(b, page - 10, "SWAP-SPACE")) {
      return {
        type: "swap",
        label: label(b, 1024 + 28, 16),
        uuid: formatUuidBytes(b.subarray(1024 + 12, 1024 + 28)),
      };
    }
  }
  return null;
}

function probeLvm(b: Buffer): FilesystemProbe | null {
  for (let s = 0; s < 4; s++) {
    if (ascii(b, s * 512, "LABELONE") && ascii(b, s * 512 + 24, "LVM2 001")) {
      return { type: "lvm", uuid: label(b, s * 512 + 32, 32) };
    }
  }
  return null;
}

function probeSimple(b: Buffer): FilesystemProbe | null {
  if (b.length >= 6 && ascii(b, 0, "LUKS") && b[4] === 0xba && b[5] === 0xbe) {
    return { type: "luks", uuid: label(b, 168, 40) };
  }
  if (ascii(b, 0, "hsqs")) return { type: "squashfs" };
  if (ascii(b, 0, "XFSB") && b.length >= 120) {
    return { type: "xfs", label: label(b, 108, 12), uuid: formatUuidBytes(b.subarray(32, 48)) };
  }
  if (ascii(b, 3, "NTFS    ")) return { type: "ntfs" };
  if (ascii(b, 0x10040, "_BHRfS_M")) {
    return {
      type: "btrfs",
      label: label(b, 0x1012b, 256),
      uuid: formatUuidBytes(b.subarray(0x10020, 0x10030)),
    };
  }
  if (ascii(b, 0x8001, "CD001")) return { type: "iso9660", label: label(b, 0x8028, 32) };
  return null;
}

/** Identifies the filesystem (or volume format) at the start of `b`, the first bytes of a partition. */
export function probeFilesystemBytes(b: Buffer): FilesystemProbe {
  return probeSimple(b) ?? probeLvm(b) ?? probeExt(b) ?? probeFat(b) ?? probeSwap(b) ?? { type: "unknown" };
}

/** Reads the head of `src` and identifies what it holds. */
export function probeFilesystem(src: BlockSource): FilesystemProbe {
  const n = Math.min(PROBE_BYTES, src.size);
  const b = Buffer.alloc(n);
  src.read(b, 0);
  return probeFilesystemBytes(b);
}

/** Kinds that hold files a user may want (as opposed to swap, volume managers and encrypted volumes). */
export function holdsFiles(fs: FilesystemProbe | undefined): boolean {
  if (fs === undefined) return false;
  return !["unknown", "swap", "lvm", "luks", "jbd"].includes(fs.type);
}
