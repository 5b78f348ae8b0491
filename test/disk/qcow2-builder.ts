/**
 * Builds QCOW2 images in memory from a description of each virtual cluster, so unit tests can
 * reach every descriptor layout (standard, zero, compressed at unaligned offsets, extended L2)
 * without qemu. Returns the image and the virtual disk it should read as (backing = zeros).
 */
import zlib from "node:zlib";

export type SubclusterKind = "data" | "zero" | "unallocated";

export type ClusterSpec =
  | { kind: "data"; data: Buffer }
  /** The zero flag; `preallocated` keeps a host cluster (filled with junk) beside it, as qemu does. */
  | { kind: "zero"; preallocated?: boolean }
  /** Compressed with the image's codec; zstd payloads split into `frames` frames (default 1). */
  | { kind: "compressed"; data: Buffer; frames?: number }
  | { kind: "unallocated" }
  /** Extended L2 only: 32 subclusters. `data` is the whole cluster (only allocated subclusters stored). */
  | { kind: "subclusters"; data: Buffer; map: SubclusterKind[] };

export interface Qcow2Spec {
  version?: 2 | 3;
  clusterBits: number;
  virtualSize: number;
  extendedL2?: boolean;
  compression?: "zlib" | "zstd";
  /** Virtual cluster index → content; missing clusters are unallocated. */
  clusters: Map<number, ClusterSpec>;
  backingFile?: string;
  backingFormat?: string;
  /** Bytes appended after each compressed payload before the next (the "head of the next cluster"). */
  compressedGap?: Buffer;
}

export interface BuiltQcow2 {
  image: Buffer;
  /** The virtual disk with unallocated parts as zeros. */
  expected: Buffer;
  /** Offsets of interesting structures, for corruption tests. */
  l1Offset: number;
  l2Offsets: number[];
}

const HEADER_V3 = 112;

function zstdFrames(data: Buffer, frames: number): Buffer {
  const parts: Buffer[] = [];
  const step = Math.ceil(data.length / frames);
  for (let i = 0; i < data.length; i += step) parts.push(zlib.zstdCompressSync(data.subarray(i, i + step)));
  return Buffer.concat(parts);
}

export function compressCluster(data: Buffer, codec: "zlib" | "zstd", frames = 1): Buffer {
  return codec === "zstd" ? zstdFrames(data, frames) : zlib.deflateRawSync(data);
}

export function buildQcow2(spec: Qcow2Spec): BuiltQcow2 {
  const version = spec.version ?? 3;
  const cb = spec.clusterBits;
  const cs = 2 ** cb;
  const ext = spec.extendedL2 === true;
  const entryBytes = ext ? 16 : 8;
  const l2Entries = cs / entryBytes;
  const vclusters = Math.ceil(spec.virtualSize / cs);
  const l1Size = Math.max(1, Math.ceil(vclusters / l2Entries));
  const codec = spec.compression ?? "zlib";
  const expected = Buffer.alloc(spec.virtualSize);

  const sorted = [...spec.clusters].sort((a, b) => a[0] - b[0]);
  const gap = spec.compressedGap ?? Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x28, 0xb5, 0x2f]);
  const payloads = new Map<number, Buffer>();
  let compressedBytes = 0;
  for (const [ci, c] of sorted) {
    if (c.kind !== "compressed") continue;
    const full = Buffer.alloc(cs);
    c.data.copy(full);
    const payload = compressCluster(full, codec, c.frames);
    payloads.set(ci, payload);
    compressedBytes += payload.length + gap.length;
  }
  const usedL1 = new Set<number>();
  let hostClusters = 0;
  for (const [ci, c] of spec.clusters) {
    if (c.kind !== "unallocated") usedL1.add(Math.floor(ci / l2Entries));
    if (c.kind === "data" || (c.kind === "zero" && c.preallocated) || c.kind === "subclusters")
      hostClusters++;
  }
  const l1Clusters = Math.ceil((l1Size * 8) / cs);
  // qemu will not open an image without refcounts: every host cluster gets a count of 1 (16-bit).
  const base = 1 + l1Clusters + usedL1.size + hostClusters + Math.ceil((compressedBytes + 3) / cs);
  let rcBlocks = 1;
  let rcTable = 1;
  for (;;) {
    const total = base + rcBlocks + rcTable;
    const blocks = Math.ceil(total / (cs / 2));
    const table = Math.ceil((blocks * 8) / cs);
    if (blocks === rcBlocks && table === rcTable) break;
    rcBlocks = blocks;
    rcTable = table;
  }
  const totalClusters = base + rcBlocks + rcTable;

  // Layout: header cluster, L1, refcounts, L2 tables, standard data clusters, then compressed bytes.
  let next = cs;
  const l1Offset = next;
  next += l1Clusters * cs;
  const rcTableOffset = next;
  next += rcTable * cs;
  const rcBlocksOffset = next;
  next += rcBlocks * cs;
  const l2Offsets: number[] = [];
  const l2At = new Map<number, number>();
  for (const i of [...usedL1].sort((a, b) => a - b)) {
    l2At.set(i, next);
    l2Offsets.push(next);
    next += cs;
  }
  const writes: { at: number; data: Buffer }[] = [];
  const entries = new Map<number, { desc: bigint; bitmap: bigint }>();
  for (const [ci, c] of sorted) {
    const vstart = ci * cs;
    const vlen = Math.min(cs, spec.virtualSize - vstart);
    if (c.kind === "data") {
      writes.push({ at: next, data: c.data });
      entries.set(ci, { desc: BigInt(next) | (1n << 63n), bitmap: ext ? 0xffffffffn : 0n });
      c.data.copy(expected, vstart, 0, vlen);
      next += cs;
    } else if (c.kind === "zero") {
      let desc = 1n;
      if (c.preallocated) {
        writes.push({ at: next, data: Buffer.alloc(cs, 0xa5) });
        desc |= BigInt(next);
        next += cs;
      }
      entries.set(ci, ext ? { desc: desc & ~1n, bitmap: 0xffffffffn << 32n } : { desc, bitmap: 0n });
    } else if (c.kind === "subclusters") {
      const sc = cs / 32;
      let alloc = 0n;
      let zeros = 0n;
      c.map.forEach((k, s) => {
        if (k === "data") {
          alloc |= 1n << BigInt(s);
          c.data.copy(expected, vstart + s * sc, s * sc, Math.min((s + 1) * sc, vlen));
        } else if (k === "zero") zeros |= 1n << BigInt(32 + s);
      });
      let desc = 0n;
      if (alloc !== 0n) {
        // Only allocated subclusters are written; the rest of the host cluster stays junk.
        const host = Buffer.alloc(cs, 0x5a);
        c.map.forEach((k, s) => {
          if (k === "data") c.data.copy(host, s * sc, s * sc, (s + 1) * sc);
        });
        writes.push({ at: next, data: host });
        desc = BigInt(next);
        next += cs;
      }
      entries.set(ci, { desc, bitmap: alloc | zeros });
    }
  }
  // Compressed payloads: packed at byte granularity from an odd offset, each followed by a gap.
  let cpos = next + 3;
  const csizeShift = BigInt(62 - (cb - 8));
  for (const [ci, c] of sorted) {
    if (c.kind !== "compressed") continue;
    const vstart = ci * cs;
    c.data.copy(expected, vstart, 0, Math.min(c.data.length, cs, spec.virtualSize - vstart));
    const payload = payloads.get(ci)!;
    const nsectors = Math.floor((cpos + payload.length - 1) / 512) - Math.floor(cpos / 512);
    if (nsectors >= 2 ** (cb - 8)) throw new Error(`compressed payload too large for cluster_bits ${cb}`);
    entries.set(ci, { desc: (1n << 62n) | (BigInt(nsectors) << csizeShift) | BigInt(cpos), bitmap: 0n });
    writes.push({ at: cpos, data: payload });
    cpos += payload.length;
    writes.push({ at: cpos, data: gap });
    cpos += gap.length;
  }
  const fileSize = Math.max(cpos, next);

  const image = Buffer.alloc(fileSize);
  if (Math.ceil(fileSize / cs) > totalClusters) throw new Error("builder: refcount estimate too small");
  for (let i = 0; i < rcBlocks; i++)
    image.writeBigUInt64BE(BigInt(rcBlocksOffset + i * cs), rcTableOffset + i * 8);
  for (let c = 0; c < Math.ceil(fileSize / cs); c++) image.writeUInt16BE(1, rcBlocksOffset + c * 2);
  image.writeBigUInt64BE(BigInt(rcTableOffset), 48);
  image.writeUInt32BE(rcTable, 56);
  // Header.
  image.writeUInt32BE(0x514649fb, 0);
  image.writeUInt32BE(version, 4);
  image.writeUInt32BE(cb, 20);
  image.writeBigUInt64BE(BigInt(spec.virtualSize), 24);
  image.writeUInt32BE(l1Size, 36);
  image.writeBigUInt64BE(BigInt(l1Offset), 40);
  let hdrEnd = 72;
  if (version === 3) {
    let incompat = 0n;
    if (codec === "zstd") incompat |= 8n;
    if (ext) incompat |= 16n;
    image.writeBigUInt64BE(incompat, 72);
    image.writeUInt32BE(4, 96); // refcount_order
    image.writeUInt32BE(HEADER_V3, 100);
    image[104] = codec === "zstd" ? 1 : 0;
    hdrEnd = HEADER_V3;
  }
  let p = hdrEnd;
  if (spec.backingFormat !== undefined) {
    const f = Buffer.from(spec.backingFormat);
    image.writeUInt32BE(0xe2792aca, p);
    image.writeUInt32BE(f.length, p + 4);
    f.copy(image, p + 8);
    p += 8 + Math.ceil(f.length / 8) * 8;
  }
  image.writeUInt32BE(0, p); // end of extensions
  image.writeUInt32BE(0, p + 4);
  p += 8;
  if (spec.backingFile !== undefined) {
    const name = Buffer.from(spec.backingFile);
    image.writeBigUInt64BE(BigInt(p), 8);
    image.writeUInt32BE(name.length, 16);
    name.copy(image, p);
  }
  // L1 and L2.
  for (const [i, at] of l2At) image.writeBigUInt64BE(BigInt(at) | (1n << 63n), l1Offset + i * 8);
  for (const [ci, e] of entries) {
    const at = l2At.get(Math.floor(ci / l2Entries))! + (ci % l2Entries) * entryBytes;
    image.writeBigUInt64BE(e.desc, at);
    if (ext) image.writeBigUInt64BE(e.bitmap, at + 8);
  }
  for (const w of writes) w.data.copy(image, w.at);
  return { image, expected, l1Offset, l2Offsets };
}
