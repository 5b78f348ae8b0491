/**
 * Writing one regular file of a container into the destination: the part of extraction that
 * extract.ts runs for each file and that extraction threads (extract-worker.ts) run for batches.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { BfcError, fromSystemError } from "../errors.ts";
import { PERM_MASK } from "../format/constants.ts";
import type { EntryAttrs } from "../format/extension.ts";
import type { Entry, Reader } from "./reader.ts";

/** What writing a file needs to know about the extraction. */
export interface FileCtx {
  reader: Reader;
  /** The destination (absolute). */
  root: string;
  overwrite: boolean;
  /** chown what is created to the recorded owner. */
  sameOwner: boolean;
  /** The process's umask, when known: files are then created with their permissions. */
  umask: number | undefined;
}

export function seconds(ns: bigint): number {
  return Number(ns) / 1e9;
}

export function attrsOf(ctx: FileCtx, e: Entry): EntryAttrs | undefined {
  return e.index >= 0 ? ctx.reader.attributesAt(e.index) : undefined;
}

/** The access time to restore: the recorded one, else the mtime (as before attributes existed). */
export function atimeOf(e: Entry, a: EntryAttrs | undefined): number {
  return seconds(a?.atimeNs ?? e.mtimeNs);
}

/** The file a regular entry is being written to: `tmp` replaces `full` once complete (or is it). */
interface Target {
  fd: number;
  tmp: string;
  /** Created with its final permissions (no fchmod needed). */
  modeSet: boolean;
}

const CREATE_FLAGS =
  fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

/**
 * Opens what `rel` is written through. A new name (the usual case) is created at once with O_EXCL,
 * so nothing can be there and nothing is looked up first; only a name that exists is examined. When
 * the umask keeps the entry's permission bits whole the file is created with them (no fchmod);
 * setuid/setgid/sticky bits and --same-owner (chown clears them) still go through fchmod.
 */
function openTarget(
  ctx: FileCtx,
  e: Entry,
  rel: string,
  full: string,
  data: Buffer | BfcError | null,
): Target {
  const mode = e.mode & PERM_MASK;
  const direct =
    ctx.umask !== undefined && !ctx.sameOwner && (mode & ~0o777) === 0 && (mode & ctx.umask) === 0;
  if (!(data instanceof BfcError)) {
    try {
      return { fd: fs.openSync(full, CREATE_FLAGS, direct ? mode : 0o600), tmp: full, modeSet: direct };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST")
        throw fromSystemError(err, `cannot create '${rel}'`, rel);
    }
  }
  const existing = lstatOrNothing(full);
  if (existing) {
    if (existing.isDirectory()) {
      throw new BfcError("EISDIR", "ALREADY_EXISTS", `'${rel}' exists and is a directory`, { path: rel });
    }
    if (!ctx.overwrite) {
      throw new BfcError("EEXIST", "ALREADY_EXISTS", `'${rel}' already exists`, { path: rel });
    }
  }
  // Content that failed its check is reported now, before anything is created.
  if (data instanceof BfcError) throw data;

  // Replacing goes through a temporary name and a rename, so a failure leaves the old file intact
  // and a hard link or symlink at the target is replaced, never written through.
  const tmp = existing
    ? path.join(path.dirname(full), `.${path.basename(full)}.bfc-part-${randomBytes(4).toString("hex")}`)
    : full;
  try {
    return { fd: fs.openSync(tmp, CREATE_FLAGS, 0o600), tmp, modeSet: false };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST")
      throw new BfcError("EEXIST", "ALREADY_EXISTS", `'${rel}' already exists`, { path: rel });
    throw fromSystemError(err, `cannot create '${rel}'`, rel);
  }
}

/** Owner, permissions and times of a written file, through its descriptor. */
function applyAttributes(ctx: FileCtx, e: Entry, t: Target): void {
  const a = attrsOf(ctx, e);
  if (ctx.sameOwner && a?.uid !== undefined && a.gid !== undefined) fs.fchownSync(t.fd, a.uid, a.gid);
  if (!t.modeSet) fs.fchmodSync(t.fd, e.mode & PERM_MASK);
  fs.futimesSync(t.fd, atimeOf(e, a), seconds(e.mtimeNs));
}

/** Closes a target; a complete one takes its name, an incomplete one is removed. */
function settle(t: Target, full: string, rel: string, ok: boolean): void {
  fs.closeSync(t.fd);
  if (!ok) {
    try {
      fs.unlinkSync(t.tmp);
    } catch {
      // nothing to remove
    }
    return;
  }
  if (t.tmp !== full) {
    try {
      fs.renameSync(t.tmp, full);
    } catch (err) {
      fs.rmSync(t.tmp, { force: true });
      throw fromSystemError(err, `cannot replace '${rel}'`, rel);
    }
  }
}

/** Writes a file whose content is at hand (read ahead, or a check that failed). */
export function writeFileSync(ctx: FileCtx, e: Entry, rel: string, data: Buffer | BfcError): void {
  const full = path.join(ctx.root, rel);
  const t = openTarget(ctx, e, rel, full, data);
  let ok = false;
  try {
    writeAllSync(t.fd, data as Buffer, 0);
    applyAttributes(ctx, e, t);
    ok = true;
  } finally {
    settle(t, full, rel, ok);
  }
}

/** Writes a file streamed from the container (large ones, or hard links whose file was not written). */
export async function writeFileStreamed(reader: Reader, ctx: FileCtx, e: Entry, rel: string): Promise<void> {
  const full = path.join(ctx.root, rel);
  const t = openTarget(ctx, e, rel, full, null);
  let ok = false;
  try {
    let pos = 0;
    for await (const chunk of reader.contentChunks(e.index, { reuse: true })) {
      writeAllSync(t.fd, chunk, pos);
      pos += chunk.length;
    }
    applyAttributes(ctx, e, t);
    ok = true;
  } finally {
    settle(t, full, rel, ok);
  }
}

function writeAllSync(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, position + done);
}

/** lstat of a name, or undefined when nothing (or nothing reachable) is there. */
export function lstatOrNothing(full: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(full, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/**
 * This process's umask, read from /proc (process.umask() without an argument is deprecated: it
 * sets the mask to read it); undefined where that is not possible.
 */
export function processUmask(): number | undefined {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(fs.readFileSync("/proc/self/status", "latin1"));
    return m ? Number.parseInt(m[1] as string, 8) : undefined;
  } catch {
    return undefined;
  }
}
