import fs from "node:fs";
import { Readable } from "node:stream";
import {
  openSync as aeadOpenSync,
  createCtrDecryptor,
  createDecryptor,
  decipherInPlace,
  openInPlace,
} from "../codec/aead.ts";
import { lazyZlib } from "../codec/builtins.ts";
import { crc32c } from "../codec/crc32c.ts";
import {
  createZstdDecoder,
  ZstdStreamDecoder,
  zstdDecompressInto,
  zstdDecompressSync,
} from "../codec/zstd.ts";
import { ZstdThreadDecoder } from "../codec/zstd-thread.ts";
import { BfcError, corrupt, fromSystemError } from "../errors.ts";
import {
  AEAD_OVERHEAD,
  COMP_ZSTD,
  FOOTER_SIZE,
  HEADER_SIZE,
  NONCE_SIZE,
  OBJ_DIR,
  OBJ_FILE,
  OBJ_SYMLINK,
  OBJECT_HEADER_SIZE,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  TAG_SIZE,
} from "../format/constants.ts";
import {
  decodeEntryAttrs,
  decodeExtension,
  type EntryAttrs,
  type Extension,
  type SpecialEntry,
} from "../format/extension.ts";
import type { Footer } from "../format/footer.ts";
import { type DecodedHeader, decodeHeader, hasPasswordSalt } from "../format/header.ts";
import { type EntryType, IndexTable, type SharedIndex, typeOfMode } from "../format/index-table.ts";
import { decodeObjectHeader, objectPrefixSize } from "../format/object-header.ts";
import { normalizeLookup } from "../format/path.ts";
import {
  type CommitInfo,
  type CommitSlot,
  commitNumber,
  findCommit,
  findCommitBefore,
  hasFooterTags,
  hex8,
  loadCommitAt,
  readFully,
  walkCommits,
} from "./commits.ts";
import { ContentCache } from "./content-cache.ts";
import { type Credentials, KeyResolver } from "./keys.ts";
import { RecentDecodes } from "./recent-decodes.ts";
import type { SpillStore } from "./spill.ts";

/** What the library reports about one entry. */
export interface Entry {
  /** Canonical path inside the container; "" is the root. */
  path: string;
  type: EntryType;
  /** Full mode including the file-type bits. */
  mode: number;
  /** Original content length (symlink: target length; directory: 0). */
  size: number;
  mtimeNs: bigint;
  mtimeMs: number;
  compression: "none" | "zstd";
  encrypted: boolean;
  crc32c: number;
  /** Offset and size of the whole object (header, name, padding, payload). */
  objectOffset: number;
  objectSize: number;
  /** Bytes of payload actually stored for the content. */
  storedSize: number;
  /** Position in the index, or -1 for a directory that exists only as a parent of other entries. */
  index: number;
}

export interface ReaderOptions extends Credentials {
  /**
   * Bytes kept for repeated random reads (default 64 MiB): decoded contents of compressed or
   * encrypted files, and blocks of the container read for small reads of stored files.
   */
  cacheBytes?: number;
  /**
   * Skip the first-read verification of each entry's object header and checksum. Off by default:
   * without it no byte of an entry is returned before the whole entry has been checked once.
   */
  trustContent?: boolean;
  /** Open this commit (1 = the one that created the container) instead of the latest. */
  commit?: number;
  /**
   * When the file does not end in a footer (a commit was interrupted), open the last complete
   * commit before the torn tail (default). `false` fails with TRUNCATED instead.
   */
  recover?: boolean;
  /**
   * Decoded copies of large compressed entries, made during their verification pass, so random
   * reads of them are positioned reads (see spill.ts). Readers of one container, in one thread or
   * several, may share a store.
   */
  spill?: SpillStore;
  /**
   * An open descriptor of the container to read through instead of opening `path` (left open on
   * close). Readers in several threads sharing one descriptor share the kernel's readahead on it.
   */
  fd?: number;
  /**
   * The state another Reader of the same container in this process shares (Reader.share): its
   * commit's footer and parsed index, attached instead of read, checked and parsed again. The
   * header is still read and checked, and the file must still have the size it had then.
   */
  shared?: ReaderShare;
}

/** What Reader.share hands to Readers in other threads (structured-cloneable). */
export interface ReaderShare {
  fileSize: number;
  end: number;
  tipEnd: number;
  tornTail: number;
  footer: Footer;
  index: SharedIndex;
}

/** Where an entry's payload lies and how it is encoded. */
interface Location {
  i: number;
  path: string;
  aad: Buffer;
  comp: number;
  enc: number;
  size: number;
  crc: number;
  payloadOffset: number;
  payloadSize: number;
}

const CHUNK = 1024 * 1024;
/** Entries up to this size are decoded whole and cached; larger ones stream. */
const WHOLE_DECODE_LIMIT = 8 * 1024 * 1024;
/** Sync reads at least this large of part of a compressed entry keep its contents in `recent`. */
const PIECE_READ = 64 * 1024;
/** Entries `recent` keeps: one per stream read in pieces at the same time. */
const RECENT_DECODES = 4;
/** Decoding cursors kept per reader for random access into large compressed entries. */
const MAX_CURSORS = 4;
const MAX_SYMLINK_TARGET = 64 * 1024;
/** Largest run of back-to-back objects readFilesSync reads at once. */
const RUN_SPAN = 8 * 1024 * 1024;
/**
 * Reads shorter than this of stored files that fit the cache are served from cached blocks of
 * the container this large: a pread costs several times a copy out of memory.
 */
const BLOCK_SIZE = 64 * 1024;

/** A compressed entry being read front to back, kept so sequential positioned reads stay O(n). */
interface Cursor {
  i: number;
  pos: number;
  pending: Buffer;
  iter: AsyncIterator<Buffer>;
}

let syncBuffer: Buffer | undefined;

/**
 * One read buffer for the synchronous block paths (nothing can interleave with them). Blocks kept
 * in the cache are copied out of it: freshly allocated pages that read() fills were measured to
 * cost several times more on their first later access than pages filled by a copy.
 */
function syncScratch(): Buffer {
  syncBuffer ??= Buffer.allocUnsafe(CHUNK);
  return syncBuffer;
}

/** Each piece decrypted where it lies (the pieces are the reader's own buffers). */
async function* deciphered(
  src: AsyncIterable<Buffer>,
  decipher: { update(b: Uint8Array): Buffer },
): AsyncGenerator<Buffer> {
  for await (const c of src) yield decipherInPlace(decipher, c);
}

async function* copies(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  for await (const c of src) yield Buffer.from(c);
}

/** Running size and checksum of an entry's decoded bytes; more bytes than the entry holds fail at once. */
class ContentCheck {
  produced = 0;
  crc = 0;
  private readonly loc: Location;

  constructor(loc: Location) {
    this.loc = loc;
  }

  take(piece: Buffer): Buffer {
    this.produced += piece.length;
    if (this.produced > this.loc.size) {
      throw corrupt("SIZE_MISMATCH", `'${this.loc.path}': decodes to more than ${this.loc.size} bytes`, {
        path: this.loc.path,
      });
    }
    this.crc = crc32c(piece, this.crc);
    return piece;
  }
}

/** An Entry with no object behind it (index -1): implied directories, special entries. */
export function entryWithoutObject(path: string, type: Entry["type"], mode: number, mtimeNs: bigint): Entry {
  const sec = mtimeNs / 1_000_000_000n;
  return {
    path,
    type,
    mode,
    size: 0,
    mtimeNs,
    mtimeMs: Number(sec) * 1e3 + Number(mtimeNs - sec * 1_000_000_000n) / 1e6,
    compression: "none",
    encrypted: false,
    crc32c: 0,
    objectOffset: 0,
    objectSize: 0,
    storedSize: 0,
    index: -1,
  };
}

function readAsync(fd: number, buf: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, 0, buf.length, position, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

async function readFullyAsync(fd: number, buf: Buffer, position: number, what: string): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const view = buf.subarray(done);
    const n = await readAsync(fd, view, position + done);
    if (n === 0) throw corrupt("TRUNCATED", `${what}: unexpected end of file`);
    done += n;
  }
}

/** The container's header, decoded and checked. */
function readHeader(fd: number, path: string): DecodedHeader {
  const hbuf = Buffer.allocUnsafe(HEADER_SIZE);
  readFully(fd, hbuf, 0, "header");
  let header: DecodedHeader;
  try {
    header = decodeHeader(hbuf);
  } catch (e) {
    const err = e as BfcError;
    throw corrupt(err.reason, `'${path}': ${err.message}`, { path, field: err.field });
  }
  if (header.storedCrc !== header.computedCrc) {
    throw corrupt("CRC_MISMATCH", `container '${path}': header checksum mismatch`, {
      path,
      field: "header.crc",
    });
  }
  return header;
}

/**
 * Reads a BFC v1 container. Opening validates footer, index and header; entry data is read and
 * verified on demand. Sync and async methods share one file descriptor and can be mixed.
 */
export class Reader {
  readonly path: string;
  readonly fileSize: number;
  readonly header: DecodedHeader;
  readonly footer: Footer;
  readonly index: IndexTable;
  /** Offset just past the footer of the commit this reader shows. */
  end = 0;
  /** Offset just past the footer of the latest complete commit. */
  tipEnd = 0;
  /** Bytes after the latest complete commit: an interrupted commit's leftovers (`bfc recover`). */
  tornTail = 0;
  private fd: number;
  private readonly keys: KeyResolver;
  private readonly cache: ContentCache;
  private readonly trust: boolean;
  private readonly verified: Uint8Array;
  private keyConfirmed = false;
  /** Decoding cursors over large compressed entries, most recently used last. */
  private cursors: Cursor[] = [];
  private ext: Extension | undefined;
  /** cursorRead calls run one at a time: they advance shared cursors across awaits. */
  private cursorChain: Promise<unknown> = Promise.resolve();
  private encryptedCount = -1;
  private attrTable: Map<number, EntryAttrs> | undefined;
  /** Hard links whose object is shared: entry → target; null when there are none. */
  private linkOwner: Map<number, number> | null | undefined;
  /** Entries whose object was written under another path (record 10); null when there are none. */
  private names: Map<number, Buffer> | null | undefined;
  /** Targets of hard links that share their object (built on first use). */
  private sharedTargets: Set<number> | undefined;
  /** The last entry located: positioned reads through one descriptor locate the same entry. */
  private lastLocation: Location | undefined;
  private readonly spill: SpillStore | undefined;
  private readonly borrowedFd: boolean;
  /** Reused by whole-entry sync reads into the caller's buffer. */
  private scratch: Buffer | undefined;
  /** Entries lately read in large pieces (sync reads into the caller's buffer). */
  private readonly recent = new RecentDecodes(RECENT_DECODES);

  private constructor(
    path: string,
    fd: number,
    fileSize: number,
    header: DecodedHeader,
    footer: Footer,
    index: IndexTable,
    options: ReaderOptions,
  ) {
    this.path = path;
    this.fd = fd;
    this.fileSize = fileSize;
    this.header = header;
    this.footer = footer;
    this.index = index;
    this.keys = new KeyResolver(options, header.salt, hasPasswordSalt(header));
    this.cache = new ContentCache(options.cacheBytes ?? 64 * 1024 * 1024);
    this.trust = options.trustContent === true;
    this.verified = new Uint8Array(index.count);
    this.spill = options.spill;
    this.borrowedFd = options.fd !== undefined;
  }

  static openSync(path: string, options: ReaderOptions = {}): Reader {
    if (options.fd !== undefined) return Reader.load(path, options.fd, options);
    let fd: number;
    try {
      fd = fs.openSync(path, "r");
    } catch (e) {
      throw fromSystemError(e, `cannot open container '${path}'`, path);
    }
    try {
      return Reader.load(path, fd, options);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  static async open(path: string, options: ReaderOptions = {}): Promise<Reader> {
    if (options.fd !== undefined) return Reader.load(path, options.fd, options);
    const fd = await new Promise<number>((resolve, reject) =>
      fs.open(path, "r", (err, fd) =>
        err ? reject(fromSystemError(err, `cannot open container '${path}'`, path)) : resolve(fd),
      ),
    );
    try {
      return Reader.load(path, fd, options);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /** The reference's open sequence (footer, index, header), with every bound checked before use. */
  private static load(path: string, fd: number, options: ReaderOptions): Reader {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) {
      throw new BfcError("EINVAL", "BAD_MAGIC", `'${path}' is not a regular file`, { path });
    }
    const size = st.size;
    if (size < HEADER_SIZE + FOOTER_SIZE) {
      let magicOk = false;
      if (size >= 8) {
        const m = Buffer.alloc(8);
        readFully(fd, m, 0, "header");
        magicOk = m.equals(Buffer.from("BFCFv1\0\0", "latin1"));
      }
      throw magicOk
        ? corrupt("TRUNCATED", `container '${path}' is truncated (${size} bytes)`, { path })
        : corrupt("BAD_MAGIC", `'${path}' is not a BFC container`, { path });
    }
    const shared = options.shared;
    if (shared) {
      if (size !== shared.fileSize) {
        throw corrupt(
          "IO_ERROR",
          `container '${path}' changed size while open (${shared.fileSize} → ${size} bytes)`,
          {
            path,
          },
        );
      }
      return Reader.make(path, fd, size, shared.footer, IndexTable.attach(shared.index), shared, options);
    }
    let slot: CommitSlot | null = null;
    let tornTail = 0;
    if (hasFooterTags(fd, size)) {
      slot = loadCommitAt(fd, path, size);
    } else {
      // Tell a truncated container (good header, no footer) from something that is not one at all.
      const m = Buffer.alloc(8);
      readFully(fd, m, 0, "header");
      if (!m.equals(Buffer.from("BFCFv1\0\0", "latin1"))) {
        throw corrupt("BAD_MAGIC", `'${path}' is not a BFC container`, { path });
      }
      // A commit that never finished leaves objects (and maybe part of an index) after the last
      // complete commit's footer; that commit is the container's current state.
      if (options.recover !== false) slot = findCommitBefore(fd, path, size);
      if (!slot) {
        throw corrupt("TRUNCATED", `container '${path}' has no footer (truncated or not finished)`, {
          path,
          field: "footer",
        });
      }
      tornTail = size - slot.end;
    }
    const tip = slot;
    if (options.commit !== undefined) slot = findCommit(fd, path, slot, options.commit);
    return Reader.make(
      path,
      fd,
      size,
      slot.footer,
      slot.index,
      { end: slot.end, tipEnd: tip.end, tornTail },
      options,
    );
  }

  /** A Reader of a loaded commit: `at` says where it ends, where the latest one ends, and the torn tail. */
  private static make(
    path: string,
    fd: number,
    size: number,
    footer: Footer,
    index: IndexTable,
    at: { end: number; tipEnd: number; tornTail: number },
    options: ReaderOptions,
  ): Reader {
    const r = new Reader(path, fd, size, readHeader(fd, path), footer, index, options);
    r.end = at.end;
    r.tipEnd = at.tipEnd;
    r.tornTail = at.tornTail;
    return r;
  }

  /**
   * This Reader's commit and parsed index in shared memory, for `shared` in other threads' Readers
   * of the same container (serving threads of a FUSE mount each open one).
   */
  share(): ReaderShare {
    return {
      fileSize: this.fileSize,
      end: this.end,
      tipEnd: this.tipEnd,
      tornTail: this.tornTail,
      footer: { ...this.footer },
      index: this.index.share(),
    };
  }

  close(): void {
    if (this.fd >= 0) {
      if (!this.borrowedFd) fs.closeSync(this.fd);
      this.fd = -1;
      this.cache.clear();
      this.recent.clear();
      for (const c of this.cursors) void c.iter.return?.(undefined).catch(() => {});
      this.cursors = [];
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private checkOpen(): number {
    if (this.fd < 0) throw new BfcError("EBADF", "CLOSED", "the container is closed", { path: this.path });
    return this.fd;
  }

  /**
   * The container's open descriptor, for Readers of it in other threads (ReaderOptions.fd): they
   * then read the very file this one opened, even if its name has gone or been replaced since.
   */
  get descriptor(): number {
    return this.checkOpen();
  }

  get count(): number {
    return this.index.count;
  }

  /** Whether any entry is encrypted (scans the index once). */
  get encrypted(): boolean {
    if (this.encryptedCount < 0) {
      let n = 0;
      for (let i = 0; i < this.index.count; i++) if (this.index.enc(i) !== 0) n++;
      this.encryptedCount = n;
    }
    return this.encryptedCount > 0;
  }

  /** "password" when the header carries a salt, "key" when entries are encrypted without one. */
  /**
   * The index's extension area (container metadata, resource limits, commit chain), decoded on
   * first use; empty for containers written without one (every reference-written container).
   */
  get extension(): Extension {
    this.ext ??= decodeExtension(this.index.extension());
    return this.ext;
  }

  /** uid, gid, extra times and xattrs of the entry at index position `i`, when recorded. */
  attributesAt(i: number): EntryAttrs | undefined {
    if (this.attrTable === undefined) {
      const raw = this.extension.entryAttrs;
      this.attrTable = raw ? decodeEntryAttrs(raw, this.index.count) : new Map();
    }
    return this.attrTable.get(i);
  }

  /** Index position of the smallest encrypted regular file, or -1 when nothing is encrypted. */
  smallestEncryptedFile(): number {
    const ix = this.index;
    let best = -1;
    for (let i = 0; i < ix.count; i++) {
      if (
        ix.enc(i) !== 0 &&
        (ix.mode(i) & S_IFMT) === S_IFREG &&
        (best < 0 || ix.origSize(i) < ix.origSize(best))
      )
        best = i;
    }
    return best;
  }

  /**
   * The container's key for writing new entries: null for an unencrypted container, otherwise the
   * key from the credentials, proven on the smallest encrypted file so a wrong password can never
   * add entries nobody can read back alongside the good ones.
   */
  async writeKey(): Promise<Buffer | null> {
    const passwordSalt = hasPasswordSalt(this.header);
    if (!this.encrypted && !passwordSalt) {
      if (this.keys.available) {
        throw new BfcError(
          "EINVAL",
          "BAD_KEY",
          `'${this.path}' is not encrypted: a password or key does not apply`,
          {
            path: this.path,
          },
        );
      }
      return null;
    }
    const key = await this.keys.get(this.path);
    const probe = this.smallestEncryptedFile();
    if (probe >= 0) await this.verifyEntry(probe);
    return key;
  }

  /** Number of the commit this reader shows (1 = the commit that created the container). */
  get commit(): number {
    return commitNumber(this.extension);
  }

  /** Every commit, newest first, walking the previous-commit chain from the latest. */
  commits(): CommitInfo[] {
    const fd = this.checkOpen();
    return [...walkCommits(fd, this.path, loadCommitAt(fd, this.path, this.tipEnd))];
  }

  get encryptionMode(): "none" | "password" | "key" {
    if (!this.encrypted) return "none";
    return hasPasswordSalt(this.header) ? "password" : "key";
  }

  /**
   * Derives the key now (asynchronously) when a password was given, so that later sync reads do
   * not block on Argon2id. Does nothing without credentials or once the key is known.
   */
  async unlock(): Promise<void> {
    if (this.keys.available && this.encrypted) await this.keys.get(this.path);
  }

  /**
   * The container key once `unlock` derived it (or a key was given), for opening more readers of
   * the same container without deriving it again (FUSE worker threads); undefined otherwise.
   */
  async knownKey(): Promise<Buffer | undefined> {
    return this.keys.available && this.encrypted ? Buffer.from(await this.keys.get(this.path)) : undefined;
  }

  // ---------------------------------------------------------------- lookups

  /** Index position of a path, or -1. */
  find(path: string): number {
    const p = normalizeLookup(path);
    if (p === "") return -1;
    return this.index.find(Buffer.from(p));
  }

  entryAt(i: number): Entry {
    // Fields read straight from the blob at the entry's tail: listing 50k entries builds 50k of
    // these, so no per-field lookups and no BigInt arithmetic for mtimeMs.
    const ix = this.index;
    const b = ix.blob;
    const s = ix.pathStart(i);
    const pathLen = ix.pathByteLength(i);
    const t = s + pathLen;
    const mode = b.readUInt32LE(t + 16);
    const objectSize = b.readUInt32LE(t + 12) * 0x100000000 + b.readUInt32LE(t + 8);
    return {
      path: b.toString("utf8", s, t),
      type: typeOfMode(mode),
      mode,
      size: b.readUInt32LE(t + 40) * 0x100000000 + b.readUInt32LE(t + 36),
      mtimeNs: b.readBigInt64LE(t + 20),
      mtimeMs: (b.readInt32LE(t + 24) * 0x100000000 + b.readUInt32LE(t + 20)) / 1e6,
      compression: b.readUInt32LE(t + 28) === COMP_ZSTD ? "zstd" : "none",
      encrypted: b.readUInt32LE(t + 32) !== 0,
      crc32c: b.readUInt32LE(t + 44),
      objectOffset: b.readUInt32LE(t + 4) * 0x100000000 + b.readUInt32LE(t),
      objectSize,
      storedSize: objectSize - objectPrefixSize(this.objectNameLength(i, pathLen)),
      index: i,
    };
  }

  private implicitDir(path: string): Entry {
    return entryWithoutObject(path, "directory", S_IFDIR | 0o755, 0n);
  }

  /** Entry for a path, synthesizing the root and directories that exist only as parents. */
  tryStat(path: string): Entry | null {
    const p = normalizeLookup(path);
    if (p === "") return this.implicitDir("");
    const key = Buffer.from(p);
    const i = this.index.find(key);
    if (i >= 0) return this.entryAt(i);
    const [lo, hi] = this.index.descendantRange(key);
    return lo < hi ? this.implicitDir(p) : null;
  }

  stat(path: string): Entry {
    const e = this.tryStat(path);
    if (e) return e;
    // ENOTDIR where a parent component is a file, as the kernel reports it.
    const p = normalizeLookup(path);
    let slash = p.indexOf("/");
    while (slash >= 0) {
      const i = this.index.find(Buffer.from(p.slice(0, slash)));
      if (i >= 0 && (this.index.mode(i) & S_IFMT) !== S_IFDIR) {
        throw new BfcError("ENOTDIR", "NOT_A_DIRECTORY", `not a directory: '${p.slice(0, slash)}'`, { path });
      }
      slash = p.indexOf("/", slash + 1);
    }
    throw new BfcError("ENOENT", "NOT_FOUND", `no such entry: '${path}'`, { path });
  }

  exists(path: string): boolean {
    return this.tryStat(path) !== null;
  }

  /** All index entries in byte-wise path order. */
  *entries(): IterableIterator<Entry> {
    for (let i = 0; i < this.index.count; i++) yield this.entryAt(i);
  }

  /**
   * Entries at or under a path (the reference's list prefix semantics: `a` matches `a` and `a/...`,
   * not `ab`). The empty prefix lists everything.
   */
  *list(prefix = ""): IterableIterator<Entry> {
    const p = normalizeLookup(prefix);
    if (p === "") {
      yield* this.entries();
      return;
    }
    const key = Buffer.from(p);
    const i = this.index.find(key);
    const [lo, hi] = this.index.descendantRange(key);
    if (i >= 0) yield this.entryAt(i);
    for (let j = lo; j < hi; j++) yield this.entryAt(j);
  }

  /**
   * Names of a directory's immediate children in byte-wise order, including directories that exist
   * only because something lies beneath them.
   */
  readdir(dir = ""): string[] {
    return this.readdirEntries(dir).map((e) => e.path.slice(e.path.lastIndexOf("/") + 1));
  }

  readdirEntries(dir = ""): Entry[] {
    const p = normalizeLookup(dir);
    const ix = this.index;
    if (p !== "") {
      const self = ix.find(Buffer.from(p));
      if (self >= 0 && (ix.mode(self) & S_IFMT) !== S_IFDIR) {
        throw new BfcError("ENOTDIR", "NOT_A_DIRECTORY", `not a directory: '${dir}'`, { path: dir });
      }
    }
    const prefixBytes = Buffer.from(p);
    const [lo, hi] = ix.descendantRange(prefixBytes);
    if (lo >= hi && p !== "" && ix.find(prefixBytes) < 0) this.stat(dir);
    const base = p === "" ? 0 : prefixBytes.length + 1;
    const out: Entry[] = [];
    const seen = new Set<string>();
    let ordered = true;
    let j = lo;
    while (j < hi) {
      const s = ix.pathStart(j) + base;
      const e = ix.pathEnd(j);
      const slash = ix.blob.indexOf(0x2f, s);
      if (slash < 0 || slash >= e) {
        const ent = this.entryAt(j);
        const name = ent.path.slice(base);
        if (!seen.has(name)) {
          seen.add(name);
          out.push(ent);
        }
        j++;
        continue;
      }
      // A grandchild: its first component is a child directory; skip the rest of that subtree.
      const childBytes = ix.blob.subarray(ix.pathStart(j), slash);
      const child = childBytes.toString();
      const name = child.slice(base);
      if (!seen.has(name)) {
        seen.add(name);
        const explicit = ix.find(childBytes);
        out.push(explicit >= 0 ? this.entryAt(explicit) : this.implicitDir(child));
        ordered = false;
      }
      const [, end] = ix.descendantRange(childBytes);
      j = Math.max(j + 1, end);
    }
    if (!ordered) {
      const keyed = out.map((e) => ({ e, k: Buffer.from(e.path) }));
      keyed.sort((a, b) => Buffer.compare(a.k, b.k));
      return keyed.map((x) => x.e);
    }
    return out;
  }

  // ---------------------------------------------------------------- content

  private fileIndex(path: string, what: string): number {
    const e = this.stat(path);
    if (e.type === "directory") {
      throw new BfcError("EISDIR", "IS_A_DIRECTORY", `cannot ${what} '${path}': is a directory`, { path });
    }
    if (e.type !== "file") {
      throw new BfcError("EINVAL", "NOT_A_FILE", `cannot ${what} '${path}': not a regular file`, { path });
    }
    return e.index;
  }

  /**
   * The entry whose name the object of entry `i` carries: itself, or for a hard link that shares
   * its target's object, the target (its path is in the object header and, encrypted, the AAD).
   */
  private objectOwner(i: number): number {
    if (this.linkOwner === undefined) this.linkOwner = this.loadLinks();
    if (this.linkOwner === null) return i;
    const t = this.linkOwner.get(i);
    return t !== undefined && this.index.objOffset(t) === this.index.objOffset(i) ? t : i;
  }

  private loadLinks(): Map<number, number> | null {
    const hl = this.extension.hardlinks;
    if (!hl?.length) return null;
    const ix = this.index;
    const m = new Map<number, number>();
    for (const { entry, target } of hl) {
      if (entry >= ix.count || target >= ix.count) {
        throw corrupt("BAD_INDEX", "hard link record names an entry beyond the index", {
          field: "index.extension",
        });
      }
      if ((ix.mode(entry) & S_IFMT) !== S_IFREG || (ix.mode(target) & S_IFMT) !== S_IFREG) {
        throw corrupt(
          "BAD_INDEX",
          `hard link '${ix.path(entry)}' → '${ix.path(target)}' is not between files`,
          {
            field: "index.extension",
          },
        );
      }
      m.set(entry, target);
    }
    return m;
  }

  private loadNames(): Map<number, Buffer> | null {
    const list = this.extension.objectNames;
    if (!list?.length) return null;
    const ix = this.index;
    const m = new Map<number, Buffer>();
    for (const { entry, name } of list) {
      if (entry >= ix.count) {
        throw corrupt("BAD_INDEX", "object name record names an entry beyond the index", {
          field: "index.extension",
        });
      }
      // A hard link sharing its target's object has that object's name already.
      if (this.objectOwner(entry) !== entry) {
        throw corrupt("BAD_INDEX", `'${ix.path(entry)}' is a hard link and also has an object name`, {
          path: ix.path(entry),
          field: "index.extension",
        });
      }
      m.set(entry, name);
    }
    return m;
  }

  /**
   * The path bytes in the header of entry `i`'s object (and, encrypted, its associated data): the
   * entry's own path, its hard-link target's for a shared object, or the name recorded for an
   * entry that kept the object it had under another path (record 10).
   */
  private objectNameBytes(i: number): Buffer {
    if (this.names === undefined) this.names = this.loadNames();
    const owner = this.objectOwner(i);
    return this.names?.get(owner) ?? this.index.pathBytes(owner);
  }

  private objectNameLength(i: number, pathLen: number): number {
    if (this.linkOwner === undefined) this.linkOwner = this.loadLinks();
    if (this.names === undefined) this.names = this.loadNames();
    if (this.linkOwner === null && this.names === null) return pathLen;
    return this.objectNameBytes(i).length;
  }

  /** Stored payload bytes of entry `i` (its object less header and name), without reading it. */
  storedSizeAt(i: number): number {
    const len = this.index.pathByteLength(i);
    return this.index.objSize(i) - objectPrefixSize(this.objectNameLength(i, len));
  }

  /** The path entry `i`'s object was written under (its own path unless renamed or a hard link). */
  objectName(i: number): string {
    return this.objectNameBytes(i).toString();
  }

  /** True when entry `i` is a hard link sharing its target's object, or the target of one. */
  sharesObject(i: number): boolean {
    if (this.linkOwner === undefined) this.linkOwner = this.loadLinks();
    if (!this.linkOwner) return false;
    if (this.objectOwner(i) !== i) return true;
    if (!this.sharedTargets) {
      this.sharedTargets = new Set();
      for (const [e, t] of this.linkOwner) if (this.objectOwner(e) === t) this.sharedTargets.add(t);
    }
    return this.sharedTargets.has(i);
  }

  /** For a hard link, the index position of the file it links to; -1 otherwise. */
  hardlinkTarget(i: number): number {
    if (this.linkOwner === undefined) this.linkOwner = this.loadLinks();
    return this.linkOwner?.get(i) ?? -1;
  }

  /** Where entry `i`'s stored payload lies (after its object's header and name). */
  payloadRange(i: number): { offset: number; storedSize: number } {
    const loc = this.locate(i);
    return { offset: loc.payloadOffset, storedSize: loc.payloadSize };
  }

  /** Device nodes, fifos and sockets recorded in the extension area (not index entries). */
  specialEntries(): SpecialEntry[] {
    return this.extension.special ?? [];
  }

  private locate(i: number): Location {
    const last = this.lastLocation;
    if (last !== undefined && last.i === i) return last;
    const ix = this.index;
    const name = this.objectNameBytes(i);
    const prefix = objectPrefixSize(name.length);
    const payloadSize = ix.objSize(i) - prefix;
    const comp = ix.comp(i);
    const enc = ix.enc(i);
    const size = ix.origSize(i);
    const path = ix.path(i);
    const fmt = ix.mode(i) & S_IFMT;
    let consistent = payloadSize >= 0;
    if (fmt === S_IFREG) {
      const body = enc ? payloadSize - AEAD_OVERHEAD : payloadSize;
      consistent = comp === COMP_ZSTD ? body > 0 || size === 0 : body === size;
    } else if (fmt === S_IFLNK) {
      consistent = payloadSize >= size;
    }
    if (!consistent) {
      throw corrupt(
        "BAD_OBJECT",
        `'${path}': stored size ${payloadSize} does not fit original size ${size}`,
        {
          path,
          field: "index.obj_size",
        },
      );
    }
    const loc: Location = {
      i,
      path,
      aad: name,
      comp,
      enc,
      size,
      crc: ix.crc(i),
      payloadOffset: ix.objOffset(i) + prefix,
      payloadSize,
    };
    this.lastLocation = loc;
    return loc;
  }

  /** Compares the object header in front of the payload with the index entry. */
  private checkObjectHeader(loc: Location, buf: Buffer): void {
    const ix = this.index;
    const h = decodeObjectHeader(buf, 0);
    const mode = ix.mode(loc.i);
    const fmt = mode & S_IFMT;
    const want = fmt === S_IFDIR ? OBJ_DIR : fmt === S_IFREG ? OBJ_FILE : fmt === S_IFLNK ? OBJ_SYMLINK : -1;
    const problems: string[] = [];
    if (h.type !== want) problems.push(`type ${h.type}, index says ${want}`);
    if (
      h.nameLen !== loc.aad.length ||
      !buf.subarray(OBJECT_HEADER_SIZE, OBJECT_HEADER_SIZE + h.nameLen).equals(loc.aad)
    )
      problems.push("name differs from the index path");
    if (h.comp !== loc.comp || h.enc !== loc.enc)
      problems.push("compression/encryption differ from the index");
    if (h.origSize !== loc.size) problems.push(`size ${h.origSize}, index says ${loc.size}`);
    if (want !== OBJ_DIR && h.encSize !== (want === OBJ_SYMLINK ? loc.size : loc.payloadSize))
      problems.push(`stored size ${h.encSize}, index implies ${loc.payloadSize}`);
    if (h.crc !== loc.crc) problems.push("checksum differs from the index");
    if ((h.mode & S_IFMT) !== (mode & S_IFMT)) problems.push("mode differs from the index");
    if (problems.length) {
      throw corrupt(
        "BAD_OBJECT",
        `'${loc.path}': object header does not match the index (${problems.join("; ")})`,
        {
          path: loc.path,
          field: "object",
        },
      );
    }
  }

  private objectHeaderBytes(loc: Location): number {
    return OBJECT_HEADER_SIZE + loc.aad.length;
  }

  private authFailed(path: string): BfcError {
    if (this.keyConfirmed) {
      return corrupt("AUTH_FAILED", `'${path}': authentication failed (the encrypted data is corrupted)`, {
        path,
      });
    }
    return new BfcError(
      "EACCES",
      "AUTH_FAILED",
      `'${path}': authentication failed (wrong password or key, or corrupted data)`,
      { path },
    );
  }

  private finishCheck(loc: Location, produced: number, crc: number): void {
    if (produced !== loc.size) {
      throw corrupt("SIZE_MISMATCH", `'${loc.path}': decoded ${produced} bytes, expected ${loc.size}`, {
        path: loc.path,
      });
    }
    if (crc !== loc.crc) {
      throw corrupt(
        "CRC_MISMATCH",
        `'${loc.path}': checksum mismatch (stored 0x${hex8(loc.crc)}, computed 0x${hex8(crc)})`,
        { path: loc.path },
      );
    }
  }

  /**
   * Reads, authenticates, decodes and checks a whole entry in memory (sync). Used for entries small
   * enough to cache and for sync reads of compressed data.
   */
  private decodeWholeSync(loc: Location, scratch?: Buffer, reuseOut = false): Buffer {
    const fd = this.checkOpen();
    const hdr = this.objectHeaderBytes(loc);
    const lead = this.trust ? 0 : objectPrefixSize(loc.aad.length);
    const need = lead + loc.payloadSize;
    // A reused buffer spares faulting in fresh pages for every file (reads run ~2.5x faster).
    const raw = scratch && scratch.length >= need ? scratch.subarray(0, need) : Buffer.allocUnsafe(need);

    readFully(fd, raw, loc.payloadOffset - lead, loc.path);
    if (lead) this.checkObjectHeader(loc, raw.subarray(0, hdr));
    return this.decodePayloadSync(loc, raw.subarray(lead), reuseOut);
  }

  /** `into`: where a zstd frame is decoded when it fills exactly that (else fresh memory). */
  private decodePayloadSync(loc: Location, payload: Buffer, reuseOut = false, into?: Buffer): Buffer {
    let data = payload;
    if (loc.enc) {
      const key = this.keys.getSync(loc.path);
      // Decrypted where it was read (fresh pages for every payload would cost more than the cipher).
      const opened = openInPlace(key, data, loc.aad);
      if (!opened) throw this.authFailed(loc.path);
      this.keyConfirmed = true;
      data = opened;
    }
    if (loc.comp === COMP_ZSTD) {
      // A frame that does not fill `into` exactly is decoded again the ordinary way, which also
      // gives the error.
      data = into && zstdDecompressInto(data, into) ? into : this.zstdWholeSync(loc, data, reuseOut);
    }
    this.finishCheck(loc, data.length, crc32c(data));
    this.verified[loc.i] = 1;
    return data;
  }

  /**
   * Whole contents of several small files (up to 8 MiB each), for one-shot consumers such as
   * extraction: objects that lie back to back are fetched with one positioned read into `scratch`
   * and checked and decoded from there. Results are contents or the entry's error; uncompressed
   * files may be views into `scratch` (encrypted ones decrypted where they were read), and
   * compressed ones into `decoded` while it has room, valid until the next call with them.
   */
  readFilesSync(ids: number[], scratch?: Buffer, decoded?: Buffer): (Buffer | BfcError)[] {
    const ix = this.index;
    const out: (Buffer | BfcError)[] = new Array(ids.length);
    const single = (k: number) => {
      try {
        out[k] = this.readFileAtSync(ids[k], { keep: false });
      } catch (e) {
        out[k] = e instanceof BfcError ? e : corrupt("IO_ERROR", String(e));
      }
    };
    // Each run takes the next free part of scratch: views handed out earlier in this call must
    // not be overwritten by a later run.
    let used = 0;
    let decodedUsed = 0;
    let k = 0;
    while (k < ids.length) {
      const start = ix.objOffset(ids[k]);

      let end = start + ix.objSize(ids[k]);
      let j = k + 1;
      while (j < ids.length && ix.objOffset(ids[j]) === end && end + ix.objSize(ids[j]) - start <= RUN_SPAN) {
        end += ix.objSize(ids[j]);
        j++;
      }
      if (end - start > RUN_SPAN) {
        single(k);
        k++;
        continue;
      }
      let span: Buffer;
      if (scratch && scratch.length - used >= end - start) {
        span = scratch.subarray(used, used + end - start);
        used += end - start;
      } else span = Buffer.allocUnsafe(end - start);

      try {
        readFully(this.checkOpen(), span, start, "container");
      } catch (e) {
        for (let m = k; m < j; m++) out[m] = e as BfcError;
        k = j;
        continue;
      }
      for (let m = k; m < j; m++) {
        try {
          const loc = this.locate(ids[m]);
          const at = ix.objOffset(ids[m]) - start;
          if (!this.trust) this.checkObjectHeader(loc, span.subarray(at, at + this.objectHeaderBytes(loc)));
          const payload = span.subarray(at + objectPrefixSize(loc.aad.length), at + ix.objSize(ids[m]));
          let into: Buffer | undefined;
          if (decoded && loc.comp === COMP_ZSTD && loc.size > 0 && decoded.length - decodedUsed >= loc.size) {
            into = decoded.subarray(decodedUsed, decodedUsed + loc.size);
          }
          const data = this.decodePayloadSync(loc, payload, false, into);
          if (data === into) decodedUsed += loc.size;
          out[m] = data;
        } catch (e) {
          out[m] = e instanceof BfcError ? e : corrupt("IO_ERROR", String(e));
        }
      }
      k = j;
    }
    return out;
  }

  private zstdWholeSync(loc: Location, frame: Buffer, reuseOut = false): Buffer {
    try {
      return zstdDecompressSync(frame, loc.size, reuseOut);
    } catch (e) {
      if (e instanceof RangeError || (e as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") {
        throw corrupt("SIZE_MISMATCH", `'${loc.path}': decodes to more than ${loc.size} bytes`, {
          path: loc.path,
        });
      }
      throw corrupt("DECOMPRESS_FAILED", `'${loc.path}': zstd data is corrupt (${(e as Error).message})`, {
        path: loc.path,
        cause: e,
      });
    }
  }

  private async readPayloadHead(loc: Location): Promise<void> {
    if (this.trust) return;
    const buf = Buffer.allocUnsafe(this.objectHeaderBytes(loc));
    await readFullyAsync(
      this.checkOpen(),
      buf,
      loc.payloadOffset - objectPrefixSize(loc.aad.length),
      loc.path,
    );
    this.checkObjectHeader(loc, buf);
  }

  private readPayloadHeadSync(loc: Location): void {
    if (this.trust) return;
    const buf = Buffer.allocUnsafe(this.objectHeaderBytes(loc));
    readFully(this.checkOpen(), buf, loc.payloadOffset - objectPrefixSize(loc.aad.length), loc.path);
    this.checkObjectHeader(loc, buf);
  }

  /**
   * Raw stored payload bytes [from, to), in pieces read into two buffers taken in turn: the next
   * piece is read (on the thread pool) while the caller works on this one, which stays valid until
   * the caller asks for the one after it.
   */
  private async *payloadPieces(loc: Location, from: number, to: number): AsyncGenerator<Buffer> {
    const fd = this.checkOpen();
    const size = Math.min(CHUNK, to - from);
    const bufs = [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
    const readPiece = (k: number, pos: number): Promise<Buffer> => {
      const piece = (bufs[k] as Buffer).subarray(0, Math.min(size, to - pos));
      const p = readFullyAsync(fd, piece, loc.payloadOffset + pos, loc.path).then(() => piece);
      // Awaited below; a read still under way when the consumer stops must not become unhandled.
      p.catch(() => {});
      return p;
    };
    let k = 0;
    let pos = from;
    let next = pos < to ? readPiece(k, pos) : undefined;
    while (next) {
      const piece = await next;
      pos += piece.length;
      k ^= 1;
      next = pos < to ? readPiece(k, pos) : undefined;
      yield piece;
    }
  }

  /**
   * The entry's original bytes from the start, streamed with bounded memory. Size, checksum and
   * (for encrypted entries) the tag are checked as the stream ends, so bytes arrive before they
   * are verified: this is for consumers that discard their output on error (extraction writes a
   * file and removes it). Anything that hands bytes onwards reads through `read`/`readFile`.
   *
   * With `reuse`, each piece is a view of a buffer that the stream fills again once the consumer
   * asks for the next piece (no memory is allocated per piece, which for a large file is most of
   * the cost of decoding it); without, each piece is the consumer's own.
   *
   * With `thread`, a zstd frame of hundreds of MiB is decoded on a thread of its own
   * (ZstdThreadDecoder) while this one checks what came before: for passes that only look at the
   * bytes (verification, hashing). Measured here, consumers that write the bytes to new files at
   * that pace lost more in the kernel's copies into fresh page-cache pages than they gained.
   */
  async *contentChunks(
    i: number,
    options: { reuse?: boolean; thread?: boolean } = {},
  ): AsyncGenerator<Buffer> {
    const loc = this.locate(i);
    await this.readPayloadHead(loc);
    const reuse = options.reuse === true;
    let from = 0;
    let to = loc.payloadSize;
    let decipher: ReturnType<typeof createDecryptor> | undefined;
    if (loc.enc) {
      const key = await this.keys.get(loc.path);
      const fd = this.checkOpen();
      const nonce = Buffer.allocUnsafe(NONCE_SIZE);
      const tag = Buffer.allocUnsafe(TAG_SIZE);
      await readFullyAsync(fd, nonce, loc.payloadOffset, loc.path);
      await readFullyAsync(fd, tag, loc.payloadOffset + loc.payloadSize - TAG_SIZE, loc.path);
      decipher = createDecryptor(key, nonce, loc.aad, tag);
      from = NONCE_SIZE;
      to = loc.payloadSize - TAG_SIZE;
    }
    const check = new ContentCheck(loc);
    const thread = options.thread && loc.comp === COMP_ZSTD ? zstdThreadFor(loc) : undefined;
    if (thread) {
      for await (const piece of this.zstdOnThread(loc, thread, from, to, decipher)) {
        check.take(piece);
        yield reuse ? piece : Buffer.from(piece);
      }
      this.endContent(loc, check, decipher);
      return;
    }
    const zstd = loc.comp === COMP_ZSTD ? ZstdStreamDecoder.create() : undefined;
    try {
      let stored: AsyncIterable<Buffer> = this.payloadPieces(loc, from, to);
      if (decipher) stored = deciphered(stored, decipher);
      if (loc.comp === COMP_ZSTD && !zstd) {
        // node:zlib without the internals ZstdStreamDecoder drives: its asynchronous stream.
        for await (const piece of this.zstdChunks(loc, stored)) yield check.take(piece);
      } else {
        let pos = from;
        for await (const data of stored) {
          pos += data.length;
          if (!zstd) {
            const piece = check.take(data);
            yield reuse ? piece : Buffer.from(piece);
            continue;
          }
          for (const piece of this.zstdPieces(loc, zstd, data, pos >= to)) {
            check.take(piece);
            yield reuse ? piece : Buffer.from(piece);
          }
        }
      }
    } finally {
      zstd?.close();
    }
    this.endContent(loc, check, decipher);
  }

  /**
   * The payload's zstd frame decoded on a thread of its own: this thread reads (and deciphers) the
   * stored bytes straight into the thread's input slots and hands out its output slots. Each piece
   * is a view of a shared slot, valid until the next one is asked for.
   */
  private async *zstdOnThread(
    loc: Location,
    t: ZstdThreadDecoder,
    from: number,
    to: number,
    decipher?: { update(b: Uint8Array): Buffer },
  ): AsyncGenerator<Buffer> {
    const fd = this.checkOpen();
    let pos = from;
    try {
      for (;;) {
        const seq = t.seq();
        for (
          let room = pos < to ? t.inputRoom() : undefined;
          room;
          room = pos < to ? t.inputRoom() : undefined
        ) {
          const data = room.subarray(0, Math.min(room.length, to - pos));
          await readFullyAsync(fd, data, loc.payloadOffset + pos, loc.path);
          if (decipher) decipherInPlace(decipher, data);
          pos += data.length;
          t.pushInput(data.length, pos >= to);
        }
        const out = t.output();
        if (out) {
          yield out;
          t.releaseOutput();
          continue;
        }
        threadFailure(loc, t);
        if (t.done) return;
        await t.changed(seq);
      }
    } finally {
      t.release();
    }
  }

  /** `zstd.decode`, its failures as the entry's corruption. */
  private *zstdPieces(
    loc: Location,
    zstd: ZstdStreamDecoder,
    data: Buffer,
    last: boolean,
  ): Generator<Buffer> {
    try {
      yield* zstd.decode(data, last);
    } catch (e) {
      if (e instanceof BfcError) throw e;
      throw corrupt("DECOMPRESS_FAILED", `'${loc.path}': zstd data is corrupt (${(e as Error).message})`, {
        path: loc.path,
        cause: e,
      });
    }
  }

  /** A decoded stream's last checks: the tag, then size and checksum; the entry is then verified. */
  private endContent(loc: Location, check: ContentCheck, decipher?: { final(): unknown }): void {
    if (decipher) {
      try {
        decipher.final();
      } catch {
        throw this.authFailed(loc.path);
      }
      this.keyConfirmed = true;
    }
    this.finishCheck(loc, check.produced, check.crc);
    this.verified[loc.i] = 1;
  }

  private async *zstdChunks(loc: Location, src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const dec = createZstdDecoder();
    // The stream keeps pieces it has not decoded yet: it gets its own copies.
    const input = Readable.from(copies(src), { objectMode: false });
    let inputError: unknown = null;
    input.on("error", (e) => {
      inputError = e;
      dec.destroy(e);
    });
    input.pipe(dec);
    try {
      for await (const out of dec) yield out as Buffer;
    } catch (e) {
      if (inputError) throw inputError;
      throw corrupt("DECOMPRESS_FAILED", `'${loc.path}': zstd data is corrupt (${(e as Error).message})`, {
        path: loc.path,
        cause: e,
      });
    } finally {
      input.destroy();
      dec.destroy();
    }
  }

  /** Verifies one entry completely (object header, tag, size, checksum) without keeping its bytes. */
  async verifyEntry(i: number): Promise<void> {
    const type = this.index.mode(i) & S_IFMT;
    const loc = this.locate(i);
    if (type !== S_IFREG) {
      await this.readPayloadHead(loc);
      if (type === S_IFLNK) await this.readlinkAt(i);
      this.verified[i] = 1;
      return;
    }
    if (loc.size <= WHOLE_DECODE_LIMIT && loc.payloadSize <= WHOLE_DECODE_LIMIT + AEAD_OVERHEAD) {
      const data = await this.decodeWhole(loc);
      if (loc.comp || loc.enc) this.cache.set(i, data);
      return;
    }
    for await (const _ of this.contentChunks(i, { reuse: true, thread: true })) {
      // draining the stream is the check
    }
  }

  /** Whole-entry decode, async: one read, decrypt and decompress off the read path. */
  private async decodeWhole(loc: Location): Promise<Buffer> {
    const fd = this.checkOpen();
    const lead = this.trust ? 0 : objectPrefixSize(loc.aad.length);
    const raw = Buffer.allocUnsafe(lead + loc.payloadSize);
    await readFullyAsync(fd, raw, loc.payloadOffset - lead, loc.path);
    return this.decodeObject(loc, raw, lead > 0, false, true);
  }

  /**
   * Checks and decodes an object already in memory: `raw` holds the object from its header (when
   * `withHeader`) or from its payload. Large frames decode on the thread pool; with `reuse`
   * (a caller that only needs the verdict) all of them decode here into this thread's reused
   * buffer, and the result is valid until the next such decode. With `overwrite` an encrypted
   * payload is decrypted where it lies in `raw`.
   */
  private async decodeObject(
    loc: Location,
    raw: Buffer,
    withHeader: boolean,
    reuse = false,
    overwrite = reuse,
  ): Promise<Buffer> {
    const lead = withHeader ? objectPrefixSize(loc.aad.length) : 0;
    if (withHeader) this.checkObjectHeader(loc, raw.subarray(0, this.objectHeaderBytes(loc)));
    let data: Buffer = raw.subarray(lead, lead + loc.payloadSize);
    if (loc.enc) {
      const key = await this.keys.get(loc.path);
      const opened = overwrite ? openInPlace(key, data, loc.aad) : aeadOpenSync(key, data, loc.aad);
      if (!opened) throw this.authFailed(loc.path);
      this.keyConfirmed = true;
      data = opened;
    }
    if (loc.comp === COMP_ZSTD) {
      data =
        reuse || data.length < 64 * 1024 ? this.zstdWholeSync(loc, data, reuse) : await zstdWhole(loc, data);
    }
    this.finishCheck(loc, data.length, crc32c(data));
    this.verified[loc.i] = 1;
    return data;
  }

  /**
   * Verifies entry i from a buffer holding its whole object (as verify's sequential scan reads
   * it): header against index, then payload, and returns the decoded content of files. Without
   * `keep` nothing is returned, compressed contents decode into reused memory (a first touch
   * of fresh memory for each costs more than decoding it: `verify --deep` of 2000 zstd files of
   * 1 MiB took 8.8-10.8 s through the thread pool's fresh buffers, 2.1-2.7 s this way), and an
   * encrypted payload is decrypted where it lies in `object`.
   */
  async verifyObjectBytes(i: number, object: Buffer, keep = true): Promise<Buffer | null> {
    const loc = this.locate(i);
    const type = this.index.mode(i) & S_IFMT;
    if (type === S_IFREG) {
      const data = await this.decodeObject(loc, object, true, !keep);
      return keep ? data : null;
    }
    this.checkObjectHeader(loc, object.subarray(0, this.objectHeaderBytes(loc)));
    if (type === S_IFLNK) {
      const start = objectPrefixSize(loc.aad.length);
      const target = object.subarray(start, start + loc.size);
      if (target.length !== loc.size || crc32c(target) !== loc.crc) {
        throw corrupt("CRC_MISMATCH", `'${loc.path}': symlink target checksum mismatch`, { path: loc.path });
      }
    }
    this.verified[i] = 1;
    return null;
  }

  /** The whole content of a file, verified. */
  async readFile(path: string): Promise<Buffer> {
    const i = this.fileIndex(path, "read");
    return this.readFileAt(i);
  }

  async readFileAt(i: number): Promise<Buffer> {
    const cached = this.cache.get(i);
    if (cached) return Buffer.from(cached);
    const loc = this.locate(i);
    if (loc.size <= WHOLE_DECODE_LIMIT || loc.comp || loc.enc) {
      if (loc.size > WHOLE_DECODE_LIMIT) {
        const parts: Buffer[] = [];
        for await (const c of this.contentChunks(i)) parts.push(c);
        return Buffer.concat(parts, loc.size);
      }
      const data = await this.decodeWhole(loc);
      if (loc.comp || loc.enc) {
        this.cache.set(i, data);
        return Buffer.from(data);
      }
      return data;
    }
    const parts: Buffer[] = [];
    for await (const c of this.contentChunks(i)) parts.push(c);
    return Buffer.concat(parts, loc.size);
  }

  readFileSync(path: string): Buffer {
    const i = this.fileIndex(path, "read");
    return this.readFileAtSync(i);
  }

  /**
   * `keep: false` is for one-shot consumers (extraction): the decoded bytes are neither cached nor
   * copied, and a plain file may be read into `scratch` (valid until the next call with it).
   * `owned: true` returns bytes the caller may keep and change, without adding them to the cache.
   */
  readFileAtSync(i: number, options: { keep?: boolean; scratch?: Buffer; owned?: boolean } = {}): Buffer {
    if (options.owned) {
      const hit = this.cache.get(i);
      return hit ? Buffer.from(hit) : this.decodeWholeSync(this.locate(i));
    }
    const keep = options.keep !== false;
    const cached = this.cache.get(i);
    if (cached) return keep ? Buffer.from(cached) : cached;
    const loc = this.locate(i);
    const data = this.decodeWholeSync(loc, keep ? undefined : options.scratch);
    if (keep && (loc.comp || loc.enc)) {
      this.cache.set(i, data);
      return Buffer.from(data);
    }
    return data;
  }

  /**
   * Up to `length` bytes of a file from `position` (fewer at the end). The entry is verified as a
   * whole before its first byte is returned, so corruption surfaces as an error, never as bytes.
   */
  async read(path: string, position: number, length: number): Promise<Buffer> {
    return this.readAt(this.fileIndex(path, "read"), position, length);
  }

  async readAt(i: number, position: number, length: number): Promise<Buffer> {
    // Locate first: an index whose sizes disagree is an error even for reads past its end.
    const loc = this.locate(i);
    const size = loc.size;
    const [start, end] = clampRange(position, length, size);
    if (start >= end) return Buffer.alloc(0);
    const cached = this.cache.get(i);
    if (cached) return Buffer.from(cached.subarray(start, end));
    if (!loc.comp && !loc.enc) {
      if (!this.verified[i] && !this.trust) await this.verifyEntry(i);
      const buf = Buffer.allocUnsafe(end - start);
      await readFullyAsync(this.checkOpen(), buf, loc.payloadOffset + start, loc.path);
      return buf;
    }
    if (size <= WHOLE_DECODE_LIMIT) {
      const data = await this.decodeWhole(loc);
      this.cache.set(i, data);
      return Buffer.from(data.subarray(start, end));
    }
    if (loc.comp && this.spill) {
      const spilled = await this.spilledRead(loc, start, end);
      if (spilled) return spilled;
    }
    if (!this.verified[i] && !this.trust) await this.verifyEntry(i);
    if (!loc.comp) return this.ctrRead(loc, start, end);
    return this.cursorRead(i, start, end);
  }

  readSync(path: string, position: number, length: number): Buffer {
    return this.readAtSync(this.fileIndex(path, "read"), position, length);
  }

  readAtSync(i: number, position: number, length: number): Buffer {
    // Locate first: an index whose sizes disagree is an error even for reads past its end.
    const loc = this.locate(i);
    const size = loc.size;
    const [start, end] = clampRange(position, length, size);
    if (start >= end) return Buffer.alloc(0);
    const cached = this.cache.get(i);
    if (cached) return Buffer.from(cached.subarray(start, end));
    if (!loc.comp && !loc.enc) {
      if (!this.verified[i] && !this.trust) this.verifyPlainSync(loc);
      const buf = Buffer.allocUnsafe(end - start);
      this.readStoredSync(loc, buf, 0, start, end);
      return buf;
    }
    if (!loc.comp && size > WHOLE_DECODE_LIMIT) {
      if (!this.verified[i] && !this.trust) this.verifyEncryptedSync(loc);
      return this.ctrReadSync(loc, start, end);
    }
    if (size > WHOLE_DECODE_LIMIT && this.spill) {
      const buf = Buffer.allocUnsafe(end - start);
      const n = this.spilledReadSync(loc, buf, 0, start, end);
      if (n >= 0) return buf.subarray(0, n);
    }
    const data = this.decodeWholeSync(loc);
    this.cache.set(i, data);
    return Buffer.from(data.subarray(start, end));
  }

  /**
   * readAtSync into the caller's buffer: plain entries are read straight into it and cached ones
   * copied once, which is what a VFS read(fd, buffer) needs.
   */
  readIntoAtSync(i: number, target: Uint8Array, offset: number, length: number, position: number): number {
    const loc = this.locate(i);
    checkRange(position, length);
    // Not clampRange: this path runs per 4 KiB read and allocates nothing.
    const start = Math.min(position, loc.size);
    const end = Math.min(loc.size, start + length);
    if (start >= end) return 0;
    // Stored files are never in the cache under their index (only their container blocks).
    if (!loc.comp && !loc.enc) {
      if (!this.verified[i] && !this.trust) {
        if (start === 0 && end === loc.size && loc.size <= WHOLE_DECODE_LIMIT) {
          // A whole stored file read once (a FUSE read, a copy): checked and copied in one pass
          // through reused memory, its container blocks not cached (the caller keeps the bytes).
          target.set(this.decodeWholeReused(loc), offset);
          return end - start;
        }
        this.verifyPlainSync(loc);
      }
      this.readStoredSync(loc, target, offset, start, end);
      return end - start;
    }
    const cached = this.cache.get(i);
    if (cached) {
      target.set(cached.subarray(start, end), offset);
      return end - start;
    }
    if (loc.comp && loc.size > WHOLE_DECODE_LIMIT && this.spill) {
      const n = this.spilledReadSync(loc, target, offset, start, end);
      if (n >= 0) return n;
    }
    if (loc.size <= WHOLE_DECODE_LIMIT) {
      const whole = start === 0 && end === loc.size;
      if (!whole) {
        const recent = this.recent.get(i);
        if (recent) {
          target.set(recent.subarray(start, end), offset);
          return end - start;
        }
      }
      if (whole || length >= PIECE_READ) {
        // Decoded in reused buffers (no allocation per file, which costs more than the copy for
        // MiB-sized files); a whole read leaves nothing worth keeping, a large piece (a FUSE
        // request) keeps the contents for the pieces that follow it.
        const data = this.decodeWholeReused(loc);
        if (!whole) this.recent.put(i, data);
        target.set(data.subarray(start, end), offset);
        return end - start;
      }
      // Small reads (random access): the content cache keeps many entries.
      const data = this.decodeWholeSync(loc);
      this.cache.set(i, data);
      target.set(data.subarray(start, end), offset);
      return end - start;
    }
    const data = this.readAtSync(i, start, end - start);
    target.set(data, offset);
    return data.length;
  }

  async readIntoAt(
    i: number,
    target: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<number> {
    const loc = this.locate(i);
    const [start, end] = clampRange(position, length, loc.size);
    if (start >= end) return 0;
    const cached = this.cache.get(i);
    if (cached) {
      target.set(cached.subarray(start, end), offset);
      return end - start;
    }
    if (!loc.comp && !loc.enc) {
      if (!this.verified[i] && !this.trust) await this.verifyEntry(i);
      const view = Buffer.from(target.buffer, target.byteOffset + offset, end - start);
      await readFullyAsync(this.checkOpen(), view, loc.payloadOffset + start, loc.path);
      return end - start;
    }
    const data = await this.readAt(i, start, end - start);
    target.set(data, offset);
    return data.length;
  }

  /**
   * Bytes [start, end) of a stored (plain) file into `target` at `offset`. Short reads
   * of a file that fits the cache copy from cached blocks of the container, so random reads cost a
   * copy instead of a pread; they are the same bytes a pread returns, and the caller has verified
   * the entry. Larger reads, and files larger than the cache, go straight to the file.
   */
  private readStoredSync(
    loc: Location,
    target: Uint8Array,
    offset: number,
    start: number,
    end: number,
  ): void {
    const fd = this.checkOpen();
    const from = loc.payloadOffset + start;
    const length = end - start;
    if (length >= BLOCK_SIZE || loc.size > this.cache.budget) {
      readFully(fd, Buffer.from(target.buffer, target.byteOffset + offset, length), from, loc.path);
      return;
    }
    const to = loc.payloadOffset + end;
    let done = 0;
    for (let b = Math.floor(from / BLOCK_SIZE); done < length; b++) {
      // Blocks share the content cache and its budget; their keys are negative.
      let block = this.cache.get(-1 - b);
      if (block === undefined) {
        block = this.readBlockSync(fd, b, to, loc.path);
        this.cache.set(-1 - b, block);
      }
      const inBlock = from + done - b * BLOCK_SIZE;
      const n = Math.min(block.length - inBlock, to - from - done);
      block.copy(target, offset + done, inBlock, inBlock + n);
      done += n;
    }
  }

  /**
   * Container block `b`, cut at the end of the file, but never before `need` (so a payload that
   * runs past the end fails as TRUNCATED instead of coming up short).
   */
  private readBlockSync(fd: number, b: number, need: number, what: string): Buffer {
    const at = b * BLOCK_SIZE;
    const chunk = syncScratch().subarray(0, Math.min(BLOCK_SIZE, Math.max(this.fileSize, need) - at));
    readFully(fd, chunk, at, what);
    return Buffer.from(chunk);
  }

  /** decodeWholeSync into reused buffers: valid until the next call. */
  private decodeWholeReused(loc: Location): Buffer {
    const need = objectPrefixSize(loc.aad.length) + loc.payloadSize;
    if (!this.scratch || this.scratch.length < need) this.scratch = Buffer.allocUnsafe(need);
    return this.decodeWholeSync(loc, this.scratch, true);
  }

  private verifyPlainSync(loc: Location): void {
    this.readPayloadHeadSync(loc);
    const fd = this.checkOpen();
    const first = loc.payloadOffset;
    const last = first + loc.size;
    // Every byte passes through memory here: a file that fits the cache keeps its blocks for the
    // reads that follow (as a compressed file's decoded content is kept), once the checksum has
    // matched. The pass then covers whole blocks.
    const keep = loc.size > 0 && loc.size <= this.cache.budget;
    const from = keep ? Math.floor(first / BLOCK_SIZE) * BLOCK_SIZE : first;
    const to = keep
      ? Math.min(Math.ceil(last / BLOCK_SIZE) * BLOCK_SIZE, Math.max(this.fileSize, last))
      : last;
    const scratch = syncScratch();
    const blocks: Buffer[] = [];
    let crc = 0;
    for (let at = from; at < to; at += scratch.length) {
      const n = Math.min(scratch.length, to - at);
      const chunk = scratch.subarray(0, n);
      readFully(fd, chunk, at, loc.path);
      crc = crc32c(chunk.subarray(Math.max(first - at, 0), Math.min(last - at, n)), crc);
      if (keep) {
        for (let k = 0; k < n; k += BLOCK_SIZE) blocks.push(Buffer.from(chunk.subarray(k, k + BLOCK_SIZE)));
      }
    }
    this.finishCheck(loc, loc.size, crc);
    const b0 = from / BLOCK_SIZE;
    for (let k = 0; k < blocks.length; k++) this.cache.set(-1 - (b0 + k), blocks[k] as Buffer);
    this.verified[loc.i] = 1;
  }

  /** Authenticates a large encrypted, uncompressed entry in one streaming pass (sync). */
  /** A streaming decipher of an encrypted entry's payload (nonce and tag read from around it). */
  private decipherSync(loc: Location): ReturnType<typeof createDecryptor> {
    const fd = this.checkOpen();
    const key = this.keys.getSync(loc.path);
    const nonce = Buffer.allocUnsafe(NONCE_SIZE);
    const tag = Buffer.allocUnsafe(TAG_SIZE);
    readFully(fd, nonce, loc.payloadOffset, loc.path);
    readFully(fd, tag, loc.payloadOffset + loc.payloadSize - TAG_SIZE, loc.path);
    return createDecryptor(key, nonce, loc.aad, tag);
  }

  private verifyEncryptedSync(loc: Location): void {
    this.readPayloadHeadSync(loc);
    const fd = this.checkOpen();
    const d = this.decipherSync(loc);
    const buf = Buffer.allocUnsafe(CHUNK);
    let crc = 0;
    const end = loc.payloadSize - TAG_SIZE;
    for (let pos = NONCE_SIZE; pos < end; ) {
      const n = Math.min(buf.length, end - pos);
      readFully(fd, buf.subarray(0, n), loc.payloadOffset + pos, loc.path);
      crc = crc32c(decipherInPlace(d, buf.subarray(0, n)), crc);
      pos += n;
    }
    try {
      d.final();
    } catch {
      throw this.authFailed(loc.path);
    }
    this.keyConfirmed = true;
    this.finishCheck(loc, end - NONCE_SIZE, crc);
    this.verified[loc.i] = 1;
  }

  /**
   * A large compressed entry from its decoded copy, made now by the verification pass when there is
   * none; null when no copy can be kept (the caller decodes from a cursor).
   */
  private async spilledRead(loc: Location, start: number, end: number): Promise<Buffer | null> {
    const spill = this.spill as SpillStore;
    const buf = Buffer.allocUnsafe(end - start);
    let n = spill.readInto(loc.i, buf, 0, buf.length, start);
    if (n < 0 && (await spill.fill(loc.i, loc.size, () => this.contentChunks(loc.i, { reuse: true }))))
      n = spill.readInto(loc.i, buf, 0, buf.length, start);
    return n < 0 ? null : buf.subarray(0, n);
  }

  /**
   * spilledRead for sync callers (a thread that may block): the copy is made by a synchronous
   * verification pass, or waited for while another thread makes it; -1 when there can be none.
   */
  private spilledReadSync(
    loc: Location,
    target: Uint8Array,
    offset: number,
    start: number,
    end: number,
  ): number {
    const spill = this.spill as SpillStore;
    const n = spill.readInto(loc.i, target, offset, end - start, start);
    if (n >= 0 || !ZstdStreamDecoder.available()) return n;
    if (!spill.fillSync(loc.i, loc.size, () => this.contentChunksSync(loc.i))) return -1;
    return spill.readInto(loc.i, target, offset, end - start, start);
  }

  /**
   * contentChunks for sync callers: the entry's decoded bytes in pieces (views of reused buffers,
   * valid until the next piece), size, checksum and tag checked as it ends.
   */
  private *contentChunksSync(i: number): Generator<Buffer> {
    const loc = this.locate(i);
    this.readPayloadHeadSync(loc);
    const fd = this.checkOpen();
    let from = 0;
    let to = loc.payloadSize;
    let decipher: ReturnType<typeof createDecryptor> | undefined;
    if (loc.enc) {
      decipher = this.decipherSync(loc);
      from = NONCE_SIZE;
      to = loc.payloadSize - TAG_SIZE;
    }
    const zstd = loc.comp === COMP_ZSTD ? ZstdStreamDecoder.create() : undefined;
    if (loc.comp === COMP_ZSTD && !zstd)
      throw corrupt("UNSUPPORTED", `'${loc.path}': no synchronous zstd decoder`);
    const buf = Buffer.allocUnsafe(CHUNK);
    const check = new ContentCheck(loc);
    try {
      for (let pos = from; pos < to; ) {
        const n = Math.min(CHUNK, to - pos);
        readFully(fd, buf.subarray(0, n), loc.payloadOffset + pos, loc.path);
        pos += n;
        let data = buf.subarray(0, n);
        if (decipher) data = decipherInPlace(decipher, data);
        if (!zstd) {
          yield check.take(data);
          continue;
        }
        for (const out of this.zstdPieces(loc, zstd, data, pos >= to)) yield check.take(out);
      }
    } finally {
      zstd?.close();
    }
    this.endContent(loc, check, decipher);
  }

  private async ctrRead(loc: Location, start: number, end: number): Promise<Buffer> {
    const key = await this.keys.get(loc.path);
    const nonce = Buffer.allocUnsafe(NONCE_SIZE);
    const fd = this.checkOpen();
    await readFullyAsync(fd, nonce, loc.payloadOffset, loc.path);
    const buf = Buffer.allocUnsafe(end - start);
    await readFullyAsync(fd, buf, loc.payloadOffset + NONCE_SIZE + start, loc.path);
    return decipherInPlace(createCtrDecryptor(key, nonce, start), buf);
  }

  private ctrReadSync(loc: Location, start: number, end: number): Buffer {
    const key = this.keys.getSync(loc.path);
    const nonce = Buffer.allocUnsafe(NONCE_SIZE);
    const fd = this.checkOpen();
    readFully(fd, nonce, loc.payloadOffset, loc.path);
    const buf = Buffer.allocUnsafe(end - start);
    readFully(fd, buf, loc.payloadOffset + NONCE_SIZE + start, loc.path);
    return decipherInPlace(createCtrDecryptor(key, nonce, start), buf);
  }

  private cursorRead(i: number, start: number, end: number): Promise<Buffer> {
    const run = this.cursorChain.then(() => this.cursorReadNow(i, start, end));
    this.cursorChain = run.catch(() => {});
    return run;
  }

  /**
   * Reads [start, end) of a large compressed entry by decoding forward from the nearest cursor at or
   * before `start` (a few are kept, so interleaved sequential readers — the kernel's readahead, two
   * processes — do not restart each other from the beginning).
   */
  private async cursorReadNow(i: number, start: number, end: number): Promise<Buffer> {
    let best = -1;
    for (let k = 0; k < this.cursors.length; k++) {
      const x = this.cursors[k] as Cursor;
      if (x.i === i && x.pos <= start && (best < 0 || x.pos > (this.cursors[best] as Cursor).pos)) best = k;
    }
    let c: Cursor;
    if (best >= 0) {
      c = this.cursors.splice(best, 1)[0] as Cursor;
    } else {
      // Reused pieces: a cursor copies out of its pending piece before it asks for the next one.
      c = {
        i,
        pos: 0,
        pending: Buffer.alloc(0),
        iter: this.contentChunks(i, { reuse: true })[Symbol.asyncIterator](),
      };
      if (this.cursors.length >= MAX_CURSORS) await this.cursors.shift()?.iter.return?.(undefined);
    }
    this.cursors.push(c);
    try {
      return await this.advance(c, start, end);
    } catch (e) {
      // A cursor that failed (corrupt data, closed file) is not reused.
      this.cursors = this.cursors.filter((x) => x !== c);
      throw e;
    }
  }

  private async advance(c: Cursor, start: number, end: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(end - start);
    let filled = 0;
    while (filled < out.length) {
      if (c.pending.length === 0) {
        const r = await c.iter.next();
        if (r.done) break;
        c.pending = r.value;
      }
      const pendStart = c.pos;
      const pendEnd = c.pos + c.pending.length;
      const want = start + filled;
      if (pendEnd <= want) {
        c.pos = pendEnd;
        c.pending = Buffer.alloc(0);
        continue;
      }
      const from = want - pendStart;
      const n = Math.min(c.pending.length - from, out.length - filled);
      c.pending.copy(out, filled, from, from + n);
      filled += n;
      c.pos = pendStart + from + n;
      c.pending = c.pending.subarray(from + n);
    }
    return filled === out.length ? out : out.subarray(0, filled);
  }

  /**
   * A readable stream of a file's bytes in [start, end] (inclusive end, like fs.createReadStream).
   * Ranges and encrypted entries go through `read`, so nothing unverified is released. A whole
   * unencrypted entry not yet verified streams in one pass and its checksum is checked before
   * the stream ends: corruption surfaces as an 'error' event, never as a clean end.
   */
  createReadStream(
    path: string,
    options: { start?: number; end?: number; highWaterMark?: number } = {},
  ): Readable {
    let i: number;
    try {
      i = this.fileIndex(path, "read");
    } catch (e) {
      const r = new Readable({ read() {} });
      process.nextTick(() => r.destroy(e as Error));
      return r;
    }
    const size = this.index.origSize(i);
    const start = options.start ?? 0;
    const endIncl = Math.min(options.end ?? size - 1, size - 1);
    const hwm = options.highWaterMark ?? 64 * 1024;
    const whole = start === 0 && endIncl === size - 1;
    if (whole && this.verified[i] === 0 && this.index.enc(i) === 0 && size > WHOLE_DECODE_LIMIT) {
      return Readable.from(this.contentChunks(i), { objectMode: false, highWaterMark: hwm });
    }
    const self = this;
    async function* ranged(): AsyncGenerator<Buffer> {
      let pos = start;
      while (pos <= endIncl) {
        const n = Math.min(Math.max(hwm, 64 * 1024), endIncl + 1 - pos);
        const chunk = await self.readAt(i, pos, n);
        if (chunk.length === 0) break;
        pos += chunk.length;
        yield chunk;
      }
    }
    return Readable.from(ranged(), { objectMode: false, highWaterMark: hwm });
  }

  // ---------------------------------------------------------------- symlinks

  async readlink(path: string): Promise<string> {
    const e = this.stat(path);
    if (e.type !== "symlink") {
      throw new BfcError("EINVAL", "NOT_A_SYMLINK", `not a symbolic link: '${path}'`, { path });
    }
    return this.readlinkAt(e.index);
  }

  async readlinkAt(i: number): Promise<string> {
    return this.readlinkAtSync(i);
  }

  readlinkSync(path: string): string {
    const e = this.stat(path);
    if (e.type !== "symlink") {
      throw new BfcError("EINVAL", "NOT_A_SYMLINK", `not a symbolic link: '${path}'`, { path });
    }
    return this.readlinkAtSync(e.index);
  }

  readlinkAtSync(i: number): string {
    return this.readlinkBytesAtSync(i).toString();
  }

  /** The exact target bytes of a symlink entry, checked against size and checksum. */
  readlinkBytesAtSync(i: number): Buffer {
    const loc = this.locate(i);
    if (loc.size > MAX_SYMLINK_TARGET || loc.size > loc.payloadSize) {
      throw corrupt("BAD_OBJECT", `'${loc.path}': symlink target of ${loc.size} bytes is out of range`, {
        path: loc.path,
      });
    }
    const lead = this.trust ? 0 : objectPrefixSize(loc.aad.length);
    const buf = Buffer.allocUnsafe(lead + loc.size);
    readFully(this.checkOpen(), buf, loc.payloadOffset - lead, loc.path);
    if (lead) this.checkObjectHeader(loc, buf.subarray(0, this.objectHeaderBytes(loc)));
    const target = buf.subarray(lead);
    const crc = crc32c(target);
    if (crc !== loc.crc) {
      throw corrupt("CRC_MISMATCH", `'${loc.path}': symlink target checksum mismatch`, { path: loc.path });
    }
    if (target.length === 0 || target.includes(0)) {
      throw corrupt("BAD_OBJECT", `'${loc.path}': symlink target is empty or contains NUL`, {
        path: loc.path,
      });
    }
    return Buffer.from(target);
  }

  /** Reads the object header of an entry and compares it with the index (throws BAD_OBJECT). */
  async checkObject(i: number): Promise<void> {
    const loc = this.locate(i);
    const buf = Buffer.allocUnsafe(this.objectHeaderBytes(loc));
    await readFullyAsync(
      this.checkOpen(),
      buf,
      loc.payloadOffset - objectPrefixSize(loc.aad.length),
      loc.path,
    );
    this.checkObjectHeader(loc, buf);
  }

  /**
   * Positioned read of raw container bytes (verify's sequential scan), into `into` when given:
   * reusing buffers avoids faulting in fresh pages for every batch.
   */
  async readRaw(position: number, length: number, into?: Buffer): Promise<Buffer> {
    const buf = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    await readFullyAsync(this.checkOpen(), buf, position, "container");
    return buf;
  }
}

function zstdWhole(loc: Location, frame: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    lazyZlib().zstdDecompress(frame, { maxOutputLength: Math.max(1, loc.size) }, (err, out) => {
      if (!err) return resolve(out);
      if (err instanceof RangeError || (err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") {
        reject(
          corrupt("SIZE_MISMATCH", `'${loc.path}': decodes to more than ${loc.size} bytes`, {
            path: loc.path,
          }),
        );
      } else {
        reject(
          corrupt("DECOMPRESS_FAILED", `'${loc.path}': zstd data is corrupt (${err.message})`, {
            path: loc.path,
            cause: err,
          }),
        );
      }
    });
  });
}

function checkRange(position: number, length: number): void {
  if (!Number.isSafeInteger(position) || position < 0) {
    throw new BfcError("EINVAL", "INVALID_ARGUMENT", `invalid position ${position}`);
  }
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new BfcError("EINVAL", "INVALID_ARGUMENT", `invalid length ${length}`);
  }
}

function clampRange(position: number, length: number, size: number): [number, number] {
  checkRange(position, length);
  const start = Math.min(position, size);
  return [start, Math.min(size, start + length)];
}

export { hex8 };

/** A decoding thread for a zstd entry large enough to be worth one, when one can be had. */
function zstdThreadFor(loc: Location): ZstdThreadDecoder | undefined {
  if (loc.size >= ZstdThreadDecoder.minSize) return ZstdThreadDecoder.acquire();
  return loc.size >= ZstdThreadDecoder.minIdleSize ? ZstdThreadDecoder.acquire(true) : undefined;
}

/** A decoding thread's failure as the entry's corruption. */
function threadFailure(loc: Location, t: ZstdThreadDecoder): void {
  const why = t.failure;
  if (why !== undefined) {
    throw corrupt("DECOMPRESS_FAILED", `'${loc.path}': zstd data is corrupt (${why})`, { path: loc.path });
  }
}
