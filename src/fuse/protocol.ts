/**
 * The FUSE kernel protocol (Linux `include/uapi/linux/fuse.h`, protocol 7.x): opcodes, flags and the
 * byte layout of the requests read from /dev/fuse and the replies written to it. Pure functions over
 * Buffers, no I/O. All integers are little-endian (the host's order; FUSE is Linux-only and every
 * Linux platform Node runs on is little-endian). 64-bit fields are handled as two 32-bit halves so
 * that no BigInt is made per request; values past 2^53 do not occur in what we send or accept.
 */

export const KERNEL_VERSION = 7;
/** The minor version whose structures are written here; the kernel adapts to an older server. */
export const KERNEL_MINOR = 38;
/** The oldest minor version we accept (FUSE_MAX_PAGES, readdirplus and 64-byte init replies). */
export const MIN_KERNEL_MINOR = 31;
/** The root directory's node id, fixed by the protocol. */
export const ROOT_ID = 1;
/** Largest READ/WRITE asked for: 256 pages (FUSE_MAX_PAGES), also the mount's max_read. */
export const MAX_IO = 1024 * 1024;

export const Op = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SYNCFS: 50,
  TMPFILE: 51,
} as const;

/** FUSE_INIT capability flags (fuse_init_in.flags / fuse_init_out.flags). */
export const Init = {
  ASYNC_READ: 1 << 0,
  ATOMIC_O_TRUNC: 1 << 3,
  BIG_WRITES: 1 << 5,
  AUTO_INVAL_DATA: 1 << 12,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  NO_OPEN_SUPPORT: 1 << 17,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  NO_OPENDIR_SUPPORT: 1 << 24,
} as const;

/** fuse_open_out.open_flags. */
export const FOPEN_DIRECT_IO = 1 << 0;
export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_CACHE_DIR = 1 << 3;

/** fuse_setattr_in.valid bits. */
export const Fattr = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  FH: 1 << 6,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
  CTIME: 1 << 10,
} as const;

/** renameat2 flags carried by RENAME2. */
export const RENAME_NOREPLACE = 1 << 0;
export const RENAME_EXCHANGE = 1 << 1;

export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
export const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 40 + ATTR_SIZE;
export const ATTR_OUT_SIZE = 16 + ATTR_SIZE;
export const INIT_OUT_SIZE = 64;
export const OPEN_OUT_SIZE = 16;
export const WRITE_OUT_SIZE = 8;
export const STATFS_OUT_SIZE = 80;
export const GETXATTR_OUT_SIZE = 8;
/** fuse_dirent without its name. */
export const DIRENT_SIZE = 24;
/** fuse_direntplus (an entry_out, then a dirent) without the name. */
export const DIRENTPLUS_SIZE = ENTRY_OUT_SIZE + DIRENT_SIZE;
/** The kernel refuses reads of /dev/fuse into smaller buffers than this. */
export const MIN_READ_BUFFER = 8192;
/** Bytes in front of a WRITE request's data (in header + fuse_write_in). */
export const WRITE_IN_SIZE = 40;

const TWO32 = 2 ** 32;

/** An unsigned 64-bit field as a number; NaN when it does not fit in 53 bits. */
export function getU64(b: Buffer, o: number): number {
  const hi = b.readUInt32LE(o + 4);
  if (hi >= 1 << 21) return Number.NaN;
  return hi * TWO32 + b.readUInt32LE(o);
}

/** A signed 64-bit field as a number (file times before 1970). */
export function getI64(b: Buffer, o: number): number {
  return b.readInt32LE(o + 4) * TWO32 + b.readUInt32LE(o);
}

/** Writes a safe integer (negative ones in two's complement). */
export function putU64(b: Buffer, o: number, v: number): void {
  b.writeUInt32LE(v >>> 0, o);
  b.writeInt32LE(Math.floor(v / TWO32) | 0, o + 4);
}

// ---------------------------------------------------------------------------------------------
// Requests

/** fuse_in_header, decoded. */
export interface InHeader {
  len: number;
  opcode: number;
  unique: number;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
}

/**
 * Decodes the header of a request of `n` bytes read from /dev/fuse into `into`; throws on a request
 * whose stated length disagrees with what was read (the kernel never sends one).
 */
export function parseInHeader(b: Buffer, n: number, into: InHeader): InHeader {
  if (n < IN_HEADER_SIZE) throw new RangeError(`FUSE request of ${n} bytes is shorter than its header`);
  const len = b.readUInt32LE(0);
  if (len !== n) throw new RangeError(`FUSE request says ${len} bytes but ${n} were read`);
  into.len = len;
  into.opcode = b.readUInt32LE(4);
  into.unique = getU64(b, 8);
  into.nodeid = getU64(b, 16);
  into.uid = b.readUInt32LE(24);
  into.gid = b.readUInt32LE(28);
  into.pid = b.readUInt32LE(32);
  return into;
}

/** The pid (thread id) of the process a request is made for; 0 for the kernel's own (FORGET). */
export function requestPid(b: Buffer): number {
  return b.readUInt32LE(32);
}

export function newInHeader(): InHeader {
  return { len: 0, opcode: 0, unique: 0, nodeid: 0, uid: 0, gid: 0, pid: 0 };
}

/**
 * A NUL-terminated name at `start` (before `end`). Throws for a missing terminator or bytes that are
 * not UTF-8 (the VFS names everything with strings; such a name could not round-trip).
 */
export function getName(b: Buffer, start: number, end: number): { name: string; next: number } {
  const nul = b.indexOf(0, start);
  if (nul < 0 || nul >= end) throw new RangeError("FUSE request name is not NUL-terminated");
  const name = b.toString("utf8", start, nul);
  if (Buffer.byteLength(name) !== nul - start) throw new RangeError("FUSE request name is not UTF-8");
  return { name, next: nul + 1 };
}

export interface InitIn {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
}

export function parseInit(b: Buffer): InitIn {
  return {
    major: b.readUInt32LE(40),
    minor: b.readUInt32LE(44),
    maxReadahead: b.readUInt32LE(48),
    flags: b.readUInt32LE(52),
  };
}

/** fuse_read_in (READ, READDIR, READDIRPLUS): handle, offset, size. */
export interface ReadIn {
  fh: number;
  offset: number;
  size: number;
}

export function parseRead(b: Buffer): ReadIn {
  return { fh: getU64(b, 40), offset: getU64(b, 48), size: b.readUInt32LE(56) };
}

/** fuse_write_in; the data follows at WRITE_IN_SIZE + 40 (after the whole struct). */
export interface WriteIn {
  fh: number;
  offset: number;
  size: number;
  /** Where the data starts in the request. */
  data: number;
}

export function parseWrite(b: Buffer): WriteIn {
  return { fh: getU64(b, 40), offset: getU64(b, 48), size: b.readUInt32LE(56), data: 80 };
}

/** fuse_setattr_in, the fields we act on. */
export interface SetattrIn {
  valid: number;
  fh: number;
  size: number;
  atimeSec: number;
  mtimeSec: number;
  atimeNsec: number;
  mtimeNsec: number;
  mode: number;
  uid: number;
  gid: number;
}

export function parseSetattr(b: Buffer): SetattrIn {
  return {
    valid: b.readUInt32LE(40),
    fh: getU64(b, 48),
    size: getU64(b, 56),
    atimeSec: getI64(b, 72),
    mtimeSec: getI64(b, 80),
    atimeNsec: b.readUInt32LE(96),
    mtimeNsec: b.readUInt32LE(100),
    mode: b.readUInt32LE(108),
    uid: b.readUInt32LE(116),
    gid: b.readUInt32LE(120),
  };
}

/** Each (nodeid, nlookup) of a FORGET or BATCH_FORGET request. */
export function forEachForget(
  b: Buffer,
  opcode: number,
  nodeid: number,
  fn: (id: number, n: number) => void,
): void {
  if (opcode === Op.FORGET) {
    fn(nodeid, getU64(b, 40));
    return;
  }
  const count = b.readUInt32LE(40);
  const len = b.readUInt32LE(0);
  for (let k = 0, o = 48; k < count && o + 16 <= len; k++, o += 16) fn(getU64(b, o), getU64(b, o + 8));
}

// ---------------------------------------------------------------------------------------------
// Replies. Every field of a reply is 4-byte aligned, so replies are built in an `Out`: a buffer with
// a Uint32Array view over the same memory (a typed-array store costs far less than a Buffer write
// method, and a READDIRPLUS reply holds thousands of fields). Each writer fills from byte offset `o`
// (a multiple of 4) and returns the bytes written; the caller puts the out header in front.

export interface Out {
  b: Buffer;
  w: Uint32Array;
}

export function newOut(size: number): Out {
  const ab = new ArrayBuffer((size + 7) & ~7);
  return { b: Buffer.from(ab), w: new Uint32Array(ab) };
}

/** A safe integer (negative ones in two's complement) as two words at byte offset `o`. */
function u64(w: Uint32Array, o: number, v: number): void {
  const i = o >>> 2;
  w[i] = v >>> 0;
  w[i + 1] = Math.floor(v / TWO32);
}

export function writeOutHeader(r: Out, total: number, error: number, unique: number): void {
  r.w[0] = total;
  r.w[1] = error;
  u64(r.w, 8, unique);
}

/** What a reply needs to describe a node (fuse_attr). Times are nanoseconds since the epoch. */
export interface Attr {
  ino: number;
  size: number;
  blocks: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  blksize: number;
}

const NS = 1_000_000_000n;

/** A time as seconds (64-bit) at `secAt` and nanoseconds (0–999,999,999) at `nsecAt`. */
function putTime(w: Uint32Array, secAt: number, nsecAt: number, ns: bigint): void {
  let sec = ns / NS;
  let rem = ns - sec * NS;
  if (rem < 0n) {
    rem += NS;
    sec -= 1n;
  }
  u64(w, secAt, Number(sec));
  w[nsecAt >>> 2] = Number(rem);
}

export function writeAttr(r: Out, o: number, a: Attr): number {
  const w = r.w;
  const i = o >>> 2;
  u64(w, o, a.ino);
  u64(w, o + 8, a.size);
  u64(w, o + 16, a.blocks);
  putTime(w, o + 24, o + 48, a.atimeNs);
  if (a.ctimeNs === a.mtimeNs && a.atimeNs === a.mtimeNs) {
    w[i + 8] = w[i + 6] as number;
    w[i + 9] = w[i + 7] as number;
    w[i + 10] = w[i + 6] as number;
    w[i + 11] = w[i + 7] as number;
    w[i + 13] = w[i + 12] as number;
    w[i + 14] = w[i + 12] as number;
  } else {
    putTime(w, o + 32, o + 52, a.mtimeNs);
    putTime(w, o + 40, o + 56, a.ctimeNs);
  }
  w[i + 15] = a.mode;
  w[i + 16] = a.nlink;
  w[i + 17] = a.uid;
  w[i + 18] = a.gid;
  w[i + 19] = a.rdev;
  w[i + 20] = a.blksize;
  w[i + 21] = 0;
  return ATTR_SIZE;
}

/** Seconds split for the *_valid fields. */
function putValid(w: Uint32Array, secAt: number, nsecAt: number, seconds: number): void {
  const whole = Math.floor(seconds);
  u64(w, secAt, whole);
  w[nsecAt >>> 2] = Math.round((seconds - whole) * 1e9);
}

/**
 * fuse_entry_out. `nodeid` 0 with an `entryValid` is a negative entry (the kernel remembers that
 * the name does not exist); then `attr` is ignored.
 */
export function writeEntryOut(
  r: Out,
  o: number,
  nodeid: number,
  entryValid: number,
  attrValid: number,
  attr: Attr | undefined,
): number {
  const w = r.w;
  u64(w, o, nodeid);
  u64(w, o + 8, 0);
  putValid(w, o + 16, o + 32, entryValid);
  putValid(w, o + 24, o + 36, attrValid);
  if (attr) writeAttr(r, o + 40, attr);
  else w.fill(0, (o + 40) >>> 2, (o + ENTRY_OUT_SIZE) >>> 2);
  return ENTRY_OUT_SIZE;
}

export function writeAttrOut(r: Out, o: number, attrValid: number, attr: Attr): number {
  putValid(r.w, o, o + 8, attrValid);
  r.w[(o + 12) >>> 2] = 0;
  writeAttr(r, o + 16, attr);
  return ATTR_OUT_SIZE;
}

export interface InitOut {
  minor: number;
  maxReadahead: number;
  flags: number;
  maxBackground: number;
  congestionThreshold: number;
  maxWrite: number;
  maxPages: number;
}

export function writeInitOut(r: Out, o: number, x: InitOut): number {
  const b = r.b;
  b.fill(0, o, o + INIT_OUT_SIZE);
  b.writeUInt32LE(KERNEL_VERSION, o);
  b.writeUInt32LE(x.minor, o + 4);
  b.writeUInt32LE(x.maxReadahead, o + 8);
  b.writeUInt32LE(x.flags >>> 0, o + 12);
  b.writeUInt16LE(x.maxBackground, o + 16);
  b.writeUInt16LE(x.congestionThreshold, o + 18);
  b.writeUInt32LE(x.maxWrite, o + 20);
  b.writeUInt32LE(1, o + 24); // time_gran: nanoseconds
  b.writeUInt16LE(x.maxPages, o + 28);
  return INIT_OUT_SIZE;
}

export function writeOpenOut(r: Out, o: number, fh: number, openFlags: number): number {
  u64(r.w, o, fh);
  r.w[(o + 8) >>> 2] = openFlags;
  r.w[(o + 12) >>> 2] = 0;
  return OPEN_OUT_SIZE;
}

export function writeWriteOut(r: Out, o: number, size: number): number {
  r.w[o >>> 2] = size;
  r.w[(o + 4) >>> 2] = 0;
  return WRITE_OUT_SIZE;
}

export interface KStatfs {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

export function writeStatfsOut(r: Out, o: number, s: KStatfs): number {
  const w = r.w;
  w.fill(0, o >>> 2, (o + STATFS_OUT_SIZE) >>> 2);
  u64(w, o, s.blocks);
  u64(w, o + 8, s.bfree);
  u64(w, o + 16, s.bavail);
  u64(w, o + 24, s.files);
  u64(w, o + 32, s.ffree);
  w[(o + 40) >>> 2] = s.bsize;
  w[(o + 44) >>> 2] = s.namelen;
  w[(o + 48) >>> 2] = s.frsize;
  return STATFS_OUT_SIZE;
}

/** The d_type of a st_mode (DT_REG, DT_DIR, … are S_IFMT >> 12). */
export function direntType(mode: number): number {
  return (mode >>> 12) & 15;
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** Bytes a fuse_dirent (plus: fuse_direntplus) with a name of `nameLen` bytes takes. */
export function direntSize(nameLen: number, plus: boolean): number {
  return align8((plus ? DIRENTPLUS_SIZE : DIRENT_SIZE) + nameLen);
}

/**
 * A fuse_dirent at `o` for a name of `nameLen` UTF-8 bytes: `off` is the offset the next READDIR
 * should start from to continue after this entry. Returns the aligned size (padding zeroed).
 */
export function writeDirent(
  r: Out,
  o: number,
  ino: number,
  off: number,
  name: string,
  nameLen: number,
  type: number,
): number {
  const size = direntHead(r, o, ino, off, nameLen, type);
  r.b.write(name, o + DIRENT_SIZE, nameLen, "utf8");
  return size;
}

/** writeDirent for a name given as bytes: src[s, e). */
export function writeDirentBytes(
  r: Out,
  o: number,
  ino: number,
  off: number,
  src: Uint8Array,
  s: number,
  e: number,
  type: number,
): number {
  const nameLen = e - s;
  const size = direntHead(r, o, ino, off, nameLen, type);
  // Names are short: a byte loop beats a native copy's call overhead.
  const b = r.b;
  for (let k = 0, t = o + DIRENT_SIZE; k < nameLen; k++) b[t + k] = src[s + k] as number;
  return size;
}

/** A fuse_dirent's fixed part, with the padding after its name zeroed; returns the record's size. */
function direntHead(r: Out, o: number, ino: number, off: number, nameLen: number, type: number): number {
  const size = align8(DIRENT_SIZE + nameLen);
  const w = r.w;
  u64(w, o, ino);
  u64(w, o + 8, off);
  w[(o + 16) >>> 2] = nameLen;
  w[(o + 20) >>> 2] = type;
  // Zero the record's last word pair first: the name overwrites what it covers, the rest is padding.
  w[(o + size - 8) >>> 2] = 0;
  w[(o + size - 4) >>> 2] = 0;
  return size;
}
