import { type ErrnoCode, errnoNumber } from "../errors.ts";

/** Negative errno numbers the FUSE servers answer with directly. */
export const EPERM = -1;
export const ENOENT = -2;
export const EIO = -5;
export const EBADF = -9;
export const ENOMEM = -12;
export const EEXIST = -17;
export const ENOTDIR = -20;
export const EINVAL = -22;
export const EROFS = -30;
export const ENOSYS = -38;
export const EPROTO = -71;
export const ESTALE = -116;

/** The negative errno for anything the VFS threw (EIO when it carries none). */
export function errnoOf(e: unknown): number {
  const n = (e as { errno?: unknown })?.errno;
  if (typeof n === "number" && n < 0) return n;
  const code = (e as { code?: unknown })?.code;
  if (typeof code === "string") {
    const v = errnoNumber(code as ErrnoCode);
    if (v !== -1 || code === "EPERM") return v;
  }
  return EIO;
}
