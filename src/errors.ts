import { constants as osConstants } from "node:os";

/** errno names we use; each maps to the platform's errno number for Node-style errors. */
export type ErrnoCode =
  | "ENOENT"
  | "ENOTDIR"
  | "EISDIR"
  | "EINVAL"
  | "EACCES"
  | "EIO"
  | "EEXIST"
  | "EROFS"
  | "ELOOP"
  | "EFBIG"
  | "ENAMETOOLONG"
  | "ENOTEMPTY"
  | "EBADF"
  | "EPERM"
  | "EDQUOT"
  | "ENOSPC"
  | "ENOTSUP"
  | "EXDEV"
  | "EMFILE"
  | "ECANCELED"
  | "EBUSY"
  | "ENOSYS"
  | "ENXIO";

/**
 * Why an operation failed, more specific than the errno: callers (and the CLI's exit codes and messages)
 * branch on this, so each reason names one kind of fault.
 */
export type Reason =
  | "BAD_MAGIC"
  | "BAD_HEADER"
  | "BAD_FOOTER"
  | "BAD_INDEX"
  | "BAD_OBJECT"
  | "BAD_PATH"
  | "CRC_MISMATCH"
  | "SIZE_MISMATCH"
  | "DIGEST_MISMATCH"
  | "TRUNCATED"
  | "AUTH_FAILED"
  | "KEY_REQUIRED"
  | "BAD_KEY"
  | "DECOMPRESS_FAILED"
  | "UNSUPPORTED"
  | "NOT_FOUND"
  | "NOT_A_DIRECTORY"
  | "IS_A_DIRECTORY"
  | "NOT_A_FILE"
  | "NOT_A_SYMLINK"
  | "DUPLICATE_PATH"
  | "PATH_CONFLICT"
  | "INVALID_ARGUMENT"
  | "ALREADY_EXISTS"
  | "UNSAFE_PATH"
  | "SOURCE_CHANGED"
  | "IO_ERROR"
  | "CLOSED"
  | "STALE_MOUNT"
  | "LOCKED"
  | "RESOURCE_LIMIT_EXCEEDED"
  | "NOT_EMPTY"
  | "SIGNATURE_INVALID"
  | "ABORTED"
  /** A disk image's mapping or partition table contradicts itself or points outside the image. */
  | "BAD_TABLE"
  /** A chain (backing files, extended partitions) loops back on itself or is too long. */
  | "LOOP"
  /** The caller must choose (e.g. which partition) and did not. */
  | "AMBIGUOUS"
  /** A filesystem inside a disk image (ext2/3/4) has inconsistent or out-of-range structures. */
  | "BAD_FILESYSTEM"
  /** An ext3/4 journal was not replayed (the filesystem was not cleanly unmounted). */
  | "NEEDS_RECOVERY"
  /** The runtime's own configuration file is invalid (the message names the key). */
  | "BAD_CONFIG"
  /** An OCI bundle is invalid: config.json missing or wrong (the message names the JSON path), no rootfs. */
  | "BAD_BUNDLE"
  /** The operation is not allowed in the container's current status (start a running one, …). */
  | "BAD_STATE"
  /** The OCI runtime (runc) is missing or failed. */
  | "RUNTIME_FAILED";

const DESCRIPTIONS: Record<ErrnoCode, string> = {
  ENOENT: "no such file or directory",
  ENOTDIR: "not a directory",
  EISDIR: "illegal operation on a directory",
  EINVAL: "invalid argument",
  EACCES: "permission denied",
  EIO: "i/o error",
  EEXIST: "file already exists",
  EROFS: "read-only file system",
  ELOOP: "too many symbolic links encountered",
  EFBIG: "file too large",
  ENAMETOOLONG: "name too long",
  ENOTEMPTY: "directory not empty",
  EBADF: "bad file descriptor",
  EPERM: "operation not permitted",
  EDQUOT: "disk quota exceeded",
  ENOSPC: "no space left on device",
  ENOTSUP: "operation not supported",
  EXDEV: "cross-device link not permitted",
  EMFILE: "too many open files",
  ECANCELED: "operation canceled",
  EBUSY: "resource busy or locked",
  ENOSYS: "function not implemented",
  ENXIO: "no such device or address",
};

export function errnoNumber(code: ErrnoCode): number {
  const n = (osConstants.errno as Record<string, number>)[code];
  return n === undefined ? -1 : -n;
}

export function errnoDescription(code: ErrnoCode): string {
  return DESCRIPTIONS[code] ?? code.toLowerCase();
}

export interface BfcErrorOptions {
  /** The container path or entry path at fault. */
  path?: string;
  /** The on-disk field at fault, e.g. "footer.index_size". */
  field?: string;
  syscall?: string;
  cause?: unknown;
}

/**
 * The one error type of the library. `code` is an errno name so that code written for `node:fs`
 * errors keeps working; `reason` says precisely what went wrong.
 */
export class BfcError extends Error {
  readonly code: ErrnoCode;
  readonly errno: number;
  readonly reason: Reason;
  readonly path?: string;
  readonly field?: string;
  readonly syscall?: string;

  constructor(code: ErrnoCode, reason: Reason, message: string, options: BfcErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "BfcError";
    this.code = code;
    this.errno = errnoNumber(code);
    this.reason = reason;
    if (options.path !== undefined) this.path = options.path;
    if (options.field !== undefined) this.field = options.field;
    if (options.syscall !== undefined) this.syscall = options.syscall;
  }
}

export function isBfcError(e: unknown): e is BfcError {
  return e instanceof BfcError;
}

/** Corruption of the container's own structures. */
export function corrupt(reason: Reason, message: string, options: BfcErrorOptions = {}): BfcError {
  return new BfcError("EIO", reason, message, options);
}

/** Wraps a Node system error (from fs) in a BfcError that keeps its errno code. */
export function fromSystemError(e: unknown, what: string, path?: string): BfcError {
  if (e instanceof BfcError) return e;
  const err = e as NodeJS.ErrnoException;
  const code = (typeof err?.code === "string" ? err.code : "EIO") as ErrnoCode;
  const known = code in DESCRIPTIONS ? code : "EIO";
  const detail = err?.message ?? String(e);
  return new BfcError(known, "IO_ERROR", `${what}: ${detail}`, {
    path,
    syscall: err?.syscall,
    cause: e,
  });
}
