/**
 * Disk-image fixtures built at test time with the Debian tools `.ci/run` installs (qemu-utils,
 * gdisk, fdisk, e2fsprogs): filesystem images, GPT and MBR disks holding them, QCOW2 variants of
 * any raw disk, overlays on backing files. Shared by the block-layer, ext and import tests.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { BlockSource } from "../../src/disk/block-source.ts";
import { prng } from "../helpers.ts";

const SEARCH = [...(process.env.PATH ?? "").split(path.delimiter), "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
const MiB = 1024 * 1024;

/** The full path of a command, or null when it is not installed. */
export function findTool(name: string): string | null {
  for (const dir of SEARCH) {
    if (dir === "") continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** The commands of `names` that are not installed (for a test's skip reason). */
export function missingTools(names: readonly string[]): string[] {
  return names.filter((n) => findTool(n) === null);
}

/** Runs a tool; throws with its stderr when it fails. Returns stdout. */
export function tool(name: string, args: readonly string[], input?: string): string {
  const exe = findTool(name);
  if (exe === null) throw new Error(`${name} is not installed`);
  try {
    return execFileSync(exe, args, { input, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${name} ${args.join(" ")} failed: ${err.stderr || err.message}`);
  }
}

/** Copies `image` into `disk` at byte `offset`, leaving all-zero MiB chunks as holes. */
export function copyInto(disk: string, image: string, offset: number): void {
  const src = fs.openSync(image, "r");
  const dst = fs.openSync(disk, "r+");
  try {
    const buf = Buffer.alloc(MiB);
    for (let pos = 0; ; pos += MiB) {
      const n = fs.readSync(src, buf, 0, MiB, pos);
      if (n === 0) break;
      const chunk = buf.subarray(0, n);
      if (chunk.some((x) => x !== 0)) fs.writeSync(dst, chunk, 0, n, offset + pos);
    }
  } finally {
    fs.closeSync(src);
    fs.closeSync(dst);
  }
}

export interface ExtImageOptions {
  type: "ext2" | "ext3" | "ext4";
  sizeMiB: number;
  label?: string;
  uuid?: string;
  /** Populate from this directory (mkfs -d). */
  dir?: string;
  blockSize?: 1024 | 2048 | 4096 | 65536;
  /** Extra mkfs options, e.g. ["-O", "inline_data,^64bit"]. */
  extra?: string[];
}

export function makeExtImage(out: string, o: ExtImageOptions): void {
  fs.rmSync(out, { force: true });
  const args = ["-q", "-F", "-t", o.type];
  if (o.label !== undefined) args.push("-L", o.label);
  if (o.uuid !== undefined) args.push("-U", o.uuid, "-E", `root_owner=0:0,hash_seed=${o.uuid}`);
  if (o.dir !== undefined) args.push("-d", o.dir);
  if (o.blockSize !== undefined) args.push("-b", String(o.blockSize));
  args.push(...(o.extra ?? []), out, `${o.sizeMiB}M`);
  tool("mke2fs", args);
}

export function makeSwapImage(out: string, sizeMiB: number, label?: string): void {
  fs.rmSync(out, { force: true });
  fs.writeFileSync(out, "");
  fs.truncateSync(out, sizeMiB * MiB);
  tool("mkswap", [...(label ? ["-L", label] : []), out]);
}

export interface LaidOutPartition {
  index: number;
  /** Bytes. */
  start: number;
  size: number;
}

export interface GptPartitionSpec {
  /** Raw content to copy in (a filesystem image); may be smaller than `sizeMiB`. */
  image?: string;
  sizeMiB: number;
  name?: string;
  /** sgdisk type code ("8300", "ef00", "8200") or a type GUID. */
  type?: string;
  uuid?: string;
}

/**
 * A GPT disk (512-byte sectors): partitions 1..n laid out from 1 MiB, each on a MiB boundary, then
 * their images copied in. The disk is `diskMiB` (default: just big enough) and sparse.
 */
export function buildGptDisk(
  out: string,
  parts: GptPartitionSpec[],
  opts: { diskMiB?: number; diskGuid?: string } = {},
): LaidOutPartition[] {
  const needed = 2 + parts.reduce((s, p) => s + p.sizeMiB, 0);
  fs.rmSync(out, { force: true });
  fs.writeFileSync(out, "");
  fs.truncateSync(out, (opts.diskMiB ?? needed) * MiB);
  const args = ["-o"];
  if (opts.diskGuid) args.push("-U", opts.diskGuid);
  let lba = 2048;
  const laid: LaidOutPartition[] = [];
  parts.forEach((p, i) => {
    const n = i + 1;
    const sectors = (p.sizeMiB * MiB) / 512;
    args.push("-n", `${n}:${lba}:${lba + sectors - 1}`, "-t", `${n}:${p.type ?? "8300"}`);
    if (p.name !== undefined) args.push("-c", `${n}:${p.name}`);
    if (p.uuid !== undefined) args.push("-u", `${n}:${p.uuid}`);
    laid.push({ index: n, start: lba * 512, size: sectors * 512 });
    lba += sectors;
  });
  // No -q: with it sgdisk 1.0.9 silently writes no partitions.
  tool("sgdisk", [...args, out]);
  parts.forEach((p, i) => {
    if (p.image !== undefined) copyInto(out, p.image, laid[i].start);
  });
  return laid;
}

export interface MbrPartitionSpec {
  image?: string;
  sizeMiB: number;
  /** MBR type byte in hex (default "83"). */
  type?: string;
  bootable?: boolean;
}

/** `sfdisk --json`'s partition list. */
export interface SfdiskPartition {
  node: string;
  start: number;
  size: number;
  type: string;
  bootable?: boolean;
  uuid?: string;
  name?: string;
}

export function sfdiskJson(disk: string): {
  label: string;
  id: string;
  sectorsize: number;
  partitions: SfdiskPartition[];
} {
  return JSON.parse(tool("sfdisk", ["--json", disk])).partitiontable;
}

/**
 * An MBR disk with primaries 1.. from 1 MiB, then (if `logical` is given) an extended partition
 * holding them as 5, 6, … (sfdisk places their EBRs). Returns where every partition landed.
 */
export function buildMbrDisk(
  out: string,
  layout: { primary: MbrPartitionSpec[]; logical?: MbrPartitionSpec[] },
  opts: { diskMiB?: number; diskId?: string } = {},
): LaidOutPartition[] {
  const logical = layout.logical ?? [];
  if (layout.primary.length + (logical.length > 0 ? 1 : 0) > 4) throw new Error("too many primaries");
  // Each logical partition is preceded by 1 MiB holding its EBR (sfdisk's alignment).
  const needed =
    2 + layout.primary.reduce((s, p) => s + p.sizeMiB, 0) + logical.reduce((s, p) => s + p.sizeMiB + 1, 0);
  fs.rmSync(out, { force: true });
  fs.writeFileSync(out, "");
  fs.truncateSync(out, (opts.diskMiB ?? needed) * MiB);
  const lines = ["label: dos"];
  if (opts.diskId) lines.push(`label-id: ${opts.diskId}`);
  let lba = 2048;
  for (const p of layout.primary) {
    const sectors = (p.sizeMiB * MiB) / 512;
    lines.push(`start=${lba}, size=${sectors}, type=${p.type ?? "83"}${p.bootable ? ", bootable" : ""}`);
    lba += sectors;
  }
  if (logical.length > 0) {
    lines.push(`start=${lba}, type=5`);
    for (const p of logical) lines.push(`size=${(p.sizeMiB * MiB) / 512}, type=${p.type ?? "83"}`);
  }
  tool("sfdisk", ["--quiet", out], `${lines.join("\n")}\n`);
  const table = sfdiskJson(out);
  const laid = table.partitions.map((p) => ({
    index: Number(/(\d+)$/.exec(p.node)![1]),
    start: p.start * 512,
    size: p.size * 512,
  }));
  const specs = new Map<number, MbrPartitionSpec>();
  layout.primary.forEach((p, i) => {
    specs.set(i + 1, p);
  });
  logical.forEach((p, i) => {
    specs.set(5 + i, p);
  });
  for (const l of laid) {
    const image = specs.get(l.index)?.image;
    if (image !== undefined) copyInto(out, image, l.start);
  }
  return laid;
}

/**
 * A raw disk of `sizeMiB` with varied content in 64 KiB units (deterministic from `seed`): random
 * bytes, text, runs of one byte, holes, and units only partly written, so that every cluster kind
 * shows up after conversion. The file is sparse where the content is zero. With `textOnly`, every
 * unit is text (a worst case for decompression speed: nothing is a hole or stored raw).
 */
export function makePatternDisk(out: string, sizeMiB: number, seed: number, textOnly = false): void {
  const next = prng(seed);
  const unit = 64 * 1024;
  const fd = fs.openSync(out, "w");
  try {
    fs.ftruncateSync(fd, sizeMiB * MiB);
    const text = Buffer.from("The quick brown fox jumps over the lazy dog; 0123456789.\n".repeat(1200));
    const b = Buffer.alloc(unit);
    for (let pos = 0; pos < sizeMiB * MiB; pos += unit) {
      const kind = textOnly ? 3 : Math.floor(next() * 6);
      if (kind === 0 || kind === 1) continue; // hole
      if (kind === 2) for (let i = 0; i < unit; i += 4) b.writeUInt32LE(Math.floor(next() * 2 ** 32), i);
      else if (kind === 3) text.copy(b, 0, Math.floor(next() * 1000), Math.floor(next() * 1000) + unit);
      else if (kind === 4) b.fill(Math.floor(next() * 256));
      else {
        b.fill(0);
        const at = Math.floor(next() * (unit - 4096));
        for (let i = at; i < at + 4096; i++) b[i] = Math.floor(next() * 256);
      }
      fs.writeSync(fd, b, 0, unit, pos);
    }
  } finally {
    fs.closeSync(fd);
  }
}

export interface Qcow2Variant {
  /** "0.10" is qcow2 version 2, "1.1" (the default) version 3. */
  compat?: "0.10" | "1.1";
  compression?: "zlib" | "zstd";
  clusterSize?: number;
  extendedL2?: boolean;
}

/** The variants the issue lists, by name. */
export const QCOW2_VARIANTS: Record<string, Qcow2Variant> = {
  v3: {},
  v2: { compat: "0.10" },
  zlib: { compression: "zlib" },
  zstd: { compression: "zstd" },
  "4k-zlib": { clusterSize: 4096, compression: "zlib" },
  "2m-l2ext": { clusterSize: 2 * MiB, extendedL2: true },
  "2m-zstd": { clusterSize: 2 * MiB, compression: "zstd" },
  "512-v3": { clusterSize: 512 },
};

function variantOptions(v: Qcow2Variant): string[] {
  const o: string[] = [];
  if (v.compat) o.push(`compat=${v.compat}`);
  if (v.clusterSize) o.push(`cluster_size=${v.clusterSize}`);
  if (v.extendedL2) o.push("extended_l2=on");
  if (v.compression === "zstd") o.push("compression_type=zstd");
  return o.length > 0 ? ["-o", o.join(",")] : [];
}

export function convertToQcow2(src: string, out: string, v: Qcow2Variant, srcFormat = "raw"): void {
  fs.rmSync(out, { force: true });
  tool("qemu-img", [
    "convert",
    "-f",
    srcFormat,
    "-O",
    "qcow2",
    ...(v.compression ? ["-c"] : []),
    ...variantOptions(v),
    src,
    out,
  ]);
}

/**
 * An empty qcow2 over `backing` (a name as it will be recorded: relative names are resolved from
 * `out`'s directory), of the backing file's size unless `sizeBytes` is given.
 */
export function createOverlay(
  out: string,
  backing: string,
  backingFormat: "raw" | "qcow2",
  v: Qcow2Variant = {},
  sizeBytes?: number,
): void {
  fs.rmSync(out, { force: true });
  const args = ["create", "-q", "-f", "qcow2", "-b", backing, "-F", backingFormat, ...variantOptions(v), out];
  if (sizeBytes !== undefined) args.push(String(sizeBytes));
  tool("qemu-img", args);
}

/** Runs qemu-io commands ("write -P 0x5a 0 4096", "write -z 1M 64k", "write -s file 0 64k") on a qcow2. */
export function qemuIo(image: string, commands: string[]): void {
  tool("qemu-io", ["-f", "qcow2", ...commands.flatMap((c) => ["-c", c]), image]);
}

/** What qemu reads from the image: `qemu-img convert -O raw`. */
export function convertToRaw(image: string, out: string): void {
  fs.rmSync(out, { force: true });
  tool("qemu-img", ["convert", "-O", "raw", image, out]);
}

export function sha256File(file: string): string {
  const h = createHash("sha256");
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.alloc(4 * MiB);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}

/** sha256 of everything a BlockSource holds, read in `chunk`-byte pieces. */
export function sha256Source(src: BlockSource, chunk = MiB): string {
  const h = createHash("sha256");
  const buf = Buffer.alloc(chunk);
  for (let pos = 0; pos < src.size; pos += chunk) {
    const n = Math.min(chunk, src.size - pos);
    src.read(buf.subarray(0, n), pos);
    h.update(buf.subarray(0, n));
  }
  return h.digest("hex");
}
