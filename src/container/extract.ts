import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { BfcError, fromSystemError } from "../errors.ts";
import { PERM_MASK } from "../format/constants.ts";
import type { SpecialEntry } from "../format/extension.ts";
import { baseName, normalizeLookup } from "../format/path.ts";
import { ExtendedEntries, type SpecialType, specialAsEntry, specialType } from "./extended-entries.ts";
import {
  atimeOf,
  attrsOf,
  type FileCtx,
  lstatOrNothing,
  processUmask,
  seconds,
  writeFileStreamed,
  writeFileSync,
} from "./extract-files.ts";
import type { ExtractPool } from "./extract-pool.ts";
import type { Entry, Reader } from "./reader.ts";

export interface ExtractOptions {
  /** Only entries at or under these paths (list semantics). Default: everything. */
  paths?: string[];
  /**
   * The entries to extract, in index order, when the caller has selected them already (as
   * `reader.entries()` or `reader.list()` give them); `paths` then only selects special entries.
   */
  entries?: readonly Entry[];
  /** Replace existing files and symlinks (never directories with files, or the reverse). */
  overwrite?: boolean;
  /** Keep the directory structure (default). When false, each entry is written by its base name. */
  preservePaths?: boolean;
  /**
   * Create the container's fifos and (as root) device nodes; sockets are never created. Without it
   * special entries are skipped and counted in the report.
   */
  specials?: boolean;
  /** Restore owners recorded in the container (chown; needs root), as tar's --same-owner. */
  sameOwner?: boolean;
  /**
   * Threads writing small files beside the calling one (0: none). Default: one per core, up to 4,
   * when at least 64 MiB of small files must be decoded (zstd, encryption); given, they are used
   * for any small files. Reports still come in index order.
   */
  threads?: number;
  onEntry?: (e: ExtractedEntry) => void;
  onError?: (e: ExtractFailure) => void;
  onProgress?: (p: { entries: number; totalEntries: number; bytes: number; totalBytes: number }) => void;
}

export interface ExtractedEntry {
  path: string;
  /** Output path relative to the destination. */
  output: string;
  type: Entry["type"] | SpecialType;
  target?: string;
  /** Hard links: the output path of the file it was linked to. */
  linkedTo?: string;
}

export interface ExtractFailure {
  path: string;
  output: string;
  error: BfcError;
}

export interface ExtractReport {
  /** Entries selected by the filters (special entries included unless skipped). */
  matched: number;
  extracted: number;
  failed: ExtractFailure[];
  /** Special entries not created: all without `specials`; sockets, and devices unless root, with it. */
  skipped: { fifos: number; devices: number; sockets: number };
  /** Extraction threads that wrote small files (0: all were written by the calling thread). */
  threads: number;
}

const STREAM_ABOVE = 8 * 1024 * 1024;
/** A batch of small files read, decoded and written together: at most this many files… */
const BATCH_FILES = 512;
/** …and this many stored (and decoded) bytes, the size of the reused read buffers. */
const BATCH_BYTES = STREAM_ABOVE + 64 * 1024;
/**
 * Extraction threads start for at least this many bytes of small files to decode: a thread costs
 * ~0.1 s of CPU to start, decoding 1 MiB of zstd -3 about 1 ms.
 */
const POOL_MIN_DECODE = 64 * 1024 * 1024;

/** Small files read, decoded and written together: as many as fit the two reused buffers. */
class FileBatch {
  readonly ids: number[] = [];
  private stored = 0;
  private decoded = 0;

  /** Whether `e` no longer fits (a batch always takes its first file). */
  full(e: Entry): boolean {
    if (this.ids.length >= BATCH_FILES) return true;
    const d = e.compression === "zstd" ? e.size : 0;
    return (
      this.ids.length > 0 && (this.stored + e.objectSize > BATCH_BYTES || this.decoded + d > BATCH_BYTES)
    );
  }

  add(e: Entry): void {
    this.ids.push(e.index);
    this.stored += e.objectSize;
    if (e.compression === "zstd") this.decoded += e.size;
  }
}

/**
 * Extracts entries under `dest` without ever writing outside it: entry paths were validated when
 * the container was opened, every existing parent is checked with lstat (a symlink parent is
 * refused, never followed), files are created with O_EXCL|O_NOFOLLOW, and symlinks from the
 * container are created last so none can redirect a later write. A file that fails is removed;
 * the others continue and the report lists every failure.
 */
export async function extract(
  reader: Reader,
  dest: string,
  options: ExtractOptions = {},
): Promise<ExtractReport> {
  const preserve = options.preservePaths !== false;
  const selected = options.entries ?? select(reader, options.paths);
  const x = ExtendedEntries.of(reader);
  const specials = x ? selectSpecials(x, options.paths) : [];
  if (selected.some((e) => e.encrypted)) {
    try {
      await reader.unlock();
    } catch {
      // Reported per entry below (e.g. a password given for a key-file container).
    }
  }
  const root = path.resolve(dest);
  try {
    fs.mkdirSync(root, { recursive: true });
  } catch (e) {
    throw fromSystemError(e, `cannot create destination '${dest}'`, dest);
  }
  const ctx: Ctx = {
    root,
    safeDirs: new Set([""]),
    overwrite: options.overwrite === true,
    createdDirs: new Set(),
    sameOwner: options.sameOwner === true,
    reader,
    umask: processUmask(),
  };
  const failed: ExtractFailure[] = [];
  const dirs: { out: string; entry: Entry }[] = [];
  const links: Entry[] = [];
  const hardlinks: Entry[] = [];
  /** Index position of each regular file written → its output path (hard links link to it). */
  const written = new Map<number, string>();
  const skipped = { fifos: 0, devices: 0, sockets: 0 };
  let extracted = 0;
  let bytes = 0;
  let done = 0;
  let totalBytes = 0;
  for (const e of selected) if (e.type === "file") totalBytes += e.size;

  const fail = (e: Entry, out: string, err: unknown) => {
    const error = err instanceof BfcError ? err : fromSystemError(err, `cannot extract '${e.path}'`, e.path);
    const f = { path: e.path, output: out, error };
    failed.push(f);
    options.onError?.(f);
  };
  const outOf = (e: Entry) => (preserve ? e.path : baseName(e.path));

  // Small files are read ahead in batches: back-to-back objects in one read, zstd frames decoded
  // together (Reader.readFilesSync). Views into the scratch buffer stay valid until the next batch,
  // which is only read once every file of this one has been written. A batch holds what fits in
  // the scratch buffer: objects beyond it would each be read into fresh memory, whose first
  // touch costs more than reading them (2000 files of 1 MiB: 10.4 s, of which 4 s reading).
  const prefetched = new Map<number, Buffer | BfcError>();
  const prefetch = (from: number) => {
    prefetched.clear();
    ctx.scratch ??= Buffer.allocUnsafe(BATCH_BYTES);
    ctx.decoded ??= Buffer.allocUnsafe(BATCH_BYTES);
    const b = new FileBatch();
    for (let m = from; m < selected.length; m++) {
      const s = selected[m] as Entry;
      if (s.type !== "file" || s.size > STREAM_ABOVE) continue;
      if (b.full(s)) break;
      b.add(s);
    }
    const ids = b.ids;
    const got = reader.readFilesSync(ids, ctx.scratch, ctx.decoded);
    for (let n = 0; n < ids.length; n++) prefetched.set(ids[n], got[n]);
  };

  // Small files that must be decoded (zstd, encryption) are written by threads when there is
  // enough of that work (see extract-pool.ts), while this thread makes directories, streams large
  // files and reports. Stored files are not: writing them is the kernel's work, and threads
  // creating files side by side gained nothing measurable (tmpfs and ext4) for 50% more CPU.
  let smallFiles = 0;
  let decodeBytes = 0;
  for (const e of selected) {
    if (e.type === "file" && e.size <= STREAM_ABOVE) {
      smallFiles++;
      if (e.compression !== "none" || e.encrypted) decodeBytes += e.size;
    }
  }
  const threads = options.threads ?? Math.min(4, os.availableParallelism());
  const worthIt = options.threads !== undefined || decodeBytes >= POOL_MIN_DECODE;
  let pool: ExtractPool | undefined;
  if (threads > 0 && smallFiles > 0 && worthIt) {
    const { ExtractPool } = await import("./extract-pool.ts");
    // Without a usable key (none given, or a wrong password) this thread writes every file, so
    // each fails exactly as it would have anyway.
    const data = await ExtractPool.data(ctx, BATCH_BYTES).catch(() => undefined);
    if (data) pool = new ExtractPool(threads, data);
  }

  // Reports (onEntry/onError, counts, progress) keep index order: entry k's runs once every entry
  // before it has reported, as a file written by a thread comes back after the entries behind it.
  const queue: ((() => void) | undefined)[] = [];
  let head = 0;
  const report = (k: number, fn: () => void): void => {
    if (!pool) {
      fn();
      return;
    }
    queue[k] = fn;
    while (head < selected.length && queue[head]) {
      const f = queue[head] as () => void;
      queue[head] = undefined;
      head++;
      f();
    }
  };
  const counted = () => {
    done++;
    options.onProgress?.({ entries: done, totalEntries: selected.length, bytes, totalBytes });
  };
  const fileDone = (k: number, e: Entry, out: string, failure: { err: unknown } | null) =>
    report(k, () => {
      if (failure) fail(e, out, failure.err);
      else {
        // Only hard links look files up here.
        if (x !== null) written.set(e.index, out);
        extracted++;
        bytes += e.size;
        options.onEntry?.({ path: e.path, output: out, type: e.type });
      }
      counted();
    });

  let batch = { files: new FileBatch(), ks: [] as number[], outs: [] as string[] };
  const inflight: Promise<void>[] = [];
  const dispatch = () => {
    const b = batch;
    const ids = b.files.ids;
    if (!pool || ids.length === 0) return;
    batch = { files: new FileBatch(), ks: [], outs: [] };
    const settled = (n: number, failure: { err: unknown } | null) =>
      fileDone(b.ks[n] as number, selected[b.ks[n] as number] as Entry, b.outs[n] as string, failure);
    const p = pool.write(ids, b.outs).then(
      (failures) => {
        for (let n = 0; n < ids.length; n++) settled(n, failures[n] ? { err: failures[n] } : null);
      },
      (err: unknown) => {
        for (let n = 0; n < ids.length; n++) settled(n, { err });
      },
    );
    // Rejected only by a throwing onEntry/onError callback: awaited below, not unhandled meanwhile.
    p.catch(() => {});
    inflight.push(p);
  };

  /** Directories, symlinks, other types and files not given to threads: handled right here. */
  const inline = async (k: number, e: Entry, out: string, streamed: boolean): Promise<void> => {
    let failure: { err: unknown } | null = null;
    try {
      if (e.type === "directory") {
        ensureParents(ctx, out);
        makeDir(ctx, out);
        dirs.push({ out, entry: e });
      } else if (e.type === "file") {
        ensureParents(ctx, out);
        let data: Buffer | BfcError | null = null;
        if (e.size <= STREAM_ABOVE && !streamed) {
          if (!prefetched.has(e.index)) prefetch(k);
          data = prefetched.get(e.index) as Buffer | BfcError;
          prefetched.delete(e.index);
        }
        if (data) writeFileSync(ctx, e, out, data);
        else await writeFileStreamed(reader, ctx, e, out);
      } else if (e.type === "symlink") {
        links.push(e);
      } else {
        throw new BfcError("ENOTSUP", "UNSUPPORTED", `'${e.path}': entry type is not supported`, {
          path: e.path,
        });
      }
    } catch (err) {
      failure = { err };
    }
    if (e.type === "file") fileDone(k, e, out, failure);
    else
      report(k, () => {
        if (failure) fail(e, out, failure.err);
        else if (e.type === "directory") {
          extracted++;
          options.onEntry?.({ path: e.path, output: out, type: e.type });
        }
        counted();
      });
  };

  // With threads, an entry whose output an earlier entry already took (equal base names without
  // preservePaths), or that lies under a file given to a thread, waits until every thread is done
  // and is then handled here in index order: the outcome is one thread's, never a race.
  const claimed = new Set<string>();
  const toThreads = new Set<string>();
  const deferred: number[] = [];
  const conflicts = (out: string): boolean => {
    if (claimed.has(out)) return true;
    for (let i = out.indexOf("/"); i >= 0; i = out.indexOf("/", i + 1))
      if (toThreads.has(out.slice(0, i))) return true;
    return false;
  };

  try {
    for (let k = 0; k < selected.length; k++) {
      const e = selected[k] as Entry;
      const out = outOf(e);
      if (e.type === "file" && x !== null && x.inodeOf(e.index) !== e.index) {
        // Linked once every file is written: its target may come later in path order.
        hardlinks.push(e);
        report(k, () => {});
        continue;
      }
      if (pool && (e.type === "file" || e.type === "directory")) {
        if (conflicts(out)) {
          deferred.push(k);
          continue;
        }
        claimed.add(out);
      }
      if (pool && e.type === "file" && e.size <= STREAM_ABOVE) {
        try {
          ensureParents(ctx, out);
        } catch (err) {
          fileDone(k, e, out, { err });
          continue;
        }
        toThreads.add(out);
        if (batch.files.full(e)) dispatch();
        batch.files.add(e);
        batch.ks.push(k);
        batch.outs.push(out);
        continue;
      }
      await inline(k, e, out, false);
    }
    dispatch();
    await Promise.all(inflight);
    for (const k of deferred) {
      const e = selected[k] as Entry;
      await inline(k, e, outOf(e), true);
    }
  } finally {
    // Threads finish what they were given even when this ends early (a callback threw): ended
    // mid-file, they would leave partial files behind.
    if (pool) {
      await Promise.allSettled(inflight);
      await pool.close();
    }
  }

  for (const e of hardlinks) {
    const out = outOf(e);
    try {
      ensureParents(ctx, out);
      const first = written.get((x as ExtendedEntries).inodeOf(e.index));
      if (first !== undefined && first !== out) {
        makeHardlink(ctx, out, first);
        options.onEntry?.({ path: e.path, output: out, type: e.type, linkedTo: first });
      } else {
        // Its file was not extracted (not selected, or failed): the content is written instead.
        await writeFileStreamed(reader, ctx, e, out);
        written.set(e.index, out);
        options.onEntry?.({ path: e.path, output: out, type: e.type });
      }
      extracted++;
      bytes += e.size;
    } catch (err) {
      fail(e, out, err);
    }
    done++;
    options.onProgress?.({ entries: done, totalEntries: selected.length, bytes, totalBytes });
  }

  const root0 = typeof process.getuid === "function" && process.getuid() === 0;
  for (const sp of specials) {
    const type = specialType(sp.mode) as SpecialType;
    const device = type === "character" || type === "block";
    if (!options.specials || type === "socket" || (device && !root0)) {
      if (type === "socket") skipped.sockets++;
      else if (device) skipped.devices++;
      else skipped.fifos++;
      continue;
    }
    const e = specialAsEntry(sp);
    const out = outOf(e);
    try {
      ensureParents(ctx, out);
      makeSpecial(ctx, out, sp, type);
      extracted++;
      options.onEntry?.({ path: sp.path, output: out, type });
    } catch (err) {
      fail(e, out, err);
    }
  }

  for (const e of links) {
    const out = outOf(e);
    try {
      ensureParents(ctx, out);
      const target = reader.readlinkBytesAtSync(e.index);
      makeSymlink(ctx, out, target, e);
      extracted++;
      options.onEntry?.({ path: e.path, output: out, type: e.type, target: target.toString() });
    } catch (err) {
      fail(e, out, err);
    }
  }

  // Directory modes and times last, deepest first, so writing children does not disturb them.
  for (let k = dirs.length - 1; k >= 0; k--) {
    const { out, entry } = dirs[k];
    try {
      const full = path.join(root, out);
      const a = attrsOf(ctx, entry);
      // chown first: it clears setuid and setgid bits that chmod then sets.
      if (ctx.sameOwner && a?.uid !== undefined && a.gid !== undefined) fs.chownSync(full, a.uid, a.gid);
      fs.chmodSync(full, entry.mode & PERM_MASK);
      fs.utimesSync(full, atimeOf(entry, a), seconds(entry.mtimeNs));
    } catch (err) {
      fail(entry, out, err);
    }
  }
  const notCreated = skipped.fifos + skipped.devices + skipped.sockets;
  return {
    matched: selected.length + specials.length - notCreated,
    extracted,
    failed,
    skipped,
    threads: pool ? threads : 0,
  };
}

interface Ctx extends FileCtx {
  /** Directories (relative) known to be real directories inside root. */
  safeDirs: Set<string>;
  createdDirs: Set<string>;
  /** Reused read buffer for whole-file reads. */
  scratch?: Buffer;
  /** Where prefetched compressed files are decoded. */
  decoded?: Buffer;
}

function select(reader: Reader, filters: string[] | undefined): Entry[] {
  if (!filters || filters.length === 0) return [...reader.entries()];
  const picked = new Map<number, Entry>();
  for (const f of filters) {
    for (const e of reader.list(f)) picked.set(e.index, e);
    const p = normalizeLookup(f);
    if (p === "") for (const e of reader.entries()) picked.set(e.index, e);
  }
  return [...picked.values()].sort((a, b) => a.index - b.index);
}

/** Special entries at or under the filters (all without filters), in path order. */
function selectSpecials(x: ExtendedEntries, filters: string[] | undefined): SpecialEntry[] {
  if (!filters || filters.length === 0) return [...x.specials];
  const picked = new Map<string, SpecialEntry>();
  for (const f of filters) for (const e of x.specialsUnder(normalizeLookup(f))) picked.set(e.path, e);
  return [...picked.values()];
}

/** Makes every parent of `rel` a real directory inside root, refusing symlinks and files. */
function ensureParents(ctx: Ctx, rel: string): void {
  const parts = rel.split("/");
  parts.pop();
  let cur = "";
  for (const part of parts) {
    cur = cur === "" ? part : `${cur}/${part}`;
    if (ctx.safeDirs.has(cur)) continue;
    const full = path.join(ctx.root, cur);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(full, { throwIfNoEntry: false });
    } catch (e) {
      throw fromSystemError(e, `cannot check '${cur}'`, cur);
    }
    if (st === undefined) {
      try {
        fs.mkdirSync(full, 0o755);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST")
          throw fromSystemError(e, `cannot create '${cur}'`, cur);
      }
      st = fs.lstatSync(full);
    }
    if (st.isSymbolicLink()) {
      throw new BfcError("EACCES", "UNSAFE_PATH", `refusing to write through symlink '${cur}'`, {
        path: rel,
      });
    }
    if (!st.isDirectory()) {
      throw new BfcError("ENOTDIR", "NOT_A_DIRECTORY", `'${cur}' exists and is not a directory`, {
        path: rel,
      });
    }
    ctx.safeDirs.add(cur);
  }
}

function makeDir(ctx: Ctx, rel: string): void {
  const full = path.join(ctx.root, rel);
  const st = lstatOrNothing(full);
  if (st?.isDirectory()) {
    ctx.safeDirs.add(rel);
    return;
  }
  if (st) {
    if (!ctx.overwrite) {
      throw new BfcError("EEXIST", "ALREADY_EXISTS", `'${rel}' exists and is not a directory`, { path: rel });
    }
    fs.unlinkSync(full);
  }
  try {
    // Owner-writable while children are extracted; the stored mode is applied at the end.
    fs.mkdirSync(full, 0o700);
  } catch (e) {
    throw fromSystemError(e, `cannot create directory '${rel}'`, rel);
  }
  ctx.safeDirs.add(rel);
  ctx.createdDirs.add(rel);
}

function makeSymlink(ctx: Ctx, rel: string, target: Buffer, e: Entry): void {
  const full = path.join(ctx.root, rel);
  let st = lstatOrNothing(full);
  if (st) {
    if (st.isSymbolicLink() && fs.readlinkSync(full, { encoding: "buffer" }).equals(target)) {
      // Already what we would create.
    } else if (st.isDirectory()) {
      throw new BfcError("EEXIST", "ALREADY_EXISTS", `'${rel}' exists and is a directory`, { path: rel });
    } else if (!ctx.overwrite) {
      throw new BfcError("EEXIST", "ALREADY_EXISTS", `'${rel}' already exists`, { path: rel });
    } else {
      fs.unlinkSync(full);
      st = undefined;
    }
  }
  if (!st) {
    try {
      fs.symlinkSync(target, full);
    } catch (err) {
      throw fromSystemError(err, `cannot create symlink '${rel}'`, rel);
    }
  }
  const a = attrsOf(ctx, e);
  if (ctx.sameOwner && a?.uid !== undefined && a.gid !== undefined) {
    try {
      fs.lchownSync(full, a.uid, a.gid);
    } catch (err) {
      throw fromSystemError(err, `cannot set the owner of '${rel}'`, rel);
    }
  }
  try {
    fs.lutimesSync(full, atimeOf(e, a), seconds(e.mtimeNs));
  } catch {
    // Some file systems cannot time a symlink; the link itself is what matters.
  }
}

/** Clears the way for a new name: nothing there, or (with overwrite) a non-directory removed. */
function clearTarget(ctx: Ctx, rel: string, full: string): void {
  const st = lstatOrNothing(full);
  if (!st) return;
  if (st.isDirectory()) {
    throw new BfcError("EEXIST", "ALREADY_EXISTS", `'${rel}' exists and is a directory`, { path: rel });
  }
  if (!ctx.overwrite)
    throw new BfcError("EEXIST", "ALREADY_EXISTS", `'${rel}' already exists`, { path: rel });
}

/**
 * Links `rel` to the file extracted as `first` (both inside root, checked). Replacing goes through
 * a temporary name and a rename, so what was at `rel` is replaced, never written through.
 */
function makeHardlink(ctx: Ctx, rel: string, first: string): void {
  const full = path.join(ctx.root, rel);
  clearTarget(ctx, rel, full);
  const tmp = path.join(
    path.dirname(full),
    `.${path.basename(full)}.bfc-link-${randomBytes(4).toString("hex")}`,
  );
  try {
    fs.linkSync(path.join(ctx.root, first), tmp);
  } catch (err) {
    throw fromSystemError(err, `cannot link '${rel}' to '${first}'`, rel);
  }
  try {
    fs.renameSync(tmp, full);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw fromSystemError(err, `cannot create '${rel}'`, rel);
  }
}

/** Creates a fifo (mkfifo) or device node (mknod; root) for a special entry. */
function makeSpecial(ctx: Ctx, rel: string, s: SpecialEntry, type: SpecialType): void {
  const full = path.join(ctx.root, rel);
  clearTarget(ctx, rel, full);
  fs.rmSync(full, { force: true });
  const perm = (s.mode & PERM_MASK).toString(8);
  const [cmd, args] =
    type === "fifo"
      ? ["mkfifo", ["-m", perm, "--", full]]
      : [
          "mknod",
          ["-m", perm, "--", full, type === "block" ? "b" : "c", String(s.rdevMajor), String(s.rdevMinor)],
        ];
  const r = spawnSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "ignore", "pipe"] });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : r.stderr.trim() || `exit status ${r.status}`;
    throw new BfcError("EIO", "IO_ERROR", `cannot create ${type} '${rel}': ${cmd}: ${why}`, { path: rel });
  }
  const a = s.attrs;
  if (ctx.sameOwner && a?.uid !== undefined && a.gid !== undefined) {
    fs.lchownSync(full, a.uid, a.gid);
    fs.chmodSync(full, s.mode & PERM_MASK);
  }
  fs.utimesSync(full, seconds(a?.atimeNs ?? s.mtimeNs), seconds(s.mtimeNs));
}
