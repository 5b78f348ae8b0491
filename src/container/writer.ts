import { randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Readable } from "node:stream";
import { crc32c } from "../codec/crc32c.ts";
import { deriveKey } from "../codec/kdf.ts";
import { ZSTD_DEFAULT_LEVEL, ZSTD_MAX_LEVEL, ZSTD_MIN_LEVEL } from "../codec/zstd.ts";
import { BfcError, fromSystemError } from "../errors.ts";
import {
  align16,
  COMP_NONE,
  COMP_ZSTD,
  DEFAULT_BLOCK_SIZE,
  ENC_CHACHA20_POLY1305,
  ENC_NONE,
  FEATURE_AEAD,
  FEATURE_ZSTD,
  HEADER_SIZE,
  MAX_BLOCK_SIZE,
  OBJ_DIR,
  OBJ_FILE,
  OBJ_SYMLINK,
  OBJECT_HEADER_SIZE,
  PERM_MASK,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  SALT_SIZE,
} from "../format/constants.ts";
import {
  type ContainerMetadata,
  type EntryAttrs,
  type Extension,
  encodeExtension,
  entryAttrsRecordSize,
  type Hardlink,
  type ObjectName,
  type ResourceLimits,
  type SpecialEntry,
  writeEntryAttrsRecord,
} from "../format/extension.ts";
import { encodeFooter } from "../format/footer.ts";
import { encodeHeader } from "../format/header.ts";
import type { IndexRecord } from "../format/index-table.ts";
import { encodeObjectHeader, objectPrefixSize } from "../format/object-header.ts";
import { normalizePath, referenceCanLookUp } from "../format/path.ts";
import { ByteArena } from "./byte-arena.ts";
import { shouldCompress } from "./compressibility.ts";
import { InlineStream } from "./inline-stream.ts";
import { type Credentials, checkCredentials } from "./keys.ts";
import { OutputFile } from "./output-file.ts";
import { RecordStore } from "./record-store.ts";
import { InlineTransformer, transformOne } from "./transform.ts";
import { type StreamSession, TransformPool } from "./transform-pool.ts";

export type Compression = "none" | "zstd" | "auto";

export interface WriterOptions extends Credentials {
  /** Replace an existing file at the target path (default: fail with EEXIST). */
  overwrite?: boolean;
  /** "auto" decides per file from its name and content. Default "none", as the reference. */
  compression?: Compression;
  /** zstd level 1..22 (default 3). */
  level?: number;
  /** Files smaller than this are stored uncompressed (default 64 bytes, as the reference). */
  threshold?: number;
  /** Recorded in the header only (default 4096). */
  blockSize?: number;
  /**
   * Worker threads for compression and encryption (default: available cores). 0 transforms on the
   * writer's own thread, synchronously, through reused zstd contexts and buffers, and a large file
   * added by position is written before its add resolves: slower with many cores, but no worker
   * isolates and nothing allocated per file, so the least memory.
   */
  workers?: number;
  onWarning?: (message: string, path?: string) => void;
  /** Called as each entry is written. */
  onEntry?: (entry: AddedEntry) => void;
  onProgress?: (progress: WriteProgress) => void;
  /**
   * Container metadata and resource limits, stored in the index's extension area (docs/format.md).
   * Without them the container is laid out exactly as the reference writes it.
   */
  metadata?: ContainerMetadata;
  limits?: ResourceLimits;
  /**
   * The 4096-byte header to write verbatim (compaction keeps a container's UUID and salt); the
   * content must then be copied raw or encrypted with `key`, the key that salt belongs to.
   */
  templateHeader?: Buffer;
}

export interface AddedEntry {
  path: string;
  type: "file" | "directory" | "symlink";
  size: number;
  storedSize: number;
  crc32c: number;
  compressed: boolean;
  target?: string;
}

export interface WriteProgress {
  entries: number;
  bytes: number;
  path: string;
}

/** Metadata for entries added from memory; from a file, the file's own is used unless given. */
export interface EntryMeta {
  /** Permission bits (setuid/setgid/sticky kept); type bits are ignored. */
  mode?: number;
  /** Date, milliseconds since the epoch, or nanoseconds as a bigint. */
  mtime?: Date | number | bigint;
}

export interface WriteSummary {
  path: string;
  entries: number;
  /** Entries carried over unchanged from the previous commit (0 for a new container). */
  carried: number;
  files: number;
  directories: number;
  symlinks: number;
  bytesIn: number;
  bytesStored: number;
  size: number;
  warnings: string[];
}

export type FileSource = string | Uint8Array | Readable | AsyncIterable<Uint8Array>;

/**
 * Content of a known size read by position (a file inside a disk image): it can be read twice, so
 * a large file streams without being spooled even when compression may have to be undone.
 */
export interface PositionalSource {
  readonly size: number;
  /** Fills `buf` from `position`; returns the bytes read (short only at the end). */
  read(buf: Buffer, position: number): number;
  /** Called once the content is no longer needed (written, or the writer failed). */
  close?(): void;
  /** Names the source in errors (default: the entry's path). */
  label?: string;
}

/**
 * Where a commit's writer puts its output: into an existing container, after its last complete
 * commit. The container's owner (Container) holds the descriptor, the lock and the key.
 */
export interface AppendTarget {
  fd: number;
  /** End of the last complete commit: the first byte this commit writes. */
  start: number;
  key: Buffer | null;
}

/** Stored bytes of an existing object's payload, copied verbatim under a new name. */
export interface RawPayload {
  fd: number;
  offset: number;
  /** Stored (payload) bytes. */
  storedSize: number;
  comp: number;
  /**
   * Encryption of the payload. An encrypted payload is bound to its path (the AEAD's associated
   * data), so it may only be copied under the same path.
   */
  enc: number;
  /** Original size and checksum of the content. */
  size: number;
  crc: number;
}

/** Files up to this size are read whole and transformed as one job; larger ones stream. */
const SMALL_FILE = 4 * 1024 * 1024;
const CHUNK = 256 * 1024;
/** Bytes read ahead of the output (memory bound of the pipeline). */
const WINDOW_BYTES = 64 * 1024 * 1024;
const WINDOW_JOBS = 8192;
/** How long a large file is streamed at most before the event loop gets a turn. */
const YIELD_MS = 50;
/** A streamed job's share of the window: it holds only a few chunks at a time. */
const STREAM_JOB_BYTES = 8 * CHUNK;

interface Payload {
  data: Buffer;
  comp: number;
  crc: number;
}

interface Job {
  path: string;
  /** The path's bytes: by their handle in the writer's arena, and as a view. */
  pathRef: number;
  pathBytes: Buffer;
  kind: "file" | "directory" | "symlink";
  mode: number;
  mtimeNs: bigint;
  size: number;
  /** Window share, released when written. */
  weight: number;
  payload?: Payload;
  pending?: Promise<Payload>;
  target?: Buffer;
  stream?: StreamSource;
  raw?: RawPayload;
  done?: { resolve: () => void; reject: (e: unknown) => void };
}

/** A large file's content, read chunk by chunk when its turn comes. */
interface StreamSource {
  /** Known size, or -1 for a stream of unknown length. */
  size: number;
  /** Positioned reads (a file, a spooled stream, a PositionalSource); else `iterator`. */
  read?: (buf: Buffer, position: number) => number;
  close?: () => void;
  iterator?: AsyncIterator<Uint8Array>;
  head?: Buffer;
  label: string;
  compress: boolean;
  /** A stream of unknown length: counted against the byte limits as it is written. */
  uncounted?: boolean;
}

function toNs(m: Date | number | bigint | undefined, fallback: bigint): bigint {
  if (m === undefined) return fallback;
  if (typeof m === "bigint") return m;
  const ms = m instanceof Date ? m.getTime() : m;
  if (!Number.isFinite(ms)) throw new BfcError("EINVAL", "INVALID_ARGUMENT", `invalid mtime ${String(m)}`);
  return BigInt(Math.round(ms * 1e6));
}

function nowNs(): bigint {
  return BigInt(Date.now()) * 1000000n;
}

function isAsyncIterable(x: unknown): x is AsyncIterable<Uint8Array> {
  return x !== null && typeof x === "object" && Symbol.asyncIterator in x;
}

/**
 * Writes a new container. Output goes to a temporary file beside the target, which is renamed
 * into place by `finish()` only when everything succeeded; `abort()` (or any failure) removes it.
 */
export class Writer {
  readonly path: string;
  private readonly tmpPath: string;
  /** Set for a commit appended to an existing container; null for a new container. */
  private readonly appendTo: AppendTarget | null;
  private extension: Partial<Extension>;
  private carried = 0;
  /**
   * Attributes BFC v1 has no field for, by canonical path, written to the extension area: each
   * entry's record of that table, already encoded, by its handle in `arena`.
   */
  private readonly attrs = new Map<string, number>();
  /** What the resource limits count, for containers created with limits. */
  private usage = { files: 0, directories: 0, bytes: 0 };
  /** Hard links added: path → the regular file it links to; resolved at finish. */
  private readonly links = new Map<string, string>();
  private readonly special: SpecialEntry[] = [];
  /** Carried entries whose object was written under another path: path → that path's bytes. */
  private readonly objectNames = new Map<string, Buffer>();
  /** Bytes of small files transformed on this thread before the worker pool is started. */
  private inlineBudget = 1024 * 1024;
  private readonly opts: WriterOptions;
  private readonly level: number;
  private readonly threshold: number;
  private readonly compression: Compression;
  private readonly key: Buffer | null;
  private readonly out: OutputFile;
  private pool: TransformPool | null = null;
  /** With `workers: 0`: the zstd contexts small files are compressed with on this thread. */
  private transformer: InlineTransformer | null = null;
  private scratch: Buffer | null = null;

  /** Index paths and encoded attributes, kept until finish. */
  private readonly arena = new ByteArena();
  private readonly records = new RecordStore(this.arena);
  /** Every path added, and its kind: O(1) duplicate and conflict checks. */
  private readonly kinds = new Map<string, "file" | "directory" | "symlink">();
  /** Paths that exist as parents of added entries. */
  private readonly parents = new Map<string, number>();
  private readonly queue: Job[] = [];
  private pumping = false;
  private windowBytes = 0;
  private roomWaiters: (() => void)[] = [];
  private failure: unknown = null;
  private state: "open" | "finishing" | "done" = "open";
  private readonly warnings: string[] = [];
  private stats = { files: 0, directories: 0, symlinks: 0, bytesIn: 0, bytesStored: 0 };

  private constructor(
    target: string,
    tmpPath: string,
    fd: number,
    key: Buffer | null,
    opts: WriterOptions,
    appendTo: AppendTarget | null = null,
  ) {
    this.path = target;
    this.tmpPath = tmpPath;
    this.appendTo = appendTo;
    this.extension = { metadata: opts.metadata, limits: opts.limits };
    this.opts = opts;
    this.level = opts.level ?? ZSTD_DEFAULT_LEVEL;
    this.threshold = opts.threshold ?? 64;
    this.compression = opts.compression ?? "none";
    this.key = key;
    this.out = new OutputFile(fd, appendTo ? appendTo.start : HEADER_SIZE);
  }

  /**
   * A writer for one commit of an existing container (used by Container): objects are appended
   * after `target.start`, and `finish()` writes the new index and footer in place, with the index
   * made durable before the footer that makes it current. `abort()` cuts the file back to `start`.
   */
  static forCommit(containerPath: string, target: AppendTarget, options: WriterOptions = {}): Writer {
    const compression = options.compression ?? "none";
    const level = options.level ?? ZSTD_DEFAULT_LEVEL;
    const threshold = options.threshold ?? 64;
    const abs = path.resolve(containerPath);
    const tmpPath = path.join(
      path.dirname(abs),
      `.${path.basename(abs)}.bfc-commit-${process.pid}-${randomBytes(4).toString("hex")}`,
    );
    return new Writer(
      abs,
      tmpPath,
      target.fd,
      target.key,
      { ...options, compression, level, threshold },
      target,
    );
  }

  /** Replaces what the index's extension area will hold (metadata, limits, commit chain, …). */
  setExtension(ext: Partial<Extension>): void {
    this.extension = ext;
  }

  /**
   * Records uid, gid, extra times or xattrs of an entry added (or to be added) under `name`; they
   * go to the extension area, which the reference ignores.
   */
  setAttributes(name: string, attrs: EntryAttrs): void {
    const p = normalizePath(name);
    if (!Object.values(attrs).some((v) => v !== undefined)) {
      this.attrs.delete(p);
      return;
    }
    const n = entryAttrsRecordSize(attrs);
    const h = this.arena.alloc(n);
    // Its index is known only at finish.
    writeEntryAttrsRecord(this.arena.view(h, n), 0, 0, attrs);
    this.attrs.set(p, h);
  }

  /**
   * Adds a hard link: another name for a regular file added earlier, sharing its object (no second
   * copy of the content). Its index entry points at the same object; the extension area records
   * the link so readers check the object under the file's own name. The reference reads it like
   * any file, except in encrypted containers, where the content is bound to the first name.
   */
  async addHardlink(name: string, target: string, meta: { attrs?: EntryAttrs } = {}): Promise<void> {
    const t = normalizePath(target);
    if (this.kinds.get(t) !== "file" || this.links.has(t) || this.special.some((e) => e.path === t)) {
      throw new BfcError(
        "EINVAL",
        "INVALID_ARGUMENT",
        `hard link target '${t}' is not a regular file added before`,
        {
          path: name,
        },
      );
    }
    const p = this.claim(name, "file");
    this.links.set(p, t);
    if (meta.attrs) this.setAttributes(p, meta.attrs);
  }

  /**
   * Records that a carried entry (addRecord) is a hard link to another carried entry whose object
   * it shares (a commit keeping both unchanged).
   */
  linkCarried(name: string, target: string): void {
    this.links.set(name, target);
  }

  /** Adds a device node, fifo or socket: kept in the extension area (BFC v1 has no such entries). */
  addSpecial(
    name: string,
    spec: {
      mode: number;
      rdevMajor?: number;
      rdevMinor?: number;
      mtime?: Date | number | bigint;
      attrs?: EntryAttrs;
    },
  ): void {
    const fmt = spec.mode & S_IFMT;
    if (![0o020000, 0o060000, 0o010000, 0o140000].includes(fmt)) {
      throw new BfcError(
        "EINVAL",
        "INVALID_ARGUMENT",
        `'${name}': mode 0${spec.mode.toString(8)} is not a device, fifo or socket`,
      );
    }
    const p = this.claim(name, "file");
    this.special.push({
      path: p,
      mode: spec.mode,
      rdevMajor: spec.rdevMajor ?? 0,
      rdevMinor: spec.rdevMinor ?? 0,
      mtimeNs: toNs(spec.mtime, nowNs()),
      attrs: spec.attrs,
    });
  }

  /**
   * Carries an existing index entry into this container unchanged: its object is already in the
   * file (a commit keeps every unchanged object where it is). The path is claimed like any other.
   * `objectName` is the path the object was written under when it differs from the record's (a
   * renamed entry keeps its object): the extension area records it for readers (record 10).
   */
  addRecord(record: IndexRecord, objectName?: string): void {
    const p = record.pathBytes.toString();
    const fmt = record.mode & S_IFMT;
    if (objectName !== undefined && objectName !== p && record.enc !== 0) {
      // The reference authenticates an encrypted payload with the index path.
      throw new BfcError("EINVAL", "INVALID_ARGUMENT", `'${p}': an encrypted object cannot change its name`, {
        path: p,
      });
    }
    this.claim(p, fmt === S_IFDIR ? "directory" : fmt === S_IFLNK ? "symlink" : "file", false);
    this.records.push(p, this.arena.put(record.pathBytes), record.pathBytes.length, record);
    if (objectName !== undefined && objectName !== p) this.objectNames.set(p, Buffer.from(objectName));
    this.carried++;
  }

  /**
   * Adds a file whose stored payload (plain or zstd, not encrypted) is copied byte for byte from
   * an existing object: a rename rewrites the object header and name, never the content.
   */
  async addRawCopy(name: string, raw: RawPayload, meta: { mode: number; mtimeNs: bigint }): Promise<void> {
    const p = this.claim(name, "file");
    await this.waitForRoom(STREAM_JOB_BYTES);
    this.enqueue({
      ...this.named(p),
      kind: "file",
      mode: S_IFREG | (meta.mode & PERM_MASK),
      mtimeNs: meta.mtimeNs,
      size: raw.size,
      weight: STREAM_JOB_BYTES,
      raw,
    });
  }

  /** Creates the temporary output and writes the header. */
  static async create(target: string, options: WriterOptions = {}): Promise<Writer> {
    const compression = options.compression ?? "none";
    if (!["none", "zstd", "auto"].includes(compression)) {
      throw new BfcError("EINVAL", "INVALID_ARGUMENT", `unknown compression '${compression}'`);
    }
    const level = options.level ?? ZSTD_DEFAULT_LEVEL;
    if (!Number.isInteger(level) || level < ZSTD_MIN_LEVEL || level > ZSTD_MAX_LEVEL) {
      throw new BfcError("EINVAL", "INVALID_ARGUMENT", `compression level must be 1..22, got ${level}`);
    }
    const threshold = options.threshold ?? 64;
    if (!Number.isInteger(threshold) || threshold < 0) {
      throw new BfcError(
        "EINVAL",
        "INVALID_ARGUMENT",
        `compression threshold must be >= 0, got ${threshold}`,
      );
    }
    const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
    if (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > MAX_BLOCK_SIZE) {
      throw new BfcError(
        "EINVAL",
        "INVALID_ARGUMENT",
        `block size must be 1..${MAX_BLOCK_SIZE}, got ${blockSize}`,
      );
    }
    checkCredentials(options);
    if (options.templateHeader && options.templateHeader.length !== HEADER_SIZE) {
      throw new BfcError("EINVAL", "INVALID_ARGUMENT", `a template header is ${HEADER_SIZE} bytes`);
    }
    if (options.templateHeader && options.password !== undefined) {
      throw new BfcError(
        "EINVAL",
        "INVALID_ARGUMENT",
        "a template header keeps its salt: give the key, not a password",
      );
    }
    const abs = path.resolve(target);
    if (!options.overwrite && fs.existsSync(abs)) {
      throw new BfcError("EEXIST", "ALREADY_EXISTS", `'${target}' already exists (overwrite not requested)`, {
        path: target,
      });
    }
    const salt = Buffer.alloc(SALT_SIZE);
    let key: Buffer | null = null;
    if (options.password !== undefined) {
      randomBytes(SALT_SIZE).copy(salt);
      key = await deriveKey(options.password, salt);
    } else if (options.key !== undefined) {
      key = Buffer.from(options.key);
    }
    let features = 0;
    if (compression !== "none") features |= FEATURE_ZSTD;
    if (key) features |= FEATURE_AEAD;
    const header =
      options.templateHeader ??
      encodeHeader({
        blockSize,
        features,
        uuid: Buffer.from(randomUUID().replaceAll("-", ""), "hex"),
        salt,
      });
    const tmpPath = path.join(
      path.dirname(abs),
      `.${path.basename(abs)}.bfc-tmp-${process.pid}-${randomBytes(4).toString("hex")}`,
    );
    let fd: number;
    try {
      fd = fs.openSync(tmpPath, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
    } catch (e) {
      throw fromSystemError(e, `cannot create '${target}'`, target);
    }
    const w = new Writer(abs, tmpPath, fd, key, { ...options, compression, level, threshold });
    try {
      w.out.patch(header, 0);
    } catch (e) {
      await w.abort();
      throw fromSystemError(e, `cannot write '${target}'`, target);
    }
    return w;
  }

  // ------------------------------------------------------------ validation

  private warn(message: string, p?: string): void {
    this.warnings.push(message);
    this.opts.onWarning?.(message, p);
  }

  private checkUsable(): void {
    if (this.failure) throw this.failure;
    if (this.state !== "open") {
      throw new BfcError("EINVAL", "CLOSED", "the writer is finished or aborted", { path: this.path });
    }
  }

  /** Normalizes and claims a path; throws (before any byte is written) on duplicates and conflicts. */
  private claim(name: string, kind: "file" | "directory" | "symlink", canonicalize = true): string {
    this.checkUsable();
    const p = canonicalize ? normalizePath(name) : name;
    const existing = this.kinds.get(p);
    if (existing !== undefined) {
      throw new BfcError("EEXIST", "DUPLICATE_PATH", `'${p}' was already added`, { path: p });
    }
    if (kind !== "directory" && this.parents.has(p)) {
      throw new BfcError("EEXIST", "PATH_CONFLICT", `'${p}' is already a directory of other entries`, {
        path: p,
      });
    }
    let slash = p.indexOf("/");
    while (slash >= 0) {
      const parent = p.slice(0, slash);
      const k = this.kinds.get(parent);
      if (k !== undefined && k !== "directory") {
        throw new BfcError("ENOTDIR", "PATH_CONFLICT", `cannot add '${p}': '${parent}' is a ${k}`, {
          path: p,
        });
      }
      slash = p.indexOf("/", slash + 1);
    }
    if (this.limited()) this.countEntry(p, kind);
    this.kinds.set(p, kind);
    // Each parent counts the entries claimed beneath it, so a failed add can release its claim.
    for (let s = p.lastIndexOf("/"); s >= 0; s = p.lastIndexOf("/", s - 1)) {
      const parent = p.slice(0, s);
      this.parents.set(parent, (this.parents.get(parent) ?? 0) + 1);
    }
    if (canonicalize && !referenceCanLookUp(p)) {
      this.warn(`'${p}' ends in '.': stored, but the reference bfc tool cannot look it up by name`, p);
    }
    return p;
  }

  /** Limits apply to what a new container holds; a commit's Container checks its whole tree itself. */
  private limited(): boolean {
    return this.opts.limits !== undefined && this.appendTo === null;
  }

  /** Counts an entry (and the directories it implies) against maxFiles/maxDirectories first. */
  private countEntry(p: string, kind: "file" | "directory" | "symlink"): void {
    let dirs = 0;
    if (kind === "directory" && !this.parents.has(p)) dirs++;
    for (let s = p.lastIndexOf("/"); s >= 0; s = p.lastIndexOf("/", s - 1)) {
      const parent = p.slice(0, s);
      if (!this.parents.has(parent) && this.kinds.get(parent) !== "directory") dirs++;
    }
    const l = this.opts.limits!;
    const files = kind === "directory" ? 0 : 1;
    if (l.maxFiles !== undefined && this.usage.files + files > l.maxFiles) {
      throw limitError(p, "maxFiles", this.usage.files + files, l.maxFiles);
    }
    if (l.maxDirectories !== undefined && this.usage.directories + dirs > l.maxDirectories) {
      throw limitError(p, "maxDirectories", this.usage.directories + dirs, l.maxDirectories);
    }
    this.usage.files += files;
    this.usage.directories += dirs;
  }

  /** Checks a file's size (known up front, or as much as has streamed) against the byte limits. */
  private countBytes(p: string, size: number, added: number): void {
    if (!this.limited()) return;
    const l = this.opts.limits!;
    if (l.maxFileSize !== undefined && size > l.maxFileSize)
      throw limitError(p, "maxFileSize", size, l.maxFileSize);
    if (l.maxTotalBytes !== undefined && this.usage.bytes + added > l.maxTotalBytes) {
      throw limitError(p, "maxTotalBytes", this.usage.bytes + added, l.maxTotalBytes);
    }
    this.usage.bytes += added;
  }

  private unclaim(p: string): void {
    if (this.limited()) {
      if (this.kinds.get(p) === "directory") this.usage.directories--;
      else this.usage.files--;
    }
    this.kinds.delete(p);
    for (let s = p.lastIndexOf("/"); s >= 0; s = p.lastIndexOf("/", s - 1)) {
      const parent = p.slice(0, s);
      const n = (this.parents.get(parent) ?? 1) - 1;
      if (n > 0) this.parents.set(parent, n);
      else this.parents.delete(parent);
    }
  }

  /** A job's path, its bytes kept in the arena until finish (for the index). */
  private named(p: string): { path: string; pathRef: number; pathBytes: Buffer } {
    const n = Buffer.byteLength(p);
    const pathRef = this.arena.putString(p, n);
    return { path: p, pathRef, pathBytes: this.arena.view(pathRef, n) };
  }

  private wantsCompression(name: string, head: Uint8Array, size: number): boolean {
    if (this.compression === "none" || size < this.threshold || size === 0) return false;
    if (this.compression === "zstd") return true;
    return shouldCompress(name, head);
  }

  // ------------------------------------------------------------ adding

  async addDirectory(name: string, meta: EntryMeta = {}): Promise<void> {
    const p = this.claim(name, "directory");
    this.enqueue({
      ...this.named(p),
      kind: "directory",
      mode: S_IFDIR | ((meta.mode ?? 0o755) & PERM_MASK),
      mtimeNs: toNs(meta.mtime, nowNs()),
      size: 0,
      weight: 64,
    });
  }

  async addSymlink(name: string, target: string | Uint8Array, meta: EntryMeta = {}): Promise<void> {
    const t = typeof target === "string" ? Buffer.from(target) : Buffer.from(target);
    if (t.length === 0 || t.includes(0)) {
      throw new BfcError(
        "EINVAL",
        "INVALID_ARGUMENT",
        `symlink target of '${name}' is empty or contains NUL`,
        {
          path: name,
        },
      );
    }
    const p = this.claim(name, "symlink");
    this.enqueue({
      ...this.named(p),
      kind: "symlink",
      mode: S_IFLNK | ((meta.mode ?? 0o777) & PERM_MASK),
      mtimeNs: toNs(meta.mtime, nowNs()),
      size: t.length,
      weight: 64 + t.length,
      target: t,
    });
  }

  /**
   * Adds a regular file from a path on disk (its mode and mtime are kept unless given), from bytes
   * in memory, or from a stream. Resolves once the file is queued; errors reading a queued file fail
   * the writer (and are reported by the next call or by finish). Stream sources resolve once written.
   */
  async addFile(name: string, source: FileSource, meta: EntryMeta = {}): Promise<void> {
    const p = this.claim(name, "file");
    try {
      if (typeof source === "string") await this.addFromPath(p, source, meta);
      else if (source instanceof Uint8Array)
        await this.addFromBuffer(p, Buffer.from(source.buffer, source.byteOffset, source.byteLength), meta);
      else if (isAsyncIterable(source)) await this.addFromStream(p, source, meta);
      else throw new BfcError("EINVAL", "INVALID_ARGUMENT", `unsupported source for '${p}'`, { path: p });
    } catch (e) {
      // Before it was queued the failure is this call's alone; after, the writer has failed anyway.
      if (!this.failure) this.unclaim(p);
      throw e instanceof BfcError ? e : fromSystemError(e, `cannot read the source of '${p}'`, p);
    }
  }

  private async addFromBuffer(p: string, data: Buffer, meta: EntryMeta): Promise<void> {
    this.countBytes(p, data.length, data.length);
    await this.waitForRoom(data.length);
    const mode = S_IFREG | ((meta.mode ?? 0o644) & PERM_MASK);
    this.enqueueSmall(p, data, mode, toNs(meta.mtime, nowNs()));
  }

  private async addFromPath(p: string, file: string, meta: EntryMeta): Promise<void> {
    let fd: number;
    let st: fs.BigIntStats;
    try {
      fd = fs.openSync(file, "r");
    } catch (e) {
      throw fromSystemError(e, `cannot open '${file}'`, file);
    }
    try {
      st = fs.fstatSync(fd, { bigint: true });
    } catch (e) {
      fs.closeSync(fd);
      throw fromSystemError(e, `cannot stat '${file}'`, file);
    }
    if (!st.isFile()) {
      fs.closeSync(fd);
      throw new BfcError(
        st.isDirectory() ? "EISDIR" : "EINVAL",
        "NOT_A_FILE",
        `'${file}' is not a regular file`,
        {
          path: file,
        },
      );
    }
    const mode = S_IFREG | ((meta.mode ?? Number(st.mode)) & PERM_MASK);
    const mtimeNs = toNs(meta.mtime, st.mtimeNs);
    await this.addFromFd(p, file, fd, Number(st.size), mode, mtimeNs);
  }

  /** Adds an open file; takes ownership of fd. */
  private addFromFd(
    p: string,
    label: string,
    fd: number,
    size: number,
    mode: number,
    mtimeNs: bigint,
  ): Promise<void> {
    const read = (buf: Buffer, position: number): number => {
      try {
        return readSome(fd, buf, position);
      } catch (e) {
        throw fromSystemError(e, `cannot read '${label}'`, label);
      }
    };
    return this.addPositional(p, label, read, () => fs.closeSync(fd), size, mode, mtimeNs);
  }

  /**
   * Adds a regular file whose content is read by position (see PositionalSource): the source is
   * read when the file's turn comes, small files whole, large ones streamed in chunks.
   */
  async addFileFrom(name: string, source: PositionalSource, meta: EntryMeta = {}): Promise<void> {
    const p = this.claim(name, "file");
    const close = () => source.close?.();
    try {
      if (!Number.isSafeInteger(source.size) || source.size < 0) {
        close();
        throw new BfcError("EINVAL", "INVALID_ARGUMENT", `invalid size ${source.size} for '${p}'`, {
          path: p,
        });
      }
      const mode = S_IFREG | ((meta.mode ?? 0o644) & PERM_MASK);
      const read = (buf: Buffer, position: number) => source.read(buf, position);
      await this.addPositional(
        p,
        source.label ?? p,
        read,
        close,
        source.size,
        mode,
        toNs(meta.mtime, nowNs()),
      );
    } catch (e) {
      if (!this.failure) this.unclaim(p);
      throw e;
    }
  }

  /** Adds content read by position; `close` is called exactly once, whatever happens. */
  private async addPositional(
    p: string,
    label: string,
    read: (buf: Buffer, position: number) => number,
    close: () => void,
    size: number,
    mode: number,
    mtimeNs: bigint,
  ): Promise<void> {
    try {
      this.countBytes(p, size, size);
    } catch (e) {
      close();
      throw e;
    }
    if (size <= SMALL_FILE) {
      let data: Buffer;
      try {
        await this.waitForRoom(size);
        // Written at once when it is transformed here (or not at all) and nothing is queued: the
        // bytes can then go through one reused buffer instead of a fresh allocation per file.
        const here = this.opts.workers === 0 || (this.compression === "none" && !this.key);
        const direct = here && !this.pumping && this.queue.length === 0;
        if (direct) this.scratch ??= Buffer.allocUnsafe(SMALL_FILE);
        data = readExactly(read, size, label, direct ? this.scratch : undefined);
      } finally {
        close();
      }
      this.enqueueSmall(p, data, mode, mtimeNs);
      return;
    }
    let head: Buffer;
    try {
      await this.waitForRoom(STREAM_JOB_BYTES);
      head = readExactly(read, Math.min(16384, size), label);
    } catch (e) {
      close();
      throw e;
    }
    const job: Job = {
      ...this.named(p),
      kind: "file",
      mode,
      mtimeNs,
      size,
      weight: STREAM_JOB_BYTES,
      stream: { size, read, close, label, compress: this.wantsCompression(p, head, size) },
    };
    if (this.opts.workers !== 0) {
      this.enqueue(job);
      return;
    }
    // Everything happens on this thread anyway: the files after this one wait until it is written,
    // and then go straight out through the reused buffers instead of queueing copies behind it.
    await new Promise<void>((resolve, reject) => {
      job.done = { resolve, reject };
      this.enqueue(job);
    });
  }

  private async addFromStream(p: string, source: AsyncIterable<Uint8Array>, meta: EntryMeta): Promise<void> {
    const mode = S_IFREG | ((meta.mode ?? 0o644) & PERM_MASK);
    const mtimeNs = toNs(meta.mtime, nowNs());
    const it = source[Symbol.asyncIterator]();
    const parts: Buffer[] = [];
    let total = 0;
    let ended = false;
    while (total <= SMALL_FILE) {
      const r = await it.next();
      if (r.done) {
        ended = true;
        break;
      }
      const b = Buffer.from(r.value);
      parts.push(b);
      total += b.length;
    }
    if (ended) {
      this.countBytes(p, total, total);
      await this.waitForRoom(total);
      this.enqueueSmall(p, Buffer.concat(parts, total), mode, mtimeNs);
      return;
    }
    await this.waitForRoom(STREAM_JOB_BYTES);
    const head = Buffer.concat(parts, total);
    const done = new Promise<void>((resolve, reject) => {
      this.enqueue({
        ...this.named(p),
        kind: "file",
        mode,
        mtimeNs,
        size: -1,
        weight: STREAM_JOB_BYTES,
        stream: {
          size: -1,
          iterator: it,
          head,
          label: p,
          compress: this.wantsCompression(p, head, total),
          uncounted: true,
        },
        done: { resolve, reject },
      });
    });
    await done;
  }

  private enqueueSmall(p: string, data: Buffer, mode: number, mtimeNs: bigint): void {
    const job: Job = {
      ...this.named(p),
      kind: "file",
      mode,
      mtimeNs,
      size: data.length,
      weight: data.length + 64,
    };
    const compress = this.wantsCompression(p, data, data.length);
    if (!compress && !this.key) {
      job.payload = { data, comp: COMP_NONE, crc: crc32c(data) };
    } else if (this.opts.workers === 0) {
      this.transformer ??= new InlineTransformer();
      const r = this.transformer.transform(data, compress ? this.level : 0, this.key, job.pathBytes);
      // The payload (a frame, or a sealed payload) is a view of the transformer's buffers, which
      // the next file reuses: a job that waits in the queue owns a copy.
      let out = r.payload;
      if (out !== data && (this.pumping || this.queue.length > 0)) {
        out = Buffer.allocUnsafeSlow(r.payload.length);
        r.payload.copy(out);
      }
      job.payload = { data: out, comp: r.comp, crc: r.crc };
    } else if (!this.pool && this.inlineBudget >= data.length) {
      // Starting worker threads costs more than transforming a few small files here (a commit of
      // one change); the pool takes over once the work adds up.
      this.inlineBudget -= data.length;
      const r = transformOne(data, compress ? this.level : 0, this.key, job.pathBytes);
      job.payload = { data: r.payload, comp: r.comp, crc: r.crc };
    } else {
      this.pool ??= new TransformPool(this.key, this.opts.workers);
      const pending = this.pool
        .transform(data, compress ? this.level : 0, this.key !== null, Uint8Array.from(job.pathBytes))
        .then((r) => ({ data: r.payload, comp: r.comp, crc: r.crc }));
      // A failed transform fails the writer when its turn comes; avoid an unhandled rejection meanwhile.
      pending.catch(() => {});
      job.pending = pending;
    }
    this.enqueue(job);
  }

  /**
   * Adds a directory tree: `root` itself becomes `prefix` (when given), its contents follow in
   * byte-wise name order, each directory before its children. Regular files, directories and
   * symlinks are stored; other file types are skipped with a warning.
   */
  async addTree(root: string, prefix = ""): Promise<void> {
    this.checkUsable();
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(root, { bigint: true });
    } catch (e) {
      throw fromSystemError(e, `cannot read '${root}'`, root);
    }
    if (!st.isDirectory()) {
      throw new BfcError("ENOTDIR", "NOT_A_DIRECTORY", `'${root}' is not a directory`, { path: root });
    }
    const base = prefix === "" ? "" : normalizePath(prefix);
    if (base !== "") await this.addDirectory(base, { mode: Number(st.mode), mtime: st.mtimeNs });
    await this.walk(root, base);
  }

  private async walk(dir: string, prefix: string): Promise<void> {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch (e) {
      throw fromSystemError(e, `cannot read directory '${dir}'`, dir);
    }
    const keyed = names.map((n) => ({ n, k: Buffer.from(n) }));
    keyed.sort((a, b) => Buffer.compare(a.k, b.k));
    for (const { n } of keyed) {
      const full = path.join(dir, n);
      const name = prefix === "" ? n : `${prefix}/${n}`;
      let st: fs.BigIntStats;
      try {
        st = fs.lstatSync(full, { bigint: true });
      } catch (e) {
        throw fromSystemError(e, `cannot stat '${full}'`, full);
      }
      if (st.isFile()) {
        await this.addFileEntry(name, full);
      } else if (st.isDirectory()) {
        await this.addDirectory(name, { mode: Number(st.mode), mtime: st.mtimeNs });
        await this.walk(full, name);
      } else if (st.isSymbolicLink()) {
        let target: Buffer;
        try {
          target = fs.readlinkSync(full, { encoding: "buffer" });
        } catch (e) {
          throw fromSystemError(e, `cannot read link '${full}'`, full);
        }
        await this.addSymlink(name, target, { mode: Number(st.mode), mtime: st.mtimeNs });
      } else {
        this.warn(`skipped '${full}': not a regular file, directory or symlink`, full);
      }
    }
  }

  /** A regular file met while walking: opened without following a symlink swapped in meanwhile. */
  private async addFileEntry(name: string, full: string): Promise<void> {
    const p = this.claim(name, "file");
    try {
      let fd: number;
      try {
        fd = fs.openSync(full, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      } catch (e) {
        throw fromSystemError(e, `cannot open '${full}'`, full);
      }
      let st: fs.BigIntStats;
      try {
        st = fs.fstatSync(fd, { bigint: true });
        if (!st.isFile())
          throw new BfcError("EINVAL", "SOURCE_CHANGED", `'${full}' changed type while reading`, {
            path: full,
          });
      } catch (e) {
        fs.closeSync(fd);
        throw fromSystemError(e, `cannot stat '${full}'`, full);
      }
      await this.addFromFd(p, full, fd, Number(st.size), S_IFREG | (Number(st.mode) & PERM_MASK), st.mtimeNs);
    } catch (e) {
      if (!this.failure) this.unclaim(p);
      throw e instanceof BfcError ? e : fromSystemError(e, `cannot read the source of '${p}'`, p);
    }
  }

  // ------------------------------------------------------------ pipeline

  private async waitForRoom(bytes: number): Promise<void> {
    while (
      (this.windowBytes > 0 && this.windowBytes + bytes > WINDOW_BYTES) ||
      this.queue.length >= WINDOW_JOBS ||
      this.transformsFull(bytes)
    ) {
      this.checkUsable();
      await new Promise<void>((r) => this.roomWaiters.push(r));
    }
    this.checkUsable();
  }

  /**
   * Whether small files handed to the worker pool already keep every worker busy: more would only
   * pile up as copies in flight (memory), not go faster.
   */
  private transformsFull(bytes: number): boolean {
    const pool = this.pool;
    return pool !== null && pool.pendingBytes > 0 && pool.pendingBytes + bytes > pool.window;
  }

  private wake(): void {
    for (const w of this.roomWaiters.splice(0)) w();
  }

  private enqueue(job: Job): void {
    if (!this.pumping && this.queue.length === 0 && job.payload && !job.stream) {
      // Nothing ahead of it and nothing to wait for: write now, skipping the pump.
      try {
        this.emitReady(job, job.payload);
      } catch (e) {
        this.fail(e);
        throw e;
      }
      return;
    }
    this.queue.push(job);
    this.windowBytes += job.weight;
    if (!this.pumping) void this.pump();
  }

  private fail(e: unknown): void {
    this.failure ??= e;
    for (const j of this.queue) {
      j.done?.reject(e);
      closeStream(j.stream);
    }
    this.queue.length = 0;
    this.windowBytes = 0;
    this.wake();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.queue.length > 0 && !this.failure) {
        const job = this.queue[0];
        if (job.stream) await this.emitStream(job, job.stream);
        else if (job.raw) this.emitRaw(job, job.raw);
        else if (job.kind === "file") this.emitReady(job, job.payload ?? (await job.pending!));
        else this.emitReady(job, null);
        this.queue.shift();
        this.windowBytes -= job.weight;
        job.done?.resolve();
        if (this.roomWaiters.length) this.wake();
      }
    } catch (e) {
      const job = this.queue[0];
      const err =
        e instanceof BfcError || !job ? e : fromSystemError(e, `cannot add '${job.path}'`, job.path);
      job?.done?.reject(err);
      this.fail(err);
    } finally {
      this.pumping = false;
    }
  }

  private record(
    job: Job,
    objOffset: number,
    objSize: number,
    comp: number,
    enc: number,
    size: number,
    crc: number,
  ): void {
    this.records.push(job.path, job.pathRef, job.pathBytes.length, {
      objOffset,
      objSize,
      mode: job.mode,
      mtimeNs: job.mtimeNs,
      comp,
      enc,
      origSize: size,
      crc,
    });
    if (job.kind === "file") {
      this.stats.files++;
      this.stats.bytesIn += size;
      this.stats.bytesStored += objSize;
    } else if (job.kind === "directory") this.stats.directories++;
    else this.stats.symlinks++;
    this.opts.onEntry?.({
      path: job.path,
      type: job.kind,
      size,
      storedSize: objSize,
      crc32c: crc,
      compressed: comp !== COMP_NONE,
      target: job.target?.toString(),
    });
    this.opts.onProgress?.({ entries: this.records.count, bytes: this.stats.bytesIn, path: job.path });
  }

  /** Writes an object whose payload is complete in memory (or a directory/symlink). */
  private emitReady(job: Job, payload: Payload | null): void {
    const nameLen = job.pathBytes.length;
    const prefix = objectPrefixSize(nameLen);
    const objOffset = this.out.position;
    let type = OBJ_DIR;
    let comp = COMP_NONE;
    let enc = ENC_NONE;
    let size = 0;
    let encSize = 0;
    let crc = 0;
    let body: Buffer | null = null;
    let bodyPadded = 0;
    if (job.kind === "file") {
      type = OBJ_FILE;
      body = payload!.data;
      comp = payload!.comp;
      enc = this.key ? ENC_CHACHA20_POLY1305 : ENC_NONE;
      size = job.size;
      encSize = body.length;
      crc = payload!.crc;
      bodyPadded = body.length;
    } else if (job.kind === "symlink") {
      type = OBJ_SYMLINK;
      body = job.target!;
      size = body.length;
      encSize = body.length;
      crc = crc32c(body);
      bodyPadded = align16(body.length);
    }
    const small = prefix + bodyPadded <= 256 * 1024;
    const head = small ? this.out.reserve(prefix + bodyPadded) : Buffer.alloc(prefix);
    head.fill(0, 0, prefix);
    encodeObjectHeader(
      { type, comp, enc, nameLen, mode: job.mode, mtimeNs: job.mtimeNs, origSize: size, encSize, crc },
      head,
      0,
    );
    job.pathBytes.copy(head, OBJECT_HEADER_SIZE);
    if (small) {
      if (body) {
        body.copy(head, prefix);
        head.fill(0, prefix + body.length, prefix + bodyPadded);
      }
      this.out.commit(prefix + bodyPadded);
    } else {
      this.out.append(head);
      this.out.append(body!);
    }
    this.record(job, objOffset, prefix + bodyPadded, comp, enc, size, crc);
  }

  /** Writes a new object around a payload copied from elsewhere in the file. */
  private emitRaw(job: Job, raw: RawPayload): void {
    const nameLen = job.pathBytes.length;
    const prefix = objectPrefixSize(nameLen);
    const objOffset = this.out.position;
    const head = Buffer.alloc(prefix);
    encodeObjectHeader(
      {
        type: OBJ_FILE,
        comp: raw.comp,
        enc: raw.enc,
        nameLen,
        mode: job.mode,
        mtimeNs: job.mtimeNs,
        origSize: raw.size,
        encSize: raw.storedSize,
        crc: raw.crc,
      },
      head,
      0,
    );
    job.pathBytes.copy(head, OBJECT_HEADER_SIZE);
    this.out.append(head);
    const buf = Buffer.allocUnsafe(Math.min(CHUNK * 4, Math.max(1, raw.storedSize)));
    let done = 0;
    while (done < raw.storedSize) {
      const want = Math.min(buf.length, raw.storedSize - done);
      const chunk = buf.subarray(0, want);
      let got = 0;
      while (got < want) {
        const n = readSome(raw.fd, chunk.subarray(got), raw.offset + done + got);
        if (n === 0) throw new BfcError("EIO", "TRUNCATED", `'${job.path}': source object is truncated`);
        got += n;
      }
      this.out.append(chunk);
      done += want;
    }
    this.record(job, objOffset, prefix + raw.storedSize, raw.comp, raw.enc, raw.size, raw.crc);
  }

  /** Streams a large file's content through the transforms into the output. */
  private async emitStream(job: Job, src: StreamSource): Promise<void> {
    try {
      if (src.iterator && src.compress) await this.spool(src);
      const nameLen = job.pathBytes.length;
      const prefix = objectPrefixSize(nameLen);
      const objOffset = this.out.position;
      const head = Buffer.alloc(prefix);
      job.pathBytes.copy(head, OBJECT_HEADER_SIZE);
      this.out.append(head);
      const contentStart = this.out.position;
      let r = await this.streamContent(job, src, src.compress);
      src.uncounted = false;
      if (r.comp === COMP_ZSTD && r.frameLen >= r.size) {
        // zstd did not help: store the original bytes instead, as the reference does.
        this.out.rewind(contentStart);
        const first = r;
        r = await this.streamContent(job, src, false);
        if (r.crc !== first.crc || r.size !== first.size) {
          throw new BfcError("EIO", "SOURCE_CHANGED", `'${src.label}' changed while it was being read`, {
            path: src.label,
          });
        }
      }
      const encSize = this.out.position - contentStart;
      const enc = this.key ? ENC_CHACHA20_POLY1305 : ENC_NONE;
      job.size = r.size;
      const hdr = encodeObjectHeader({
        type: OBJ_FILE,
        comp: r.comp,
        enc,
        nameLen,
        mode: job.mode,
        mtimeNs: job.mtimeNs,
        origSize: r.size,
        encSize,
        crc: r.crc,
      });
      this.out.patch(hdr, objOffset);
      this.record(job, objOffset, prefix + encSize, r.comp, enc, r.size, r.crc);
    } finally {
      closeStream(src);
    }
  }

  /** A stream that may need a second pass (compression fallback) is first copied to a scratch file. */
  private async spool(src: StreamSource): Promise<void> {
    const scratch = `${this.tmpPath}.spool`;
    const fd = fs.openSync(scratch, "w+", 0o600);
    try {
      fs.unlinkSync(scratch);
      let pos = 0;
      const put = (b: Uint8Array) => {
        let done = 0;
        while (done < b.length) done += fs.writeSync(fd, b, done, b.length - done, pos + done);
        pos += b.length;
      };
      if (src.head) put(src.head);
      for (;;) {
        const r = await src.iterator!.next();
        if (r.done) break;
        put(r.value);
      }
      src.read = (buf, position) => readSome(fd, buf, position);
      src.close = () => fs.closeSync(fd);
      src.size = pos;
      src.iterator = undefined;
      src.head = undefined;
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /** One pass over the source: returns size, checksum and the compressed frame length. */
  private async streamContent(
    job: Job,
    src: StreamSource,
    compress: boolean,
  ): Promise<{ size: number; crc: number; comp: number; frameLen: number }> {
    const level = compress ? this.level : 0;
    const encrypt = this.key !== null;
    let session: StreamSession | InlineStream | null = null;
    if (level > 0 || encrypt) {
      const aad = Uint8Array.from(job.pathBytes);
      const onData = (b: Buffer) => this.out.append(b);
      if (this.opts.workers === 0) session = new InlineStream(level, this.key, aad, src.size, onData);
      else {
        this.pool ??= new TransformPool(this.key, this.opts.workers);
        session = this.pool.openStream(level, encrypt, aad, src.size, onData);
      }
    }
    let crc = 0;
    let size = 0;
    const counted = src.uncounted === true;
    const put = async (chunk: Buffer) => {
      crc = crc32c(chunk, crc);
      size += chunk.length;
      // Streams of unknown length count as they flow (sized sources were counted when added).
      if (counted) this.countBytes(job.path, size, chunk.length);
      if (session) await session.write(chunk);
      else this.out.append(chunk);
    };
    if (src.read) {
      const reusable = session ? null : Buffer.allocUnsafe(CHUNK);
      let turn = performance.now();
      for (;;) {
        if (performance.now() - turn > YIELD_MS) {
          // Read (and with `workers: 0` compressed) on this thread without waiting for anything:
          // let the event loop turn now and then.
          await new Promise((resolve) => setImmediate(resolve));
          turn = performance.now();
        }
        const want = src.size >= 0 ? Math.min(CHUNK, src.size - size) : CHUNK;
        if (want === 0) break;
        const buf = reusable ? reusable.subarray(0, want) : session!.buffer(want);
        let n: number;
        try {
          n = src.read(buf, size);
        } catch (e) {
          throw e instanceof BfcError ? e : fromSystemError(e, `cannot read '${src.label}'`, src.label);
        }
        if (n === 0) {
          throw new BfcError("EIO", "SOURCE_CHANGED", `'${src.label}' shrank while it was being read`, {
            path: src.label,
          });
        }
        await put(n === buf.length ? buf : buf.subarray(0, n));
      }
    } else {
      if (src.head) await put(src.head);
      for (;;) {
        const r = await src.iterator!.next();
        if (r.done) break;
        await put(Buffer.from(r.value));
      }
    }
    let frameLen = 0;
    if (session) {
      const end = await session.end();
      frameLen = end.frameLen;
      if (end.tag) this.out.append(end.tag);
    }
    this.opts.onProgress?.({
      entries: this.records.count,
      bytes: this.stats.bytesIn + size,
      path: job.path,
    });
    return { size, crc, comp: level > 0 ? COMP_ZSTD : COMP_NONE, frameLen };
  }

  // ------------------------------------------------------------ finishing

  /** Waits for queued entries, writes index and footer, syncs and moves the file into place. */
  async finish(): Promise<WriteSummary> {
    if (this.failure && this.state === "open") {
      // A queued entry failed earlier: clean up as any failure does, then report it.
      const f = this.failure;
      await this.abort();
      throw f;
    }
    this.checkUsable();
    this.state = "finishing";

    try {
      while (this.pumping || this.queue.length) {
        if (!this.pumping) await this.pump();
        else await new Promise<void>((r) => this.roomWaiters.push(r));
        if (this.failure) throw this.failure;
      }
      if (this.failure) throw this.failure;
      const records = this.records;
      if (this.links.size > 0) {
        const byPath = new Map<string, number>();
        for (let k = 0; k < records.count; k++) byPath.set(records.path(k), k);
        for (const [p, t] of this.links) {
          if (byPath.has(p)) continue;
          const target = byPath.get(t);
          if (target === undefined)
            throw new BfcError("EINVAL", "INVALID_ARGUMENT", `hard link target '${t}' was never written`);
          const n = Buffer.byteLength(p);
          records.push(p, this.arena.putString(p, n), n, records.fields(target));
        }
      }
      const order = records.sorted();
      const ext = { ...this.extension };
      if (this.links.size > 0) {
        const at = new Map<string, number>();
        order.forEach((r, k) => {
          at.set(records.path(r), k);
        });
        const hl: Hardlink[] = [];
        for (const [p, t] of this.links) hl.push({ entry: at.get(p)!, target: at.get(t)! });
        hl.sort((a, b) => a.entry - b.entry);
        ext.hardlinks = hl;
      }
      if (this.objectNames.size > 0) {
        const names: ObjectName[] = [];
        order.forEach((r, entry) => {
          const name = this.objectNames.get(records.path(r));
          if (name) names.push({ entry, name });
        });
        ext.objectNames = names;
      } else {
        delete ext.objectNames;
      }
      if (this.special.length > 0) {
        ext.special = [...(ext.special ?? []), ...this.special].sort((a, b) =>
          Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)),
        );
      }
      if (this.attrs.size > 0) ext.entryAttrs = this.entryAttrsTable(order);
      const indexOffset = this.out.position;
      const index = records.writeIndex(order, encodeExtension(ext), (piece) => this.out.append(piece));
      const footer = encodeFooter({ indexSize: index.size, indexCrc: index.crc, indexOffset });
      let size: number;
      if (this.appendTo) {
        // Objects and index must be on disk before the footer that makes them the current
        // commit: a crash in between leaves a torn tail and the previous commit intact.
        this.out.flush();
        await fsyncAsync(this.out.fd);
        this.out.append(footer);
        this.out.flush();
        size = this.out.position;
        fs.ftruncateSync(this.out.fd, size);
        await fsyncAsync(this.out.fd);
      } else {
        this.out.append(footer);
        this.out.flush();
        size = this.out.position;
        fs.ftruncateSync(this.out.fd, size);
        await fsyncAsync(this.out.fd);
        fs.closeSync(this.out.fd);
        this.place();
      }
      this.state = "done";
      this.transformer?.close();
      await this.pool?.close();
      return {
        path: this.path,
        entries: this.records.count,
        carried: this.carried,
        files: this.stats.files,
        directories: this.stats.directories,
        symlinks: this.stats.symlinks,
        bytesIn: this.stats.bytesIn,
        bytesStored: this.stats.bytesStored,
        size,
        warnings: this.warnings,
      };
    } catch (e) {
      await this.abort();
      throw e instanceof BfcError ? e : fromSystemError(e, `cannot write '${this.path}'`, this.path);
    }
  }

  /**
   * The extension area's entry-attributes table (as encodeEntryAttrs writes it): the records
   * encoded by setAttributes, in index order, each given its entry's index. Undefined when no
   * entry written has attributes.
   */
  private entryAttrsTable(order: readonly number[]): Buffer | undefined {
    const arena = this.arena;
    const length = (h: number) => 8 + arena.chunk(h).readUInt32LE(ByteArena.offset(h) + 4);
    let size = 4;
    let count = 0;
    for (const r of order) {
      const h = this.attrs.get(this.records.path(r));
      if (h === undefined) continue;
      size += length(h);
      count++;
    }
    if (count === 0) return undefined;
    const out = Buffer.allocUnsafe(size);
    out.writeUInt32LE(count, 0);
    let q = 4;
    order.forEach((r, index) => {
      const h = this.attrs.get(this.records.path(r));
      if (h === undefined) return;
      const at = ByteArena.offset(h);
      const n = arena.chunk(h).copy(out, q, at, at + length(h));
      out.writeUInt32LE(index, q);
      q += n;
    });
    return out;
  }

  /** Renames the finished temporary file over the target (or links it, refusing to replace). */
  private place(): void {
    if (this.opts.overwrite) {
      fs.renameSync(this.tmpPath, this.path);
    } else {
      try {
        fs.linkSync(this.tmpPath, this.path);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "EEXIST") {
          throw new BfcError(
            "EEXIST",
            "ALREADY_EXISTS",
            `'${this.path}' appeared while writing; not replaced`,
            {
              path: this.path,
            },
          );
        }
        // File systems without hard links: check, then rename.
        if (fs.existsSync(this.path)) {
          throw new BfcError("EEXIST", "ALREADY_EXISTS", `'${this.path}' already exists`, {
            path: this.path,
          });
        }
        fs.renameSync(this.tmpPath, this.path);
        this.syncDir();
        return;
      }
      fs.unlinkSync(this.tmpPath);
    }
    this.syncDir();
  }

  private syncDir(): void {
    try {
      const dfd = fs.openSync(path.dirname(this.path), "r");
      try {
        fs.fsyncSync(dfd);
      } finally {
        fs.closeSync(dfd);
      }
    } catch {
      // Some file systems refuse fsync on directories; the rename itself has happened.
    }
  }

  /** Discards everything: the temporary file is removed and the target is left untouched. */
  async abort(): Promise<void> {
    if (this.state === "done" && !this.failure) return;
    this.state = "done";
    this.fail(
      this.failure ?? new BfcError("ECANCELED", "ABORTED", "the writer was aborted", { path: this.path }),
    );
    if (this.appendTo) {
      // Nothing references the bytes written after the last commit: cut them off again.
      try {
        fs.ftruncateSync(this.out.fd, this.appendTo.start);
      } catch {}
      this.transformer?.close();
      await this.pool?.close();
      this.pool = null;
      return;
    }
    try {
      fs.closeSync(this.out.fd);
    } catch {
      // already closed
    }
    try {
      fs.unlinkSync(this.tmpPath);
    } catch {
      // already gone
    }
    this.transformer?.close();
    await this.pool?.close();
    this.pool = null;
  }
}

function limitError(p: string, limit: string, value: number, max: number): BfcError {
  return new BfcError(
    "EDQUOT",
    "RESOURCE_LIMIT_EXCEEDED",
    `'${p}': ${limit} limit exceeded (${value} > ${max})`,
    {
      path: p,
      field: limit,
    },
  );
}

function fsyncAsync(fd: number): Promise<void> {
  return new Promise<void>((res, rej) => fs.fsync(fd, (e) => (e ? rej(e) : res())));
}

function readSome(fd: number, buf: Buffer, position: number): number {
  return fs.readSync(fd, buf, 0, buf.length, position);
}

/** Releases a stream's source once (its descriptor, or whatever a PositionalSource holds). */
function closeStream(src: StreamSource | undefined): void {
  const close = src?.close;
  if (!src || !close) return;
  src.close = undefined;
  close();
}

/** Reads exactly `size` bytes from the start of the content; content that shrank is an error. */
function readExactly(
  read: (buf: Buffer, position: number) => number,
  size: number,
  label: string,
  into?: Buffer | null,
): Buffer {
  // Not from Node's shared pool: a small slice of a pool slab would keep the whole slab, and the
  // path bytes kept beside it, alive.
  const buf = into ? into.subarray(0, size) : Buffer.allocUnsafeSlow(size);

  let done = 0;
  while (done < size) {
    let n: number;
    try {
      n = read(buf.subarray(done), done);
    } catch (e) {
      throw e instanceof BfcError ? e : fromSystemError(e, `cannot read '${label}'`, label);
    }
    if (n === 0) {
      throw new BfcError("EIO", "SOURCE_CHANGED", `'${label}' shrank while it was being read`, {
        path: label,
      });
    }
    done += n;
  }
  return buf;
}
