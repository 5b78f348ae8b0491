import { BfcError } from "../errors.ts";

/**
 * The extension area: bytes after the last index entry, inside the index blob, so covered by the
 * footer's index CRC and skipped by the reference reader (it reads `entry_count` entries and ignores
 * the rest of the blob). A container written without extensions has no such bytes and is laid out
 * exactly as the reference writes it.
 *
 * Layout (little-endian):
 *   magic "BFCX" | u16 version (1) | u16 reserved (0) | u32 record count
 *   records: u16 type | u16 flags | u32 payload length | payload
 * Unknown record types are skipped unless flagged critical (bit 0), which a reader that does not
 * know them must refuse, so later versions can add data old readers would otherwise misread.
 */

export const EXTENSION_MAGIC = Buffer.from("BFCX", "latin1");
export const EXTENSION_VERSION = 1;
const HEADER = 12;
const RECORD_HEADER = 8;
export const FLAG_CRITICAL = 1;

export const RECORD_METADATA = 1;
export const RECORD_LIMITS = 2;
export const RECORD_PREVIOUS_COMMIT = 3;
export const RECORD_ROOT_DIGEST = 4;

/** Descriptive metadata about the container as a whole. */
export interface ContainerMetadata {
  /** The tool (and version) that wrote the container. */
  creator?: string;
  /** Unix nanoseconds. */
  createdNs?: bigint;
  modifiedNs?: bigint;
  labels?: Record<string, string>;
}

/** Resource limits; an absent field is unlimited. */
export interface ResourceLimits {
  maxFiles?: number;
  maxDirectories?: number;
  maxTotalBytes?: number;
  maxFileSize?: number;
}

/** Where the previous commit's footer ends (its footer's last byte + 1) and which commit this is. */
export interface PreviousCommit {
  footerEnd: number;
  commit: number;
}

export interface Extension {
  metadata?: ContainerMetadata;
  limits?: ResourceLimits;
  previous?: PreviousCommit;
  /** SHA-256 root digest recorded when the commit was written. */
  rootDigest?: Buffer;
  /** Records this version does not know (kept so rewriting preserves them). */
  unknown: { type: number; flags: number; payload: Buffer }[];
}

function bad(detail: string): BfcError {
  return new BfcError("EIO", "BAD_INDEX", `index extension area: ${detail}`, { field: "index.extension" });
}

const LIMIT_KEYS = ["maxFiles", "maxDirectories", "maxTotalBytes", "maxFileSize"] as const;
const UNLIMITED = 0xffffffffffffffffn;

function encodeMetadata(m: ContainerMetadata): Buffer {
  const obj: Record<string, unknown> = {};
  if (m.creator !== undefined) obj.creator = m.creator;
  if (m.createdNs !== undefined) obj.created_ns = m.createdNs.toString();
  if (m.modifiedNs !== undefined) obj.modified_ns = m.modifiedNs.toString();
  if (m.labels !== undefined) obj.labels = m.labels;
  return Buffer.from(JSON.stringify(obj), "utf8");
}

function decodeMetadata(p: Buffer): ContainerMetadata {
  let obj: unknown;
  try {
    obj = JSON.parse(p.toString("utf8"));
  } catch {
    throw bad("metadata is not JSON");
  }
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) throw bad("metadata is not an object");
  const o = obj as Record<string, unknown>;
  const out: ContainerMetadata = {};
  if (o.creator !== undefined) {
    if (typeof o.creator !== "string") throw bad("metadata.creator is not a string");
    out.creator = o.creator;
  }
  for (const [k, f] of [
    ["created_ns", "createdNs"],
    ["modified_ns", "modifiedNs"],
  ] as const) {
    const v = o[k];
    if (v === undefined) continue;
    if (typeof v !== "string" || !/^-?\d{1,20}$/.test(v)) throw bad(`metadata.${k} is not an integer string`);
    out[f] = BigInt(v);
  }
  if (o.labels !== undefined) {
    const l = o.labels;
    if (!l || typeof l !== "object" || Array.isArray(l)) throw bad("metadata.labels is not an object");
    const labels: Record<string, string> = {};
    for (const [k, v] of Object.entries(l)) {
      if (typeof v !== "string") throw bad(`metadata.labels.${k} is not a string`);
      // defineProperty: a label named "__proto__" must stay a label, not replace the prototype.
      Object.defineProperty(labels, k, { value: v, enumerable: true, writable: true, configurable: true });
    }
    out.labels = labels;
  }
  return out;
}

function encodeLimits(l: ResourceLimits): Buffer {
  const b = Buffer.alloc(8 * LIMIT_KEYS.length);
  LIMIT_KEYS.forEach((k, n) => {
    const v = l[k];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) {
      throw new BfcError("EINVAL", "INVALID_ARGUMENT", `limit ${k} must be a non-negative integer, not ${v}`);
    }
    b.writeBigUInt64LE(v === undefined ? UNLIMITED : BigInt(v), n * 8);
  });
  return b;
}

function decodeLimits(p: Buffer): ResourceLimits {
  // Later versions may append fields; the four known ones must be there.
  if (p.length < 8 * LIMIT_KEYS.length) throw bad("limits record is too short");
  const out: ResourceLimits = {};
  LIMIT_KEYS.forEach((k, n) => {
    const v = p.readBigUInt64LE(n * 8);
    if (v === UNLIMITED) return;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`limit ${k} is out of range`);
    out[k] = Number(v);
  });
  return out;
}

function encodePrevious(c: PreviousCommit): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(c.footerEnd), 0);
  b.writeBigUInt64LE(BigInt(c.commit), 8);
  return b;
}

function decodePrevious(p: Buffer): PreviousCommit {
  if (p.length < 16) throw bad("previous-commit record is too short");
  const end = p.readBigUInt64LE(0);
  const commit = p.readBigUInt64LE(8);
  if (end > BigInt(Number.MAX_SAFE_INTEGER) || commit > 0xffffffffn)
    throw bad("previous-commit record is out of range");
  return { footerEnd: Number(end), commit: Number(commit) };
}

/** True when an index blob's tail holds an extension area (it starts with the magic). */
export function hasExtension(area: Buffer): boolean {
  return area.length >= 4 && area.subarray(0, 4).equals(EXTENSION_MAGIC);
}

/**
 * Decodes an extension area. An empty area is an empty extension; bytes that do not start with the
 * magic are left to whoever wrote them (the reference ignores them too) and also decode as empty.
 */
export function decodeExtension(area: Buffer): Extension {
  const ext: Extension = { unknown: [] };
  if (!hasExtension(area)) return ext;
  if (area.length < HEADER) throw bad("truncated header");
  const version = area.readUInt16LE(4);
  if (version !== EXTENSION_VERSION) {
    throw new BfcError(
      "ENOTSUP",
      "UNSUPPORTED",
      `index extension version ${version} is not supported (this reader knows ${EXTENSION_VERSION})`,
      {
        field: "index.extension.version",
      },
    );
  }
  const count = area.readUInt32LE(8);
  let p = HEADER;
  for (let n = 0; n < count; n++) {
    if (p + RECORD_HEADER > area.length) throw bad(`record ${n} header runs past the end`);
    const type = area.readUInt16LE(p);
    const flags = area.readUInt16LE(p + 2);
    const len = area.readUInt32LE(p + 4);
    p += RECORD_HEADER;
    if (len > area.length - p) throw bad(`record ${n} (type ${type}) runs past the end`);
    const payload = area.subarray(p, p + len);
    p += len;
    const seen = (k: keyof Extension): void => {
      if (ext[k] !== undefined) throw bad(`duplicate record type ${type}`);
    };
    switch (type) {
      case RECORD_METADATA:
        seen("metadata");
        ext.metadata = decodeMetadata(payload);
        break;
      case RECORD_LIMITS:
        seen("limits");
        ext.limits = decodeLimits(payload);
        break;
      case RECORD_PREVIOUS_COMMIT:
        seen("previous");
        ext.previous = decodePrevious(payload);
        break;
      case RECORD_ROOT_DIGEST:
        seen("rootDigest");
        if (payload.length !== 32) throw bad("root digest is not 32 bytes");
        ext.rootDigest = Buffer.from(payload);
        break;
      default:
        if (flags & FLAG_CRITICAL) {
          throw new BfcError(
            "ENOTSUP",
            "UNSUPPORTED",
            `index extension record type ${type} is required but not supported`,
            {
              field: "index.extension",
            },
          );
        }
        ext.unknown.push({ type, flags, payload: Buffer.from(payload) });
    }
  }
  if (p !== area.length) throw bad(`${area.length - p} bytes after the last record`);
  return ext;
}

/** Encodes an extension; an extension with nothing in it encodes to no bytes at all. */
export function encodeExtension(ext: Partial<Extension>): Buffer {
  const records: { type: number; flags: number; payload: Buffer }[] = [];
  if (ext.metadata) records.push({ type: RECORD_METADATA, flags: 0, payload: encodeMetadata(ext.metadata) });
  if (ext.limits) records.push({ type: RECORD_LIMITS, flags: 0, payload: encodeLimits(ext.limits) });
  if (ext.previous)
    records.push({ type: RECORD_PREVIOUS_COMMIT, flags: 0, payload: encodePrevious(ext.previous) });
  if (ext.rootDigest) {
    if (ext.rootDigest.length !== 32)
      throw new BfcError("EINVAL", "INVALID_ARGUMENT", "a root digest is 32 bytes");
    records.push({ type: RECORD_ROOT_DIGEST, flags: 0, payload: ext.rootDigest });
  }
  for (const u of ext.unknown ?? []) records.push(u);
  if (records.length === 0) return Buffer.alloc(0);
  let size = HEADER;
  for (const r of records) size += RECORD_HEADER + r.payload.length;
  const out = Buffer.alloc(size);
  EXTENSION_MAGIC.copy(out, 0);
  out.writeUInt16LE(EXTENSION_VERSION, 4);
  out.writeUInt32LE(records.length, 8);
  let p = HEADER;
  for (const r of records) {
    out.writeUInt16LE(r.type, p);
    out.writeUInt16LE(r.flags, p + 2);
    out.writeUInt32LE(r.payload.length, p + 4);
    r.payload.copy(out, p + RECORD_HEADER);
    p += RECORD_HEADER + r.payload.length;
  }
  return out;
}
