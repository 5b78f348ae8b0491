import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { BfcError, fromSystemError } from "../errors.ts";
import { PERM_MASK } from "../format/constants.ts";
import { baseName, normalizeLookup } from "../format/path.ts";
import type { Entry, Reader } from "./reader.ts";

export interface ExtractOptions {
  /** Only entries at or under these paths (list semantics). Default: everything. */
  paths?: string[];
  /** Replace existing files and symlinks (never directories with files, or the reverse). */
  overwrite?: boolean;
  /** Keep the directory structure (default). When false, each entry is written by its base name. */
  preservePaths?: boolean;
  onEntry?: (e: ExtractedEntry) => void;
  onError?: (e: ExtractFailure) => void;
  onProgress?: (p: { entries: number; totalEntries: number; bytes: number; totalBytes: number }) => void;
}

export interface ExtractedEntry {
  path: string;
  /** Output path relative to the destination. */
  output: string;
  type: Entry["type"];
  target?: string;
}

export interface ExtractFailure {
  path: string;
  output: string;
  error: BfcError;
}

export interface ExtractReport {
  /** Entries selected by the filters. */
  matched: number;
  extracted: number;
  failed: ExtractFailure[];
}

const STREAM_ABOVE = 8 * 1024 * 1024;

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
  const selected = select(reader, options.paths);
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
  };
  const failed: ExtractFailure[] = [];
  const dirs: { out: string; entry: Entry }[] = [];
  const links: Entry[] = [];
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
  // which is only read once every file of this one has been written.
  const prefetched = new Map<number, Buffer | BfcError>();
  const prefetch = (from: number) => {
    prefetched.clear();
    const ids: number[] = [];
    for (let m = from; m < selected.length && ids.length < 512; m++) {
      const s = selected[m];
      if (s.type === "file" && s.size <= STREAM_ABOVE) ids.push(s.index);
    }
    ctx.scratch ??= Buffer.allocUnsafe(STREAM_ABOVE + 64 * 1024);
    const got = reader.readFilesSync(ids, ctx.scratch);
    for (let n = 0; n < ids.length; n++) prefetched.set(ids[n], got[n]);
  };

  for (let k = 0; k < selected.length; k++) {
    const e = selected[k];
    const out = outOf(e);
    try {
      if (e.type === "directory") {
        await ensureParents(ctx, out);
        makeDir(ctx, out);
        dirs.push({ out, entry: e });
        extracted++;
        options.onEntry?.({ path: e.path, output: out, type: e.type });
      } else if (e.type === "file") {
        await ensureParents(ctx, out);
        let data: Buffer | BfcError | null = null;
        if (e.size <= STREAM_ABOVE) {
          if (!prefetched.has(e.index)) prefetch(k);
          data = prefetched.get(e.index)!;
          prefetched.delete(e.index);
        }

        await writeFile(reader, ctx, e, out, data);

        extracted++;
        bytes += e.size;
        options.onEntry?.({ path: e.path, output: out, type: e.type });
      } else if (e.type === "symlink") {
        links.push(e);
      } else {
        throw new BfcError("ENOTSUP", "UNSUPPORTED", `'${e.path}': entry type is not supported`, {
          path: e.path,
        });
      }
    } catch (err) {
      fail(e, out, err);
    }
    done++;
    options.onProgress?.({ entries: done, totalEntries: selected.length, bytes, totalBytes });
  }

  for (const e of links) {
    const out = outOf(e);
    try {
      await ensureParents(ctx, out);
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
      fs.chmodSync(full, entry.mode & PERM_MASK);
      const t = Number(entry.mtimeNs) / 1e9;
      fs.utimesSync(full, t, t);
    } catch (err) {
      fail(entry, out, err);
    }
  }
  return { matched: selected.length, extracted, failed };
}

interface Ctx {
  root: string;
  /** Directories (relative) known to be real directories inside root. */
  safeDirs: Set<string>;
  createdDirs: Set<string>;
  overwrite: boolean;
  /** Reused read buffer for whole-file reads. */
  scratch?: Buffer;
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

/** Makes every parent of `rel` a real directory inside root, refusing symlinks and files. */
async function ensureParents(ctx: Ctx, rel: string): Promise<void> {
  const parts = rel.split("/");
  parts.pop();
  let cur = "";
  for (const part of parts) {
    cur = cur === "" ? part : `${cur}/${part}`;
    if (ctx.safeDirs.has(cur)) continue;
    const full = path.join(ctx.root, cur);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(full);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT")
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
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(full);
  } catch {
    st = undefined;
  }
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

async function writeFile(
  reader: Reader,
  ctx: Ctx,
  e: Entry,
  rel: string,
  data: Buffer | BfcError | null,
): Promise<void> {
  const full = path.join(ctx.root, rel);
  let existing: fs.Stats | undefined;
  try {
    existing = fs.lstatSync(full);
  } catch {
    existing = undefined;
  }
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
  let fd: number;
  try {
    fd = fs.openSync(
      tmp,
      fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW,
      0o600,
    );
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST")
      throw new BfcError("EEXIST", "ALREADY_EXISTS", `'${rel}' already exists`, { path: rel });
    throw fromSystemError(err, `cannot create '${rel}'`, rel);
  }
  let ok = false;
  try {
    if (data) {
      writeAllSync(fd, data, 0);
    } else {
      let pos = 0;
      for await (const chunk of reader.contentChunks(e.index)) {
        writeAllSync(fd, chunk, pos);
        pos += chunk.length;
      }
    }
    fs.fchmodSync(fd, e.mode & PERM_MASK);
    const t = Number(e.mtimeNs) / 1e9;
    fs.futimesSync(fd, t, t);
    ok = true;
  } finally {
    fs.closeSync(fd);
    if (!ok) {
      try {
        fs.unlinkSync(tmp);
      } catch {
        // nothing to remove
      }
    }
  }
  if (tmp !== full) {
    try {
      fs.renameSync(tmp, full);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw fromSystemError(err, `cannot replace '${rel}'`, rel);
    }
  }
}

function makeSymlink(ctx: Ctx, rel: string, target: Buffer, e: Entry): void {
  const full = path.join(ctx.root, rel);
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(full);
  } catch {
    st = undefined;
  }
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
  const t = Number(e.mtimeNs) / 1e9;
  try {
    fs.lutimesSync(full, t, t);
  } catch {
    // Some file systems cannot time a symlink; the link itself is what matters.
  }
}

function writeAllSync(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, position + done);
}
