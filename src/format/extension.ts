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
export const RECORD_COMMIT = 5;
export const RECORD_ENTRY_ATTRS = 6;
export const RECORD_SIGNATURE = 7;
export const RECORD_HARDLINKS = 8;
export const RECORD_SPECIAL = 9;
export const RECORD_OBJECT_NAMES = 10;

/**
 * A file system node BFC v1 has no entry type for (device, fifo, socket), kept in the extension
 * area only: the reference never sees it.
 */
export interface SpecialEntry {
  path: string;
  /** Full st_mode: S_IFCHR, S_IFBLK, S_IFIFO or S_IFSOCK plus permission bits. */
  mode: number;
  rdevMajor: number;
  rdevMinor: number;
  mtimeNs: bigint;
  attrs?: EntryAttrs;
}

/** Index entry `entry` is a hard link to index entry `target` (a regular file). */
export interface Hardlink {
  entry: number;
  target: number;
}

/**
 * Index entry `entry` points at an object written under another path, `name` (a file renamed by a
 * commit keeps its object): readers check the object header, and decrypt, under that name.
 */
export interface ObjectName {
  entry: number;
  /** The path bytes in the object header. */
  name: Buffer;
}

/** About the commit that wrote this index (docs/format.md §12). */
export interface CommitRecord {
  /** Unix nanoseconds when the commit was written. */
  timeNs: bigint;
  message?: string;
}

/** What BFC v1's index entry has no field for. Absent fields are unknown, not zero. */
export interface EntryAttrs {
  uid?: number;
  gid?: number;
  atimeNs?: bigint;
  ctimeNs?: bigint;
  birthtimeNs?: bigint;
  /** Extended attributes by full name ("user.x", "security.selinux"). */
  xattrs?: Map<string, Buffer>;
}

/** An Ed25519 signature over the root digest (docs/format.md §13). */
export interface SignatureRecord {
  publicKey: Buffer;
  digest: Buffer;
  signature: Buffer;
}

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
  commitInfo?: CommitRecord;
  /**
   * Per-entry attributes keyed by index position, still encoded: decode with
   * `decodeEntryAttrs` (a large container's table is only parsed when someone asks).
   */
  entryAttrs?: Buffer;
  signature?: SignatureRecord;
  hardlinks?: Hardlink[];
  special?: SpecialEntry[];
  objectNames?: ObjectName[];
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

function encodeCommit(c: CommitRecord): Buffer {
  const obj: Record<string, unknown> = { time_ns: c.timeNs.toString() };
  if (c.message !== undefined) obj.message = c.message;
  return Buffer.from(JSON.stringify(obj), "utf8");
}

function decodeCommit(p: Buffer): CommitRecord {
  let obj: unknown;
  try {
    obj = JSON.parse(p.toString("utf8"));
  } catch {
    throw bad("commit record is not JSON");
  }
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) throw bad("commit record is not an object");
  const o = obj as Record<string, unknown>;
  if (typeof o.time_ns !== "string" || !/^-?\d{1,20}$/.test(o.time_ns))
    throw bad("commit.time_ns is invalid");
  const out: CommitRecord = { timeNs: BigInt(o.time_ns) };
  if (o.message !== undefined) {
    if (typeof o.message !== "string") throw bad("commit.message is not a string");
    out.message = o.message;
  }
  return out;
}

const SIGNATURE_ED25519 = 1;

function encodeSignature(sig: SignatureRecord): Buffer {
  if (sig.publicKey.length !== 32 || sig.digest.length !== 32 || sig.signature.length !== 64) {
    throw new BfcError(
      "EINVAL",
      "INVALID_ARGUMENT",
      "an Ed25519 signature record needs a 32-byte key and digest and a 64-byte signature",
    );
  }
  return Buffer.concat([Buffer.from([SIGNATURE_ED25519, 0, 0, 0]), sig.publicKey, sig.digest, sig.signature]);
}

function decodeSignature(p: Buffer): SignatureRecord {
  if (p.length !== 4 + 32 + 32 + 64) throw bad("signature record has the wrong size");
  if (p[0] !== SIGNATURE_ED25519) {
    throw new BfcError("ENOTSUP", "UNSUPPORTED", `signature algorithm ${p[0]} is not supported`, {
      field: "index.extension.signature",
    });
  }
  return {
    publicKey: Buffer.from(p.subarray(4, 36)),
    digest: Buffer.from(p.subarray(36, 68)),
    signature: Buffer.from(p.subarray(68, 132)),
  };
}

const ATTR_UID = 1;
const ATTR_GID = 2;
const ATTR_ATIME = 4;
const ATTR_CTIME = 8;
const ATTR_BIRTHTIME = 16;
const ATTR_XATTRS = 32;

/**
 * Per-entry attributes: u32 count, then per entry u32 index (strictly increasing), u32 length of
 * what follows, u32 field mask, the present fields in mask-bit order. Entries are length-prefixed
 * so a reader skips fields (mask bits) a later version adds.
 */
export function encodeEntryAttrs(list: { index: number; attrs: EntryAttrs }[]): Buffer {
  // Sized first, then written into one buffer: a large import records attributes for every entry.
  let size = 4;
  let last = -1;
  for (const { index, attrs } of list) {
    if (!Number.isInteger(index) || index <= last || index > 0xffffffff) {
      throw new BfcError("EINVAL", "INVALID_ARGUMENT", "entry attributes must be in increasing index order");
    }
    last = index;
    size += entryAttrsRecordSize(attrs);
  }
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32LE(list.length, 0);
  let q = 4;
  for (const { index, attrs } of list) q = writeEntryAttrsRecord(out, q, index, attrs);
  return out;
}

/** Bytes of one entry's record in the entry-attributes table (see encodeEntryAttrs). */
export function entryAttrsRecordSize(attrs: EntryAttrs): number {
  let size = 12;
  if (attrs.uid !== undefined) size += 4;
  if (attrs.gid !== undefined) size += 4;
  if (attrs.atimeNs !== undefined) size += 8;
  if (attrs.ctimeNs !== undefined) size += 8;
  if (attrs.birthtimeNs !== undefined) size += 8;
  if (attrs.xattrs !== undefined) {
    size += 4;
    for (const [name, value] of attrs.xattrs) size += 1 + xattrNameLength(name) + 4 + value.length;
  }
  return size;
}

function xattrNameLength(name: string): number {
  const n = Buffer.byteLength(name, "utf8");
  if (n === 0 || n > 255 || name.includes("\0")) {
    throw new BfcError("EINVAL", "INVALID_ARGUMENT", `invalid extended attribute name '${name}'`);
  }
  return n;
}

/**
 * Writes one entry's record of the entry-attributes table at `q` (entryAttrsRecordSize bytes);
 * returns the offset after it.
 */
export function writeEntryAttrsRecord(out: Buffer, q: number, index: number, attrs: EntryAttrs): number {
  const start = q;
  const u32 = (v: number, what: string) => {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw new BfcError("EINVAL", "INVALID_ARGUMENT", `${what} must be a 32-bit unsigned integer, not ${v}`);
    }
    q = out.writeUInt32LE(v, q);
  };
  q += 12;
  let mask = 0;
  if (attrs.uid !== undefined) {
    mask |= ATTR_UID;
    u32(attrs.uid, "uid");
  }
  if (attrs.gid !== undefined) {
    mask |= ATTR_GID;
    u32(attrs.gid, "gid");
  }
  if (attrs.atimeNs !== undefined) {
    mask |= ATTR_ATIME;
    q = out.writeBigInt64LE(attrs.atimeNs, q);
  }
  if (attrs.ctimeNs !== undefined) {
    mask |= ATTR_CTIME;
    q = out.writeBigInt64LE(attrs.ctimeNs, q);
  }
  if (attrs.birthtimeNs !== undefined) {
    mask |= ATTR_BIRTHTIME;
    q = out.writeBigInt64LE(attrs.birthtimeNs, q);
  }
  if (attrs.xattrs !== undefined) {
    mask |= ATTR_XATTRS;
    u32(attrs.xattrs.size, "xattr count");
    for (const [name, value] of attrs.xattrs) {
      out[q] = xattrNameLength(name);
      q += 1 + out.write(name, q + 1, "utf8");
      u32(value.length, "xattr value length");
      q += value.copy(out, q);
    }
  }
  out.writeUInt32LE(index, start);
  out.writeUInt32LE(q - start - 8, start + 4);
  out.writeUInt32LE(mask, start + 8);
  return q;
}

/** Decodes the per-entry attribute table; `entries` bounds the index positions it may name. */
export function decodeEntryAttrs(p: Buffer, entries: number): Map<number, EntryAttrs> {
  const out = new Map<number, EntryAttrs>();
  if (p.length < 4) throw bad("entry attributes: truncated");
  const count = p.readUInt32LE(0);
  if (count > entries || count > (p.length - 4) / 12) throw bad("entry attributes: count out of range");
  let at = 4;
  let last = -1;
  for (let n = 0; n < count; n++) {
    if (at + 8 > p.length) throw bad("entry attributes: truncated");
    const index = p.readUInt32LE(at);
    const len = p.readUInt32LE(at + 4);
    at += 8;
    if (index <= last || index >= entries)
      throw bad(`entry attributes: entry ${index} out of order or range`);
    last = index;
    if (len < 4 || len > p.length - at) throw bad("entry attributes: record runs past the end");
    const end = at + len;
    const mask = p.readUInt32LE(at);
    let q = at + 4;
    const need = (k: number) => {
      if (q + k > end) throw bad(`entry attributes: entry ${index} is truncated`);
    };
    const attrs: EntryAttrs = {};
    if (mask & ATTR_UID) {
      need(4);
      attrs.uid = p.readUInt32LE(q);
      q += 4;
    }
    if (mask & ATTR_GID) {
      need(4);
      attrs.gid = p.readUInt32LE(q);
      q += 4;
    }
    for (const [bit, key] of [
      [ATTR_ATIME, "atimeNs"],
      [ATTR_CTIME, "ctimeNs"],
      [ATTR_BIRTHTIME, "birthtimeNs"],
    ] as const) {
      if (mask & bit) {
        need(8);
        attrs[key] = p.readBigInt64LE(q);
        q += 8;
      }
    }
    if (mask & ATTR_XATTRS) {
      need(4);
      const xn = p.readUInt32LE(q);
      q += 4;
      if (xn > (end - q) / 6) throw bad(`entry attributes: entry ${index} claims too many xattrs`);
      const x = new Map<string, Buffer>();
      for (let k = 0; k < xn; k++) {
        need(1);
        const nl = p[q];
        q += 1;
        need(nl + 4);
        const name = p.toString("utf8", q, q + nl);
        q += nl;
        const vl = p.readUInt32LE(q);
        q += 4;
        need(vl);
        if (nl === 0 || x.has(name)) throw bad(`entry attributes: entry ${index} has a bad xattr name`);
        x.set(name, Buffer.from(p.subarray(q, q + vl)));
        q += vl;
      }
      attrs.xattrs = x;
    }
    out.set(index, attrs);
    at = end;
  }
  if (at !== p.length) throw bad("entry attributes: bytes after the last entry");
  return out;
}

function encodeHardlinks(links: Hardlink[]): Buffer {
  const b = Buffer.alloc(4 + 8 * links.length);
  b.writeUInt32LE(links.length, 0);
  let last = -1;
  links.forEach((l, k) => {
    if (l.entry <= last || l.entry === l.target) {
      throw new BfcError(
        "EINVAL",
        "INVALID_ARGUMENT",
        "hard links must be in increasing entry order and not self-links",
      );
    }
    last = l.entry;
    b.writeUInt32LE(l.entry, 4 + 8 * k);
    b.writeUInt32LE(l.target, 8 + 8 * k);
  });
  return b;
}

function decodeHardlinks(p: Buffer): Hardlink[] {
  if (p.length < 4) throw bad("hard links: truncated");
  const n = p.readUInt32LE(0);
  if (p.length !== 4 + 8 * n) throw bad("hard links: wrong size");
  const out: Hardlink[] = [];
  let last = -1;
  for (let k = 0; k < n; k++) {
    const entry = p.readUInt32LE(4 + 8 * k);
    const target = p.readUInt32LE(8 + 8 * k);
    if (entry <= last || entry === target) throw bad("hard links: out of order or self-link");
    last = entry;
    out.push({ entry, target });
  }
  return out;
}

/** Object names: u32 count, then per entry u32 index position, u16 name length, the name's bytes. */
function encodeObjectNames(list: ObjectName[]): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(4);
  head.writeUInt32LE(list.length, 0);
  parts.push(head);
  let last = -1;
  for (const { entry, name } of list) {
    if (!Number.isInteger(entry) || entry <= last || entry > 0xffffffff) {
      throw new BfcError("EINVAL", "INVALID_ARGUMENT", "object names must be in increasing entry order");
    }
    if (name.length === 0 || name.length > 0xffff || name.includes(0)) {
      throw new BfcError("EINVAL", "INVALID_ARGUMENT", `bad object name for entry ${entry}`);
    }
    last = entry;
    const h = Buffer.alloc(6);
    h.writeUInt32LE(entry, 0);
    h.writeUInt16LE(name.length, 4);
    parts.push(h, name);
  }
  return Buffer.concat(parts);
}

function decodeObjectNames(p: Buffer): ObjectName[] {
  if (p.length < 4) throw bad("object names: truncated");
  const n = p.readUInt32LE(0);
  // Each entry takes at least 7 bytes: a count beyond that cannot be honest.
  if (n > (p.length - 4) / 7) throw bad("object names: count out of range");
  const out: ObjectName[] = [];
  let at = 4;
  let last = -1;
  for (let k = 0; k < n; k++) {
    if (at + 6 > p.length) throw bad("object names: truncated");
    const entry = p.readUInt32LE(at);
    const len = p.readUInt16LE(at + 4);
    at += 6;
    if (entry <= last) throw bad("object names: entries out of order");
    if (len === 0 || len > p.length - at) throw bad(`object names: entry ${entry} has a bad name length`);
    const name = Buffer.from(p.subarray(at, at + len));
    if (name.includes(0)) throw bad(`object names: entry ${entry}'s name contains NUL`);
    at += len;
    last = entry;
    out.push({ entry, name });
  }
  if (at !== p.length) throw bad("object names: bytes after the last entry");
  return out;
}

/**
 * Special entries: u32 count, then each as u32 length of the rest, u16 path length, path, u32 mode,
 * u32 rdev major, u32 rdev minor, i64 mtime ns, then the entry-attributes form (u32 mask + fields).
 */
function encodeSpecial(list: SpecialEntry[]): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(4);
  head.writeUInt32LE(list.length, 0);
  parts.push(head);
  for (const e of list) {
    const pb = Buffer.from(e.path, "utf8");
    if (pb.length === 0 || pb.length > 0xffff)
      throw new BfcError("EINVAL", "INVALID_ARGUMENT", `bad special entry path '${e.path}'`);
    const attrs = encodeEntryAttrs([{ index: 0, attrs: e.attrs ?? {} }]).subarray(4 + 8);
    const fixed = Buffer.alloc(2 + pb.length + 4 + 4 + 4 + 8);
    fixed.writeUInt16LE(pb.length, 0);
    pb.copy(fixed, 2);
    let q = 2 + pb.length;
    fixed.writeUInt32LE(e.mode >>> 0, q);
    fixed.writeUInt32LE(e.rdevMajor >>> 0, q + 4);
    fixed.writeUInt32LE(e.rdevMinor >>> 0, q + 8);
    fixed.writeBigInt64LE(e.mtimeNs, q + 12);
    q += 20;
    const len = Buffer.alloc(4);
    len.writeUInt32LE(fixed.length + attrs.length, 0);
    parts.push(len, fixed, attrs);
  }
  return Buffer.concat(parts);
}

function decodeSpecial(p: Buffer): SpecialEntry[] {
  if (p.length < 4) throw bad("special entries: truncated");
  const n = p.readUInt32LE(0);
  if (n > (p.length - 4) / 26) throw bad("special entries: count out of range");
  const out: SpecialEntry[] = [];
  let at = 4;
  for (let k = 0; k < n; k++) {
    if (at + 4 > p.length) throw bad("special entries: truncated");
    const len = p.readUInt32LE(at);
    at += 4;
    if (len < 26 || len > p.length - at) throw bad("special entries: entry runs past the end");
    const e = p.subarray(at, at + len);
    const pl = e.readUInt16LE(0);
    if (pl === 0 || 2 + pl + 22 > e.length) throw bad("special entries: bad path length");
    const path = e.toString("utf8", 2, 2 + pl);
    let q = 2 + pl;
    const mode = e.readUInt32LE(q);
    const rdevMajor = e.readUInt32LE(q + 4);
    const rdevMinor = e.readUInt32LE(q + 8);
    const mtimeNs = e.readBigInt64LE(q + 12);
    q += 20;
    const rest = e.subarray(q);
    // Reuse the entry-attributes decoder on a one-entry table.
    const table = Buffer.alloc(12);
    table.writeUInt32LE(1, 0);
    table.writeUInt32LE(0, 4);
    table.writeUInt32LE(rest.length, 8);
    const attrs = decodeEntryAttrs(Buffer.concat([table, rest]), 1).get(0);
    out.push({
      path,
      mode,
      rdevMajor,
      rdevMinor,
      mtimeNs,
      attrs: attrs && Object.keys(attrs).length ? attrs : undefined,
    });
    at += len;
  }
  if (at !== p.length) throw bad("special entries: bytes after the last entry");
  return out;
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
      case RECORD_COMMIT:
        seen("commitInfo");
        ext.commitInfo = decodeCommit(payload);
        break;
      case RECORD_ENTRY_ATTRS:
        seen("entryAttrs");
        ext.entryAttrs = Buffer.from(payload);
        break;
      case RECORD_SIGNATURE:
        seen("signature");
        ext.signature = decodeSignature(payload);
        break;
      case RECORD_HARDLINKS:
        seen("hardlinks");
        ext.hardlinks = decodeHardlinks(payload);
        break;
      case RECORD_SPECIAL:
        seen("special");
        ext.special = decodeSpecial(payload);
        break;
      case RECORD_OBJECT_NAMES:
        seen("objectNames");
        ext.objectNames = decodeObjectNames(payload);
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
  if (ext.commitInfo) records.push({ type: RECORD_COMMIT, flags: 0, payload: encodeCommit(ext.commitInfo) });
  if (ext.entryAttrs) records.push({ type: RECORD_ENTRY_ATTRS, flags: 0, payload: ext.entryAttrs });
  if (ext.signature)
    records.push({ type: RECORD_SIGNATURE, flags: 0, payload: encodeSignature(ext.signature) });
  if (ext.hardlinks?.length)
    records.push({ type: RECORD_HARDLINKS, flags: 0, payload: encodeHardlinks(ext.hardlinks) });
  if (ext.special?.length)
    records.push({ type: RECORD_SPECIAL, flags: 0, payload: encodeSpecial(ext.special) });
  if (ext.objectNames?.length)
    records.push({
      type: RECORD_OBJECT_NAMES,
      flags: FLAG_CRITICAL,
      payload: encodeObjectNames(ext.objectNames),
    });
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
