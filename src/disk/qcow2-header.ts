import { BfcError, corrupt } from "../errors.ts";

// The QCOW2 header (qemu docs/interop/qcow2.txt), parsed from the bytes of the image's first
// cluster. Pure: no I/O, every field checked against the file size before anything trusts it.

export const QCOW2_MAGIC = 0x514649fb;
export const MIN_CLUSTER_BITS = 9;
/** qemu's limit (2 MiB clusters); larger values are refused rather than trusted for allocations. */
export const MAX_CLUSTER_BITS = 21;
/** qemu's QCOW_MAX_L1_SIZE: no valid image has a larger L1 table. */
export const MAX_L1_BYTES = 32 * 1024 * 1024;
const V2_HEADER_LENGTH = 72;
const V3_HEADER_LENGTH = 104;
const MAX_BACKING_NAME = 1023;
/** qemu stores the backing format in a 16-byte buffer. */
const MAX_BACKING_FORMAT = 15;

const EXT_END = 0;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_FEATURE_NAMES = 0x6803f857;
const EXT_DATA_FILE = 0x44415441;

export const INCOMPAT_DIRTY = 1;
export const INCOMPAT_CORRUPT = 2;
export const INCOMPAT_DATA_FILE = 4;
export const INCOMPAT_COMPRESSION = 8;
export const INCOMPAT_EXTENDED_L2 = 16;
const INCOMPAT_KNOWN = 0x1f;

export type Qcow2Compression = "zlib" | "zstd";

export interface Qcow2Header {
  version: 2 | 3;
  clusterBits: number;
  clusterSize: number;
  virtualSize: number;
  l1Size: number;
  l1Offset: number;
  headerLength: number;
  /** Incompatible feature bits (v3; 0 for v2), all of them known ones by now. */
  incompatible: number;
  extendedL2: boolean;
  compression: Qcow2Compression;
  /** The backing file name exactly as stored, or null. */
  backingFile: string | null;
  /** The backing format from the header extension ("raw", "qcow2"), or null when not recorded. */
  backingFormat: string | null;
  nbSnapshots: number;
  /** Things a reader can live with but a user should hear about. */
  warnings: string[];
}

/** Bytes of the header needed to learn the cluster size and header length. */
export const QCOW2_PROBE_BYTES = V3_HEADER_LENGTH + 8;

function u64(dv: DataView, off: number, field: string, label: string): number {
  const v = dv.getBigUint64(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw corrupt("BAD_HEADER", `${label}: qcow2 header field ${field} is too large (${v})`, {
      path: label,
      field: `qcow2.${field}`,
    });
  }
  return Number(v);
}

function badHeader(label: string, field: string, message: string): BfcError {
  return corrupt("BAD_HEADER", `${label}: ${message}`, { path: label, field: `qcow2.${field}` });
}

function unsupported(label: string, message: string): BfcError {
  return new BfcError("ENOTSUP", "UNSUPPORTED", `${label}: ${message}`, { path: label });
}

export function isQcow2Magic(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x51 && head[1] === 0x46 && head[2] === 0x49 && head[3] === 0xfb;
}

/** The cluster size, from the first QCOW2_PROBE_BYTES (or fewer) bytes; the caller then reads cluster 0. */
export function qcow2ClusterBits(head: Uint8Array, label: string): number {
  if (head.length < 24) {
    throw corrupt("TRUNCATED", `${label}: qcow2 header is truncated (${head.length} bytes)`, { path: label });
  }
  const bits = new DataView(head.buffer, head.byteOffset, head.byteLength).getUint32(20);
  if (bits < MIN_CLUSTER_BITS || bits > MAX_CLUSTER_BITS) {
    throw badHeader(
      label,
      "cluster_bits",
      `qcow2 cluster_bits ${bits} is outside ${MIN_CLUSTER_BITS}..${MAX_CLUSTER_BITS}`,
    );
  }
  return bits;
}

/**
 * Parses and checks the header. `cluster0` holds the start of the file: its first cluster, or the
 * whole file if that is shorter. `fileSize` bounds every offset.
 */
export function parseQcow2Header(cluster0: Uint8Array, fileSize: number, label: string): Qcow2Header {
  const dv = new DataView(cluster0.buffer, cluster0.byteOffset, cluster0.byteLength);
  if (cluster0.length < V2_HEADER_LENGTH) {
    throw corrupt("TRUNCATED", `${label}: qcow2 header is truncated (${cluster0.length} bytes)`, {
      path: label,
    });
  }
  if (dv.getUint32(0) !== QCOW2_MAGIC) {
    throw corrupt("BAD_MAGIC", `${label}: not a qcow2 image (bad magic)`, { path: label });
  }
  const version = dv.getUint32(4);
  if (version !== 2 && version !== 3) {
    throw unsupported(label, `qcow2 version ${version} is not supported (only 2 and 3)`);
  }
  const clusterBits = qcow2ClusterBits(cluster0, label);
  const clusterSize = 2 ** clusterBits;
  const warnings: string[] = [];

  let headerLength = V2_HEADER_LENGTH;
  let incompatible = 0n;
  let compressionType = 0;
  if (version === 3) {
    if (cluster0.length < V3_HEADER_LENGTH) {
      throw corrupt("TRUNCATED", `${label}: qcow2 v3 header is truncated (${cluster0.length} bytes)`, {
        path: label,
      });
    }
    incompatible = dv.getBigUint64(72);
    headerLength = dv.getUint32(100);
    if (headerLength < V3_HEADER_LENGTH || headerLength % 8 !== 0 || headerLength > clusterSize) {
      throw badHeader(label, "header_length", `qcow2 header_length ${headerLength} is invalid`);
    }
    if (headerLength > cluster0.length) {
      throw corrupt(
        "TRUNCATED",
        `${label}: qcow2 header (${headerLength} bytes) is beyond the end of the file`,
        {
          path: label,
        },
      );
    }
    if (headerLength > V3_HEADER_LENGTH) compressionType = cluster0[104];
  }

  const cryptMethod = dv.getUint32(32);
  if (cryptMethod !== 0) {
    const how = cryptMethod === 1 ? "AES" : cryptMethod === 2 ? "LUKS" : `method ${cryptMethod}`;
    throw unsupported(label, `encrypted qcow2 images (${how}) are not supported`);
  }

  // Header extensions run from the end of the header to the backing file name (or the end of cluster 0).
  const backingOffset = u64(dv, 8, "backing_file_offset", label);
  const backingSize = dv.getUint32(16);
  const extEnd = Math.min(
    backingOffset > headerLength ? backingOffset : clusterSize,
    clusterSize,
    cluster0.length,
  );
  let backingFormat: string | null = null;
  let dataFile = false;
  const featureNames = new Map<number, string>();
  let p = headerLength;
  while (p + 8 <= extEnd) {
    const type = dv.getUint32(p);
    const len = dv.getUint32(p + 4);
    if (type === EXT_END) break;
    if (len > extEnd - p - 8) {
      throw badHeader(
        label,
        "extension",
        `qcow2 header extension 0x${type.toString(16)} at byte ${p} overruns the header cluster`,
      );
    }
    const data = cluster0.subarray(p + 8, p + 8 + len);
    if (type === EXT_BACKING_FORMAT) {
      if (len > MAX_BACKING_FORMAT) {
        throw badHeader(label, "backing_format", `qcow2 backing format name is too long (${len} bytes)`);
      }
      backingFormat = Buffer.from(data).toString("latin1");
    } else if (type === EXT_DATA_FILE) {
      dataFile = true;
    } else if (type === EXT_FEATURE_NAMES) {
      for (let q = 0; q + 48 <= len; q += 48) {
        if (data[q] !== 0) continue; // only incompatible features matter to a reader
        const raw = Buffer.from(data.subarray(q + 2, q + 48));
        const nul = raw.indexOf(0);
        featureNames.set(data[q + 1], raw.toString("latin1", 0, nul < 0 ? raw.length : nul));
      }
    }
    p += 8 + Math.ceil(len / 8) * 8;
  }

  const unknown = incompatible & ~BigInt(INCOMPAT_KNOWN);
  if (unknown !== 0n) {
    const names: string[] = [];
    for (let bit = 0; bit < 64; bit++) {
      if ((unknown >> BigInt(bit)) & 1n) names.push(featureNames.get(bit) ?? `bit ${bit}`);
    }
    throw unsupported(label, `qcow2 image uses unknown incompatible features: ${names.join(", ")}`);
  }
  const incompat = Number(incompatible);
  if (incompat & INCOMPAT_DATA_FILE || dataFile) {
    throw unsupported(label, "qcow2 images with an external data file are not supported");
  }
  if (incompat & INCOMPAT_CORRUPT) {
    warnings.push(`${label}: the image is marked corrupt by qemu (qemu-img check -r all repairs it)`);
  }
  if (incompat & INCOMPAT_COMPRESSION && headerLength <= V3_HEADER_LENGTH) {
    throw badHeader(
      label,
      "compression_type",
      "qcow2 compression type bit is set but the header has no such field",
    );
  }
  if (compressionType !== 0 && !(incompat & INCOMPAT_COMPRESSION)) {
    throw badHeader(
      label,
      "compression_type",
      `qcow2 compression type ${compressionType} without its feature bit`,
    );
  }
  if (compressionType > 1) {
    throw unsupported(
      label,
      `qcow2 compression type ${compressionType} is not supported (only zlib and zstd)`,
    );
  }
  const extendedL2 = (incompat & INCOMPAT_EXTENDED_L2) !== 0;
  if (extendedL2 && clusterBits < 14) {
    throw badHeader(
      label,
      "cluster_bits",
      `qcow2 extended L2 entries need clusters of 16 KiB or more (cluster_bits ${clusterBits})`,
    );
  }

  const virtualSize = u64(dv, 24, "size", label);
  const l1Size = dv.getUint32(36);
  const l1Offset = u64(dv, 40, "l1_table_offset", label);
  const l2Entries = clusterSize / (extendedL2 ? 16 : 8);
  const needed = Math.ceil(virtualSize / clusterSize / l2Entries);
  if (l1Size < needed) {
    throw badHeader(
      label,
      "l1_size",
      `qcow2 L1 table has ${l1Size} entries, the virtual size needs ${needed}`,
    );
  }
  if (l1Size * 8 > MAX_L1_BYTES) {
    throw badHeader(label, "l1_size", `qcow2 L1 table of ${l1Size} entries is larger than qemu allows`);
  }
  if (l1Size > 0) {
    if (l1Offset === 0 || l1Offset % clusterSize !== 0) {
      throw badHeader(
        label,
        "l1_table_offset",
        `qcow2 L1 table offset ${l1Offset} is not a non-zero multiple of the cluster size`,
      );
    }
    if (l1Offset + l1Size * 8 > fileSize) {
      throw corrupt(
        "TRUNCATED",
        `${label}: qcow2 L1 table (${l1Size} entries at ${l1Offset}) is beyond the end of the file (${fileSize} bytes)`,
        {
          path: label,
          field: "qcow2.l1_table_offset",
        },
      );
    }
  }

  let backingFile: string | null = null;
  if (backingOffset !== 0) {
    if (backingSize === 0 || backingSize > MAX_BACKING_NAME) {
      throw badHeader(label, "backing_file_size", `qcow2 backing file name length ${backingSize} is invalid`);
    }
    if (backingOffset < headerLength || backingOffset + backingSize > clusterSize) {
      throw badHeader(
        label,
        "backing_file_offset",
        `qcow2 backing file name at ${backingOffset} is outside the header cluster`,
      );
    }
    if (backingOffset + backingSize > cluster0.length) {
      throw corrupt("TRUNCATED", `${label}: qcow2 backing file name is beyond the end of the file`, {
        path: label,
      });
    }
    const name = Buffer.from(cluster0.subarray(backingOffset, backingOffset + backingSize)).toString("utf8");
    if (name.includes("\0"))
      throw badHeader(label, "backing_file", "qcow2 backing file name contains a NUL byte");
    backingFile = name;
  } else if (backingFormat !== null) {
    warnings.push(`${label}: backing format '${backingFormat}' is recorded but there is no backing file`);
  }

  return {
    version,
    clusterBits,
    clusterSize,
    virtualSize,
    l1Size,
    l1Offset,
    headerLength,
    incompatible: incompat,
    extendedL2,
    compression: compressionType === 1 ? "zstd" : "zlib",
    backingFile,
    backingFormat,
    nbSnapshots: dv.getUint32(60),
    warnings,
  };
}
