/**
 * The contract between the VFS kernel and a filesystem type.
 *
 * The kernel owns everything path-shaped: it splits and walks paths, crosses mount points, resolves
 * symlinks with a hop limit, decides ENOENT vs ENOTDIR, checks EROFS and tracks file positions. A
 * filesystem type only answers questions about canonical paths relative to its own root ("" is the
 * root, "a/b" a descendant; never a leading slash, empty, "." or ".." component) whose parent the
 * kernel has already resolved to a directory of this filesystem.
 *
 * Metadata calls are synchronous in every type (the index of a container, a zip's central directory
 * and a memory tree are already in memory; the host type makes one syscall). Data calls have optional
 * async forms that the kernel's promise and callback APIs prefer, so large reads do not block the
 * event loop.
 *
 * Errors: a type throws a BfcError (src/errors.ts) whose `code` is the errno name; the kernel rewrites
 * the message into Node's `CODE: description, syscall 'path'` form with the VFS path and keeps the
 * type's error as `cause` (and its `reason`). Node system errors (from node:fs) are accepted too.
 */

/** The kinds of node a filesystem can hold. */
export type FileType = "file" | "directory" | "symlink" | "block" | "character" | "fifo" | "socket";

/** What the kernel needs to build an `fs.Stats`. */
export interface NodeStat {
  type: FileType;
  /** Full st_mode: file-type bits (S_IFMT) and permission bits. */
  mode: number;
  size: number;
  /** Stable for the same entry for the life of the mount; the root's ino is the type's choice. */
  ino: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  /** 512-byte blocks actually used (stored size for containers). */
  blocks: number;
  mtimeMs: number;
  mtimeNs: bigint;
  /** Default to the mtime when the type does not record them. */
  atimeMs?: number;
  atimeNs?: bigint;
  ctimeMs?: number;
  ctimeNs?: bigint;
  birthtimeMs?: number;
  birthtimeNs?: bigint;
}

export interface DirEntry {
  name: string;
  type: FileType;
  /** The child's inode number, when the type knows it without a lookup (what `lstat` would say). */
  ino?: number;
}

/** d_type of each file type, as `readdir(3)` reports it (DT_REG, DT_DIR, DT_LNK, …). */
export const D_TYPES: Readonly<Record<FileType, number>> = {
  fifo: 1,
  character: 2,
  directory: 4,
  block: 6,
  file: 8,
  symlink: 10,
  socket: 12,
};

/**
 * A directory's children with their names as UTF-8 bytes, for adapters that write names as bytes
 * (the FUSE server): a type that keeps names encoded hands them out without a string per child.
 */
export interface EncodedListing {
  count: number;
  /** Holds every name; read-only (it may be the type's own storage, such as a container index). */
  bytes: Buffer;
  /** Child k's name is bytes[starts[k], ends[k]). Children are in name (byte) order, without duplicates. */
  starts: Int32Array;
  ends: Int32Array;
  /** Child k's d_type (D_TYPES). */
  types: Uint8Array;
  /** Child k's inode number, what `lstat` would report. */
  inos: Float64Array;
}

/** An open file of a filesystem type. Positions are absolute; the kernel tracks the file offset. */
export interface FileHandle {
  stat(): NodeStat;
  /** Reads up to `length` bytes at `position` into `buffer[offset…]`; returns bytes read (0 at EOF). */
  read(buffer: Uint8Array, offset: number, length: number, position: number): number;
  readAsync?(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /**
   * True when `read` costs at most one positioned read or a memory copy (no whole-file decode), so a
   * caller with a dedicated thread (the FUSE adapter) may call it instead of `readAsync`.
   */
  readonly syncReadCheap?: boolean;
  /** Writable types only. Writing past the end extends the file (a gap reads as zeros). */
  write?(buffer: Uint8Array, offset: number, length: number, position: number): number;
  writeAsync?(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  truncate?(length: number): void;
  chmod?(mode: number): void;
  utimes?(atimeNs: bigint, mtimeNs: bigint): void;
  sync?(): void;
  /** A flush the async APIs wait for (a writable container commits); `sync` may only start it. */
  syncAsync?(): Promise<void>;
  close(): void;
  closeAsync?(): Promise<void>;
}

export interface Capabilities {
  /** No mutation is ever possible; the kernel answers EROFS for every write call. */
  readonly: boolean;
  symlinks: boolean;
  /**
   * True when `lstat(path)` can only succeed if every ancestor of `path` is a directory of this
   * filesystem (a tree or a container index, where nothing can live beneath a symlink). The kernel
   * then resolves paths with one `lstat` instead of one per component. False for the host type,
   * whose `lstat` would follow symlinks in parent components at the OS level.
   */
  structuralLookup: boolean;
  /**
   * Nothing changes while mounted, neither through the VFS nor from outside (a container or an
   * archive read once): the kernel may keep what it has listed. Not so for a read-only host
   * folder, which others can change.
   */
  immutable?: boolean;
}

export interface StatFs {
  type: number;
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
}

/** Flags passed to `open`, as numbers from `fs.constants` (O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, …). */
export type OpenFlags = number;

export interface FileSystem {
  readonly capabilities: Capabilities;
  /** The entry at `path`, not following a final symlink; undefined when absent. Never throws for absence. */
  lstat(path: string): NodeStat | undefined;
  /** Children of a directory (the kernel checked it is one), in the type's natural order. */
  readdir(path: string): DirEntry[];
  /**
   * Children with their stats, when the type can produce them cheaper than `readdir` and an `lstat`
   * per child (a container index holds a directory's entries side by side). Same order as `readdir`.
   */
  readdirStats?(path: string): { name: string; stat: NodeStat }[];
  /**
   * Children with names as bytes, where the type stores them encoded (same children and order as
   * `readdir`); undefined where this directory needs `readdir` after all.
   */
  readdirEncoded?(path: string): EncodedListing | undefined;
  /** Target of a symlink (the kernel checked it is one), exactly as stored. */
  readlink(path: string): string;
  /**
   * Opens a regular file. With O_CREAT on a writable type the file is created when absent (the kernel
   * checked the parent is a directory and handles O_EXCL and O_TRUNC itself).
   */
  open(path: string, flags: OpenFlags, mode: number): FileHandle;
  openAsync?(path: string, flags: OpenFlags, mode: number): Promise<FileHandle>;
  /** Whole-file fast paths; the kernel falls back to open/read/close. */
  readFile?(path: string): Buffer;
  readFileAsync?(path: string): Promise<Buffer>;
  statfs?(): StatFs;

  // Mutations: present only on writable types. The kernel has resolved the parent directory and
  // checked the mount is writable; the type enforces the rest of POSIX (EEXIST, ENOTEMPTY, EISDIR…).
  mkdir?(path: string, mode: number): void;
  rmdir?(path: string): void;
  unlink?(path: string): void;
  /** Same filesystem only (the kernel answers EXDEV across mounts). Replaces `to` as rename(2) does. */
  rename?(from: string, to: string): void;
  symlink?(target: string, path: string): void;
  chmod?(path: string, mode: number): void;
  utimes?(path: string, atimeNs: bigint, mtimeNs: bigint): void;
  truncate?(path: string, length: number): void;
  /** Flushes staged state (writable types that buffer). */
  sync?(): void | Promise<void>;

  /** Called once at unmount; release files and memory. */
  close?(): void | Promise<void>;
}

/** A registrable filesystem type: `vfs.mount(type.name, target, options)` calls `create(options)`. */
export interface FileSystemType<Options = Record<string, unknown>> {
  name: string;
  capabilities: Capabilities;
  /** Checks the options and opens the filesystem. */
  create(options: Options): Promise<FileSystem>;
  /** For `vfs.mountSync`; types that can only open asynchronously leave it out. */
  createSync?(options: Options): FileSystem;
}
