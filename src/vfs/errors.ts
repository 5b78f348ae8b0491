import { BfcError, type ErrnoCode, errnoDescription, type Reason } from "../errors.ts";

/** Default reason for an errno raised by the VFS itself. */
const REASONS: Partial<Record<ErrnoCode, Reason>> = {
  ENOENT: "NOT_FOUND",
  ENOTDIR: "NOT_A_DIRECTORY",
  EISDIR: "IS_A_DIRECTORY",
  EEXIST: "ALREADY_EXISTS",
  EINVAL: "INVALID_ARGUMENT",
  EBADF: "CLOSED",
  EIO: "IO_ERROR",
};

/**
 * An error raised by a filesystem type. The kernel rewrites it into Node's message form with the VFS
 * path, so the message here is only a detail for debugging.
 */
export function fsError(code: ErrnoCode, detail?: string, reason?: Reason): BfcError {
  return new BfcError(
    code,
    reason ?? REASONS[code] ?? "IO_ERROR",
    detail ?? `${code}: ${errnoDescription(code)}`,
  );
}

/**
 * A Node-style system error: `ENOENT: no such file or directory, open '/x'`, with `code`, `errno`,
 * `syscall`, `path` (and `dest` for two-path calls), as node:fs throws them. It is a BfcError, so its
 * `reason` says more than the errno (AUTH_FAILED, CRC_MISMATCH…) when a container is at fault.
 */
export function nodeError(
  code: ErrnoCode,
  syscall: string,
  path?: string,
  dest?: string,
  cause?: unknown,
): BfcError {
  let message = `${code}: ${errnoDescription(code)}, ${syscall}`;
  if (path !== undefined) message += ` '${path}'`;
  if (dest !== undefined) message += ` -> '${dest}'`;
  const inner = cause instanceof BfcError ? cause : undefined;
  // Container faults carry their own detail ("CRC mismatch in …"); keep it visible.
  if (
    inner &&
    inner.reason !== "NOT_FOUND" &&
    inner.reason !== (REASONS[code] ?? "IO_ERROR") &&
    inner.message
  ) {
    message += ` (${inner.message})`;
  }
  const err = new BfcError(code, inner?.reason ?? REASONS[code] ?? "IO_ERROR", message, {
    path,
    syscall,
    cause,
  });
  if (dest !== undefined) (err as BfcError & { dest?: string }).dest = dest;
  return err;
}

/**
 * Converts anything a filesystem type threw into a Node-style error for `syscall` on the VFS path.
 * Programming errors (TypeError and the like) pass through unchanged.
 */
export function toNodeError(e: unknown, syscall: string, path?: string, dest?: string): unknown {
  if (e instanceof BfcError) {
    if (e.syscall === syscall && e.path === path && e.message.startsWith(`${e.code}: `)) return e;
    return nodeError(e.code, syscall, path, dest, e);
  }
  const sys = e as NodeJS.ErrnoException;
  if (sys && typeof sys.code === "string" && /^E[A-Z0-9]+$/.test(sys.code)) {
    return nodeError(sys.code as ErrnoCode, syscall, path, dest, e);
  }
  return e;
}
