import fs from "node:fs";
import { BfcError, fromSystemError } from "../errors.ts";
import { PERM_MASK, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from "../format/constants.ts";
import type {
  ContainerMetadata,
  EntryAttrs,
  Extension,
  ResourceLimits,
  SignatureRecord,
} from "../format/extension.ts";
import { normalizePath } from "../format/path.ts";
import { type Credentials, checkCredentials } from "./keys.ts";
import { ContainerLock } from "./lock.ts";
import { Reader } from "./reader.ts";
import { type Compression, type FileSource, type WriteProgress, Writer } from "./writer.ts";

export type NodeKind = "file" | "directory" | "symlink";

export interface UpdateOptions extends Credentials {
  /** How new and changed files are stored (default "none"; level 1..22, default 3). */
  compression?: Compression;
  level?: number;
  threshold?: number;
  workers?: number;
  /** Base the staged tree on this commit instead of the latest (a restore is then one commit). */
  from?: number;
  /** Wait this long (ms) for another updater's lock before failing with EBUSY (default 0). */
  lockTimeout?: number;
  onWarning?: (message: string, path?: string) => void;
  onProgress?: (progress: WriteProgress) => void;
  /**
   * Called when a commit takes its snapshot, with the staged sources it will read, and when it ends
   * (ok or not): a writable filesystem seals those scratch files meanwhile (copy-on-write).
   */
  onSnapshot?: (staged: Staged[]) => void;
  onCommitEnd?: (staged: Staged[], ok: boolean) => void;
  /**
   * The content of a staged path that the caller keeps in memory instead of in the file (a writable
   * filesystem's small scratch files), or undefined to read the file.
   */
  scratchContent?: (path: string) => Buffer | undefined;
}

/** A node as a commit saw it when it started. */
interface Snap {
  node: Node;
  path: string;
  kind: NodeKind;
  perm: number;
  mtimeNs: bigint;
  base: number;
  moved: boolean;
  staged?: Staged;
  target?: Buffer;
  attrs?: EntryAttrs;
}

export interface CommitOptions {
  message?: string;
}

export interface CommitResult {
  /** The commit now current (unchanged when there was nothing to commit). */
  commit: number;
  changed: boolean;
  entries: number;
  /** Objects written by this commit (new, changed or moved entries). */
  written: number;
  /** Entries whose objects were reused where they are (moved ones included). */
  carried: number;
  /** Of those, entries now under another path (renamed files keeping their objects). */
  moved: number;
  bytesAdded: number;
  /** Container size after the commit. */
  size: number;
}

/** Where a new file's bytes come from at commit time. */
export type Staged =
  | { kind: "path"; path: string }
  | { kind: "buffer"; data: Buffer }
  | { kind: "stream"; source: AsyncIterable<Uint8Array> };

/** One entry of the staged tree; the same object for the entry's whole life (renames included). */
export interface Node {
  /** Current path ("" never: the root has no node). */
  path: string;
  kind: NodeKind;
  /** Permission bits (setuid/setgid/sticky included), no type bits. */
  perm: number;
  mtimeNs: bigint;
  /** Has an index entry of its own (false: a directory implied by deeper paths). */
  explicit: boolean;
  /** Index position in the base commit whose object holds this node's content, or -1. */
  base: number;
  /** The path differs from the base entry's (renamed since the base commit). */
  moved: boolean;
  staged?: Staged;
  /** New symlink target. */
  target?: Buffer;
  /** File size (-1 while a staged stream's length is unknown). */
  size: number;
  attrs?: EntryAttrs;
}

/** What `stat` reports about a staged path. */
export interface StagedEntry {
  path: string;
  type: NodeKind;
  mode: number;
  size: number;
  mtimeNs: bigint;
  /** True when the entry's content or record differs from the base commit. */
  changed: boolean;
  attrs?: EntryAttrs;
}

export interface Usage {
  files: number;
  directories: number;
  totalBytes: number;
  largestFile: number;
}

const UNKNOWN = -1;

function nowNs(): bigint {
  return BigInt(Date.now()) * 1000000n;
}

function toNs(m: Date | number | bigint): bigint {
  if (typeof m === "bigint") return m;
  const ms = m instanceof Date ? m.getTime() : m;
  if (!Number.isFinite(ms)) throw new BfcError("EINVAL", "INVALID_ARGUMENT", `invalid time ${String(m)}`);
  return BigInt(Math.round(ms * 1e6));
}

function parentOf(p: string): string {
  const s = p.lastIndexOf("/");
  return s < 0 ? "" : p.slice(0, s);
}

function nameOf(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}

function canonical(name: string): string {
  try {
    return normalizePath(name);
  } catch (e) {
    throw e instanceof BfcError ? e : new BfcError("EINVAL", "BAD_PATH", `invalid path '${name}'`);
  }
}

/**
 * A container open for update: a staged tree over its latest commit (or `from`), changed with
 * add/mkdir/symlink/remove/rename/chmod/utimes and written as one new commit by `commit()`.
 *
 * A commit appends only what changed (new objects, then a full index and a footer; docs/format.md
 * §12): unchanged entries keep their objects where they are, a chmod or utimes only rewrites the
 * index entry. The previous commit stays intact until the new footer is on disk, so a crash at any
 * point leaves a container that opens at the last complete commit. Every commit is an ordinary BFC
 * v1 container to the reference tool.
 */
export class Container {
  readonly path: string;
  private readonly opts: UpdateOptions;
  private readonly lock: ContainerLock;
  private reader: Reader;
  private fd: number;
  private key: Buffer | null;
  /** End and number of the latest complete commit, which the next commit follows. */
  private tipEnd: number;
  private tipCommit: number;
  private nodes = new Map<string, Node>();
  private children = new Map<string, Set<string>>();
  private usage: Usage = { files: 0, directories: 0, totalBytes: 0, largestFile: 0 };
  /** Bumped by every change; the tree is dirty while it differs from `committedSeq`. */
  private seq = 0;
  private committedSeq = 0;
  private committing: Promise<CommitResult> | null = null;
  /** The reader before the last commit, closed at the next one (async reads may still use it). */
  private previousReader: Reader | null = null;
  private metadata: ContainerMetadata | undefined;
  private limits: ResourceLimits | undefined;
  private unknown: Extension["unknown"] = [];
  private closed = false;
  private signature: SignatureRecord | undefined;

  private constructor(
    file: string,
    opts: UpdateOptions,
    lock: ContainerLock,
    reader: Reader,
    fd: number,
    key: Buffer | null,
  ) {
    this.path = file;
    this.opts = opts;
    this.lock = lock;
    this.reader = reader;
    this.fd = fd;
    this.key = key;
    this.tipEnd = reader.tipEnd;
    this.tipCommit = 0;
  }

  /**
   * Opens a container for update: takes its lock, cuts off the torn tail of an interrupted commit
   * (nothing references it), proves the key of an encrypted container, and stages its tree.
   */
  static async openForUpdate(file: string, options: UpdateOptions = {}): Promise<Container> {
    checkCredentials(options);
    const lock = await ContainerLock.acquire(file, options.lockTimeout ?? 0);
    let reader: Reader | null = null;
    let fd = -1;
    try {
      const { from, ...creds } = options;
      const tip = await Reader.open(file, credsOf(creds));
      const tipCommit = tip.commit;
      const tipEnd = tip.end;
      if (from !== undefined && from !== tipCommit) {
        tip.close();
        reader = await Reader.open(file, { ...credsOf(creds), commit: from });
      } else {
        reader = tip;
      }
      if (reader.index.hasEntriesBelowNonDirectories()) {
        throw new BfcError(
          "EINVAL",
          "PATH_CONFLICT",
          `'${file}' has entries beneath a file or symlink; it cannot be updated as a tree`,
          { path: file },
        );
      }
      const key = await reader.writeKey();
      try {
        fd = fs.openSync(file, "r+");
      } catch (e) {
        throw fromSystemError(e, `cannot open '${file}' for update`, file);
      }
      if (fs.fstatSync(fd).size > tipEnd) {
        fs.ftruncateSync(fd, tipEnd);
        fs.fsyncSync(fd);
      }
      const c = new Container(file, options, lock, reader, fd, key);
      c.tipEnd = tipEnd;
      c.tipCommit = tipCommit;
      c.load();
      // Restoring an older commit is a change even when no operation follows.
      if (from !== undefined && from !== tipCommit) c.seq++;
      return c;
    } catch (e) {
      reader?.close();
      if (fd >= 0) fs.closeSync(fd);
      lock.release();
      throw e;
    }
  }

  /** Stages the tree of the current base reader. */
  private load(): void {
    this.nodes = new Map();
    this.children = new Map([["", new Set()]]);
    this.usage = { files: 0, directories: 0, totalBytes: 0, largestFile: 0 };
    const ix = this.reader.index;
    for (let i = 0; i < ix.count; i++) {
      const p = ix.path(i);
      const mode = ix.mode(i);
      const fmt = mode & S_IFMT;
      const kind: NodeKind = fmt === S_IFDIR ? "directory" : fmt === S_IFLNK ? "symlink" : "file";
      if (fmt !== S_IFDIR && fmt !== S_IFLNK && fmt !== S_IFREG) {
        throw new BfcError("EIO", "BAD_INDEX", `'${p}' has an unsupported type (mode 0${mode.toString(8)})`, {
          path: p,
        });
      }
      this.ensureParents(p, false);
      const existing = this.nodes.get(p);
      const node: Node = {
        path: p,
        kind,
        perm: mode & PERM_MASK,
        mtimeNs: ix.mtimeNs(i),
        explicit: true,
        base: i,
        moved: false,
        size: kind === "file" ? ix.origSize(i) : kind === "symlink" ? ix.origSize(i) : 0,
        attrs: this.reader.attributesAt(i),
      };
      if (existing) {
        // An implicit parent met before its own entry (it sorts after "a/…" only for odd names).
        this.nodes.set(p, node);
      } else {
        this.insert(p, node);
      }
    }
    // Special entries (devices, fifos, sockets) live in the extension area; their directories must
    // exist in the tree so removing a directory takes them along.
    for (const e of this.reader.specialEntries()) {
      try {
        this.ensureParents(e.path, false);
      } catch {
        // Beneath a file: the special entry is dropped at the next commit.
      }
    }
    const ext = this.reader.extension;
    this.metadata = ext.metadata;
    this.limits = ext.limits;
    this.unknown = ext.unknown;
  }

  private insert(p: string, node: Node): void {
    node.path = p;
    this.nodes.set(p, node);
    this.children.get(parentOf(p))!.add(nameOf(p));
    if (node.kind === "directory") {
      this.children.set(p, new Set());
      this.usage.directories++;
    } else {
      this.usage.files++;
      if (node.kind === "file" && node.size > 0) {
        this.usage.totalBytes += node.size;
      }
    }
  }

  /** Creates missing parents (implicit ones while loading, explicit 0755 ones when staging). */
  private ensureParents(p: string, explicit: boolean): void {
    const missing: string[] = [];
    for (let d = parentOf(p); d !== ""; d = parentOf(d)) {
      const n = this.nodes.get(d);
      if (n) {
        if (n.kind !== "directory") {
          throw new BfcError("ENOTDIR", "NOT_A_DIRECTORY", `'${d}' is not a directory`, { path: p });
        }
        break;
      }
      missing.push(d);
    }
    if (explicit && missing.length) this.checkLimits({ directories: missing.length });
    for (let k = missing.length - 1; k >= 0; k--) {
      this.insert(missing[k]!, {
        path: "",
        kind: "directory",
        perm: 0o755,
        mtimeNs: explicit ? nowNs() : 0n,
        explicit,
        base: -1,
        moved: false,
        size: 0,
      });
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new BfcError("EBADF", "CLOSED", `'${this.path}' is closed`, { path: this.path });
  }

  // ------------------------------------------------------------ reading the staged tree

  /** The commit the staged tree is based on. */
  get baseCommit(): number {
    return this.reader.commit;
  }

  /** True when something is staged that `commit()` would write. */
  get hasChanges(): boolean {
    return this.seq !== this.committedSeq;
  }

  get currentUsage(): Usage {
    return { ...this.usage, largestFile: this.largestFile() };
  }

  get resourceLimits(): ResourceLimits | undefined {
    return this.limits ? { ...this.limits } : undefined;
  }

  /** The credentials this container was opened with (for a second open of the same container). */
  get credentials(): Credentials {
    return credsOf(this.opts);
  }

  get containerMetadata(): ContainerMetadata | undefined {
    return this.metadata;
  }

  /** The base commit's reader (its content is what unchanged entries hold). */
  get base(): Reader {
    return this.reader;
  }

  tryStat(name: string): StagedEntry | null {
    const p = name === "" ? "" : canonical(name);
    if (p === "") {
      return { path: "", type: "directory", mode: S_IFDIR | 0o755, size: 0, mtimeNs: 0n, changed: false };
    }
    const n = this.nodes.get(p);
    if (!n) return null;
    const type = n.kind === "file" ? S_IFREG : n.kind === "directory" ? S_IFDIR : S_IFLNK;
    return {
      path: p,
      type: n.kind,
      mode: type | n.perm,
      size: n.size,
      mtimeNs: n.mtimeNs,
      changed: n.base < 0 || n.moved || n.staged !== undefined,
      attrs: n.attrs,
    };
  }

  stat(name: string): StagedEntry {
    const e = this.tryStat(name);
    if (!e) throw new BfcError("ENOENT", "NOT_FOUND", `no such entry: '${name}'`, { path: name });
    return e;
  }

  /** Names of a directory's children in byte-wise order. */
  readdir(name = ""): string[] {
    const p = name === "" ? "" : canonical(name);
    const set = this.children.get(p);
    if (!set) {
      if (this.nodes.has(p))
        throw new BfcError("ENOTDIR", "NOT_A_DIRECTORY", `not a directory: '${name}'`, { path: name });
      throw new BfcError("ENOENT", "NOT_FOUND", `no such entry: '${name}'`, { path: name });
    }
    return [...set].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  }

  // ------------------------------------------------------------ staging changes

  private node(p: string, what: string): Node {
    const n = this.nodes.get(p);
    if (!n) {
      // ENOTDIR when a parent is a file, as the kernel reports it.
      for (let d = parentOf(p); d !== ""; d = parentOf(d)) {
        const a = this.nodes.get(d);
        if (a && a.kind !== "directory") {
          throw new BfcError(
            "ENOTDIR",
            "NOT_A_DIRECTORY",
            `cannot ${what} '${p}': '${d}' is not a directory`,
            {
              path: p,
            },
          );
        }
      }
      throw new BfcError("ENOENT", "NOT_FOUND", `cannot ${what} '${p}': no such entry`, { path: p });
    }
    return n;
  }

  /** Fails with EDQUOT when a change would exceed a stored resource limit. */
  private checkLimits(
    delta: { files?: number; directories?: number; bytes?: number; fileSize?: number },
    p?: string,
  ): void {
    const l = this.limits;
    if (!l) return;
    const over = (limit: string, value: number, max: number) =>
      new BfcError(
        "EDQUOT",
        "RESOURCE_LIMIT_EXCEEDED",
        `${p ? `'${p}': ` : ""}${limit} limit exceeded (${value} > ${max})`,
        { path: p, field: limit },
      );
    if (l.maxFileSize !== undefined && delta.fileSize !== undefined && delta.fileSize > l.maxFileSize) {
      throw over("maxFileSize", delta.fileSize, l.maxFileSize);
    }
    if (l.maxFiles !== undefined && delta.files && this.usage.files + delta.files > l.maxFiles) {
      throw over("maxFiles", this.usage.files + delta.files, l.maxFiles);
    }
    if (
      l.maxDirectories !== undefined &&
      delta.directories &&
      this.usage.directories + delta.directories > l.maxDirectories
    ) {
      throw over("maxDirectories", this.usage.directories + delta.directories, l.maxDirectories);
    }
    if (
      l.maxTotalBytes !== undefined &&
      delta.bytes &&
      this.usage.totalBytes + delta.bytes > l.maxTotalBytes
    ) {
      throw over("maxTotalBytes", this.usage.totalBytes + delta.bytes, l.maxTotalBytes);
    }
  }

  private removeUsage(n: Node): void {
    if (n.kind === "directory") this.usage.directories--;
    else {
      this.usage.files--;
      if (n.kind === "file" && n.size > 0) this.usage.totalBytes -= n.size;
    }
  }

  /**
   * Adds or replaces a regular file (missing parents are created). The source is read when the
   * commit is written: a path on disk (its mode and mtime kept unless given), bytes, or a stream.
   */
  async addFile(
    name: string,
    source: FileSource,
    meta: { mode?: number; mtime?: Date | number | bigint; attrs?: EntryAttrs } = {},
  ): Promise<void> {
    this.checkOpen();
    const p = canonical(name);
    let staged: Staged;
    let size = UNKNOWN;
    let perm = meta.mode;
    let mtimeNs = meta.mtime === undefined ? undefined : toNs(meta.mtime);
    if (typeof source === "string") {
      let st: fs.BigIntStats;
      try {
        st = fs.statSync(source, { bigint: true });
      } catch (e) {
        throw fromSystemError(e, `cannot read '${source}'`, source);
      }
      if (!st.isFile()) {
        throw new BfcError(
          st.isDirectory() ? "EISDIR" : "EINVAL",
          "NOT_A_FILE",
          `'${source}' is not a regular file`,
          {
            path: source,
          },
        );
      }
      staged = { kind: "path", path: source };
      size = Number(st.size);
      perm ??= Number(st.mode);
      mtimeNs ??= st.mtimeNs;
    } else if (source instanceof Uint8Array) {
      const data = Buffer.from(source.buffer, source.byteOffset, source.byteLength);
      staged = { kind: "buffer", data };
      size = data.length;
    } else {
      staged = { kind: "stream", source: source as AsyncIterable<Uint8Array> };
    }
    const existing = this.nodes.get(p);
    if (existing && existing.kind === "directory") {
      throw new BfcError("EISDIR", "IS_A_DIRECTORY", `cannot add file '${p}': a directory is there`, {
        path: p,
      });
    }
    const oldBytes = existing?.kind === "file" ? Math.max(0, existing.size) : 0;
    this.checkLimits(
      {
        files: existing ? 0 : 1,
        bytes: size > 0 ? size - oldBytes : 0,
        fileSize: size >= 0 ? size : undefined,
      },
      p,
    );
    this.ensureParents(p, true);
    if (existing) {
      this.removeUsage(existing);
      this.nodes.delete(p);
      this.children.get(parentOf(p))!.delete(nameOf(p));
    }
    this.insert(p, {
      path: "",
      kind: "file",
      perm: (perm ?? 0o644) & PERM_MASK,
      mtimeNs: mtimeNs ?? nowNs(),
      explicit: true,
      base: -1,
      moved: false,
      staged,
      size,
      attrs: meta.attrs ?? (existing?.kind === "file" ? existing.attrs : undefined),
    });
    this.seq++;
  }

  /**
   * Adds a directory tree from disk under `prefix` ("" = the container root): directories, regular
   * files and symlinks; existing files are replaced, existing directories merged.
   */
  async addTree(root: string, prefix = ""): Promise<void> {
    this.checkOpen();
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(root, { bigint: true });
    } catch (e) {
      throw fromSystemError(e, `cannot read '${root}'`, root);
    }
    if (!st.isDirectory())
      throw new BfcError("ENOTDIR", "NOT_A_DIRECTORY", `'${root}' is not a directory`, { path: root });
    const base = prefix === "" ? "" : canonical(prefix);
    if (base !== "") this.mergeDirectory(base, Number(st.mode), st.mtimeNs);
    const walk = async (dir: string, into: string): Promise<void> => {
      let names: string[];
      try {
        names = fs.readdirSync(dir);
      } catch (e) {
        throw fromSystemError(e, `cannot read directory '${dir}'`, dir);
      }
      names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      for (const n of names) {
        const full = `${dir}/${n}`;
        const name = into === "" ? n : `${into}/${n}`;
        let s: fs.BigIntStats;
        try {
          s = fs.lstatSync(full, { bigint: true });
        } catch (e) {
          throw fromSystemError(e, `cannot stat '${full}'`, full);
        }
        if (s.isFile()) await this.addFile(name, full);
        else if (s.isDirectory()) {
          this.mergeDirectory(name, Number(s.mode), s.mtimeNs);
          await walk(full, name);
        } else if (s.isSymbolicLink()) {
          let target: Buffer;
          try {
            target = fs.readlinkSync(full, { encoding: "buffer" });
          } catch (e) {
            throw fromSystemError(e, `cannot read link '${full}'`, full);
          }
          const existing = this.nodes.get(canonical(name));
          if (existing) this.remove(name, { recursive: existing.kind === "directory" });
          this.symlink(name, target, { mode: Number(s.mode), mtime: s.mtimeNs });
        } else {
          this.opts.onWarning?.(`skipped '${full}': not a regular file, directory or symlink`, full);
        }
      }
    };
    await walk(root, base);
  }

  /** A directory from a tree walk: created, or an existing one takes the source's mode and time. */
  private mergeDirectory(p: string, mode: number, mtimeNs: bigint): void {
    const n = this.nodes.get(canonical(p));
    if (n && n.kind === "directory") {
      this.chmod(p, mode);
      this.utimes(p, mtimeNs);
      return;
    }
    if (n) this.remove(p);
    this.mkdir(p, { mode, mtime: mtimeNs, parents: true });
  }

  /** Creates a directory (with `parents`, missing parents too and no error if it exists). */
  mkdir(name: string, meta: { mode?: number; mtime?: Date | number | bigint; parents?: boolean } = {}): void {
    this.checkOpen();
    const p = canonical(name);
    const existing = this.nodes.get(p);
    if (existing) {
      if (meta.parents && existing.kind === "directory") return;
      throw new BfcError("EEXIST", "ALREADY_EXISTS", `cannot create directory '${p}': it exists`, {
        path: p,
      });
    }
    const parent = parentOf(p);
    if (!meta.parents && parent !== "" && this.node(parent, "create directory in").kind !== "directory") {
      throw new BfcError(
        "ENOTDIR",
        "NOT_A_DIRECTORY",
        `cannot create '${p}': '${parent}' is not a directory`,
        {
          path: p,
        },
      );
    }
    this.checkLimits({ directories: 1 }, p);
    this.ensureParents(p, true);
    this.insert(p, {
      path: "",
      kind: "directory",
      perm: (meta.mode ?? 0o755) & PERM_MASK,
      mtimeNs: meta.mtime === undefined ? nowNs() : toNs(meta.mtime),
      explicit: true,
      base: -1,
      moved: false,
      size: 0,
    });
    this.touchParent(p);
    this.seq++;
  }

  symlink(
    name: string,
    target: string | Uint8Array,
    meta: { mode?: number; mtime?: Date | number | bigint } = {},
  ): void {
    this.checkOpen();
    const p = canonical(name);
    const t = Buffer.from(target);
    if (t.length === 0 || t.includes(0)) {
      throw new BfcError("EINVAL", "INVALID_ARGUMENT", `symlink target of '${p}' is empty or contains NUL`, {
        path: p,
      });
    }
    if (this.nodes.has(p))
      throw new BfcError("EEXIST", "ALREADY_EXISTS", `cannot create symlink '${p}': it exists`, { path: p });
    this.checkLimits({ files: 1 }, p);
    this.ensureParents(p, true);
    this.insert(p, {
      path: "",
      kind: "symlink",
      perm: (meta.mode ?? 0o777) & PERM_MASK,
      mtimeNs: meta.mtime === undefined ? nowNs() : toNs(meta.mtime),
      explicit: true,
      base: -1,
      moved: false,
      target: t,
      size: t.length,
    });
    this.touchParent(p);
    this.seq++;
  }

  /** Removes an entry; a non-empty directory needs `recursive`. */
  remove(name: string, options: { recursive?: boolean } = {}): void {
    this.checkOpen();
    const p = canonical(name);
    const n = this.node(p, "remove");
    const kids = this.children.get(p);
    if (n.kind === "directory" && kids && kids.size > 0 && !options.recursive) {
      throw new BfcError("ENOTEMPTY", "NOT_EMPTY", `cannot remove '${p}': directory not empty`, { path: p });
    }
    this.dropSubtree(p);
    this.children.get(parentOf(p))!.delete(nameOf(p));
    this.touchParent(p);
    this.seq++;
  }

  private dropSubtree(p: string): void {
    const n = this.nodes.get(p);
    if (!n) return;
    const kids = this.children.get(p);
    if (kids) {
      for (const k of kids) this.dropSubtree(`${p}/${k}`);
      this.children.delete(p);
    }
    this.removeUsage(n);
    this.nodes.delete(p);
  }

  /**
   * Moves an entry (and a directory's whole subtree). Like rename(2): an existing file or empty
   * directory at `to` is replaced; moving a directory into itself fails with EINVAL.
   */
  rename(fromName: string, toName: string): void {
    this.checkOpen();
    const from = canonical(fromName);
    const to = canonical(toName);
    const src = this.node(from, "rename");
    if (from === to) return;
    if (to.startsWith(`${from}/`)) {
      throw new BfcError("EINVAL", "INVALID_ARGUMENT", `cannot move '${from}' into itself ('${to}')`, {
        path: to,
      });
    }
    const dst = this.nodes.get(to);
    if (dst) {
      if (src.kind === "directory" && dst.kind !== "directory") {
        throw new BfcError(
          "ENOTDIR",
          "NOT_A_DIRECTORY",
          `cannot rename '${from}' over non-directory '${to}'`,
          { path: to },
        );
      }
      if (src.kind !== "directory" && dst.kind === "directory") {
        throw new BfcError("EISDIR", "IS_A_DIRECTORY", `cannot rename '${from}' over directory '${to}'`, {
          path: to,
        });
      }
      if (dst.kind === "directory" && (this.children.get(to)?.size ?? 0) > 0) {
        throw new BfcError("ENOTEMPTY", "NOT_EMPTY", `cannot rename over '${to}': directory not empty`, {
          path: to,
        });
      }
    }
    // The destination's parent must exist (rename(2) does not create it).
    const parent = parentOf(to);
    if (parent !== "") {
      const pn = this.node(parent, "rename into");
      if (pn.kind !== "directory") {
        throw new BfcError("ENOTDIR", "NOT_A_DIRECTORY", `cannot rename into '${parent}': not a directory`, {
          path: to,
        });
      }
    }
    if (dst) this.remove(to, { recursive: true });
    const moved: [string, Node][] = [];
    const collect = (p: string): void => {
      const n = this.nodes.get(p)!;
      moved.push([p, n]);
      const kids = this.children.get(p);
      if (kids) for (const k of kids) collect(`${p}/${k}`);
    };
    collect(from);
    const kidSets = new Map<string, Set<string>>();
    for (const [p] of moved) {
      const k = this.children.get(p);
      if (k) kidSets.set(p, k);
      this.children.delete(p);
      this.nodes.delete(p);
    }
    this.children.get(parentOf(from))!.delete(nameOf(from));
    for (const [p, n] of moved) {
      const np = to + p.slice(from.length);
      // The path now differs from the base object's name: the commit records that name for a
      // plain or zstd file, and writes other entries anew (see writeCommit).
      n.moved = true;
      n.explicit = true;
      n.path = np;
      this.nodes.set(np, n);
      const k = kidSets.get(p);
      if (k) this.children.set(np, k);
    }
    this.children.get(parent)!.add(nameOf(to));
    this.touchParent(from);
    this.touchParent(to);
    this.seq++;
  }

  chmod(name: string, mode: number): void {
    this.checkOpen();
    const p = canonical(name);
    const n = this.node(p, "chmod");
    n.perm = mode & PERM_MASK;
    n.explicit = true;
    this.seq++;
  }

  utimes(name: string, mtime: Date | number | bigint): void {
    this.checkOpen();
    const p = canonical(name);
    const n = this.node(p, "set times of");
    n.mtimeNs = toNs(mtime);
    n.explicit = true;
    this.seq++;
  }

  /** Replaces the attributes BFC v1 has no field for (uid, gid, extra times, xattrs). */
  setAttributes(name: string, attrs: EntryAttrs | undefined): void {
    this.checkOpen();
    const n = this.node(canonical(name), "set attributes of");
    n.attrs = attrs;
    n.explicit = true;
    this.seq++;
  }

  // ------------------------------------------------------------ node-level access (the writable VFS type)

  /** The node at a path, or undefined; the same object for the entry's life. */
  lookupNode(name: string): Node | undefined {
    return name === "" ? undefined : this.nodes.get(name);
  }

  /** Children of a directory node ("" = the root) as nodes, in insertion order. */
  childNodes(dir: string): Node[] {
    const set = this.children.get(dir);
    if (!set) return [];
    const out: Node[] = [];
    for (const k of set) {
      const n = this.nodes.get(dir === "" ? k : `${dir}/${k}`);
      if (n) out.push(n);
    }
    return out;
  }

  /** Number of subdirectories of a directory ("" = the root), for st_nlink. */
  subdirectoryCount(dir: string): number {
    let k = 0;
    for (const n of this.childNodes(dir)) if (n.kind === "directory") k++;
    return k;
  }

  /** Creates an empty regular file; the parent must be an existing directory. */
  createFile(name: string, perm: number): Node {
    this.checkOpen();
    const p = canonical(name);
    if (this.nodes.has(p)) throw new BfcError("EEXIST", "ALREADY_EXISTS", `'${p}' exists`, { path: p });
    const parent = parentOf(p);
    if (parent !== "" && this.nodes.get(parent)?.kind !== "directory") {
      throw new BfcError("ENOENT", "NOT_FOUND", `no directory '${parent}'`, { path: p });
    }
    this.checkLimits({ files: 1, fileSize: 0 }, p);
    const node: Node = {
      path: p,
      kind: "file",
      perm: perm & PERM_MASK,
      mtimeNs: nowNs(),
      explicit: true,
      base: -1,
      moved: false,
      staged: { kind: "buffer", data: Buffer.alloc(0) },
      size: 0,
    };
    this.insert(p, node);
    this.touchParent(p);
    this.seq++;
    return node;
  }

  /**
   * Checks that a file node may grow (or shrink) to `size` bytes under the stored limits, before any
   * byte of the change is written (EDQUOT otherwise).
   */
  checkResize(node: Node, size: number): void {
    const old = Math.max(0, node.size);
    this.checkLimits({ bytes: size - old, fileSize: size }, node.path);
  }

  /**
   * Stages a file node's content as the whole of `scratch` (a file beside the container holding
   * `size` bytes); the next commit reads it from there. Limits are checked first.
   */
  stageScratch(node: Node, scratch: string, size: number, mtimeNs = nowNs()): void {
    this.checkOpen();
    if (node.kind !== "file") throw new BfcError("EINVAL", "NOT_A_FILE", `'${node.path}' is not a file`);
    this.checkResize(node, size);
    const old = Math.max(0, node.size);
    const live = this.nodes.get(node.path) === node;
    if (live) this.usage.totalBytes += size - old;
    node.size = size;
    if (node.staged?.kind !== "path" || node.staged.path !== scratch)
      node.staged = { kind: "path", path: scratch };
    node.mtimeNs = mtimeNs;
    // An unlinked file still open for writing changes nothing the next commit would write.
    if (live) this.seq++;
  }

  /** Marks a node changed (its scratch content was rewritten in place). */
  touch(node: Node, mtimeNs = nowNs()): void {
    node.mtimeNs = mtimeNs;
    this.seq++;
  }

  /** Sets a node's times and bumps the change counter (utimens through a mount). */
  setNodeTimes(node: Node, mtimeNs: bigint): void {
    node.mtimeNs = mtimeNs;
    node.explicit = true;
    this.seq++;
  }

  /**
   * Reads a file node's current content: staged bytes, a staged file, or the committed entry through
   * the base reader (verified as every read is).
   */
  readNodeSync(node: Node, buffer: Uint8Array, offset: number, length: number, position: number): number {
    const s = node.staged;
    if (s?.kind === "buffer") {
      if (position >= s.data.length) return 0;
      const n = Math.min(length, s.data.length - position);
      buffer.set(s.data.subarray(position, position + n), offset);
      return n;
    }
    if (s?.kind === "path") {
      const mem = this.opts.scratchContent?.(s.path);
      if (mem) {
        if (position >= mem.length) return 0;
        const n = Math.min(length, mem.length - position);
        buffer.set(mem.subarray(position, position + n), offset);
        return n;
      }
      const fd = fs.openSync(s.path, "r");
      try {
        return fs.readSync(fd, buffer, offset, length, position);
      } finally {
        fs.closeSync(fd);
      }
    }
    if (s?.kind === "stream")
      throw new BfcError("EBUSY", "INVALID_ARGUMENT", `'${node.path}' is a stream not yet committed`);
    if (node.base < 0) return 0;
    return this.reader.readIntoAtSync(node.base, buffer, offset, length, position);
  }

  async readNode(
    node: Node,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<number> {
    if (node.staged || node.base < 0) return this.readNodeSync(node, buffer, offset, length, position);
    return this.reader.readIntoAt(node.base, buffer, offset, length, position);
  }

  /** A symlink node's target bytes. */
  targetOf(node: Node): Buffer {
    if (node.target) return node.target;
    return this.reader.readlinkBytesAtSync(node.base);
  }

  /** Stored size of a committed file node (for st_blocks), or its size when staged. */
  storedSizeOf(node: Node): number {
    if (node.staged || node.base < 0) return Math.max(0, node.size);
    return this.reader.storedSizeAt(node.base);
  }

  private isDirectory(p: string): boolean {
    return p === "" || this.nodes.get(p)?.kind === "directory";
  }

  /** Directory mtimes follow their entries, as a filesystem's do. */
  private touchParent(p: string): void {
    const parent = parentOf(p);
    if (parent === "") return;
    const n = this.nodes.get(parent);
    if (n?.explicit) n.mtimeNs = nowNs();
  }

  /** A signature of the tree as it stands, recorded by the next commit (see signature.ts). */
  setSignature(sig: SignatureRecord): void {
    this.checkOpen();
    this.signature = sig;
    this.seq++;
  }

  setMetadata(meta: ContainerMetadata): void {
    this.checkOpen();
    this.metadata = { ...this.metadata, ...meta };
    this.seq++;
  }

  /**
   * Stores new resource limits (undefined fields are unlimited). Limits below what the container
   * already holds are refused (EDQUOT) rather than leaving it over quota.
   */
  setLimits(limits: ResourceLimits | undefined): void {
    this.checkOpen();
    const previous = this.limits;
    this.limits = limits && Object.values(limits).some((v) => v !== undefined) ? { ...limits } : undefined;
    try {
      this.checkLimits({ files: 0, directories: 0, bytes: 0 });
      const l = this.limits;
      const u = this.usage;
      const fail = (what: string, have: number, max: number) =>
        new BfcError(
          "EDQUOT",
          "RESOURCE_LIMIT_EXCEEDED",
          `${what} limit ${max} is below what the container holds (${have})`,
          {
            field: what,
          },
        );
      if (l?.maxFiles !== undefined && u.files > l.maxFiles) throw fail("maxFiles", u.files, l.maxFiles);
      if (l?.maxDirectories !== undefined && u.directories > l.maxDirectories)
        throw fail("maxDirectories", u.directories, l.maxDirectories);
      if (l?.maxTotalBytes !== undefined && u.totalBytes > l.maxTotalBytes)
        throw fail("maxTotalBytes", u.totalBytes, l.maxTotalBytes);
      const largest = this.largestFile();
      if (l?.maxFileSize !== undefined && largest > l.maxFileSize)
        throw fail("maxFileSize", largest, l.maxFileSize);
    } catch (e) {
      this.limits = previous;
      throw e;
    }
    this.seq++;
  }

  private largestFile(): number {
    let m = 0;
    for (const n of this.nodes.values()) if (n.kind === "file" && n.size > m) m = n.size;
    return m;
  }

  // ------------------------------------------------------------ commit

  /**
   * Writes the staged tree as a new commit. Nothing is written when nothing changed. On failure
   * the bytes written so far are cut off again and the container stays at its previous commit;
   * the staged changes are kept, so the caller may fix the cause and commit again.
   */
  async commit(options: CommitOptions = {}): Promise<CommitResult> {
    this.checkOpen();
    // One commit at a time: a second caller waits for the running one, then commits what is left.
    while (this.committing) {
      try {
        await this.committing;
      } catch {}
    }
    const run = this.commitNow(options);
    this.committing = run;
    try {
      return await run;
    } finally {
      this.committing = null;
    }
  }

  private async commitNow(options: CommitOptions): Promise<CommitResult> {
    this.checkOpen();
    if (!this.hasChanges) {
      return {
        commit: this.tipCommit,
        changed: false,
        entries: this.reader.count,
        written: 0,
        carried: this.reader.count,
        moved: 0,
        bytesAdded: 0,
        size: this.tipEnd,
      };
    }
    // The tree may change while the commit is written (a mounted filesystem keeps working): the
    // commit writes this snapshot, and afterwards only what it wrote is marked as committed.
    const seqAtStart = this.seq;
    const snapshot: Snap[] = [];
    for (const [p, n] of this.nodes) {
      if (!n.explicit && (this.children.get(p)?.size ?? 0) > 0) continue;
      snapshot.push({
        node: n,
        path: p,
        kind: n.kind,
        perm: n.perm,
        mtimeNs: n.mtimeNs,
        base: n.base,
        moved: n.moved,
        staged: n.staged,
        target: n.target,
        attrs: n.attrs,
      });
    }
    const stagedList = snapshot.map((n) => n.staged).filter((x): x is Staged => x !== undefined);
    this.opts.onSnapshot?.(stagedList);
    let ok = false;
    try {
      const r = await this.writeCommit(options, snapshot, seqAtStart);
      ok = true;
      return r;
    } finally {
      this.opts.onCommitEnd?.(stagedList, ok);
    }
  }

  private async writeCommit(
    options: CommitOptions,
    snapshot: Snap[],
    seqAtStart: number,
  ): Promise<CommitResult> {
    const reader = this.reader;
    const commitNo = this.tipCommit + 1;
    const now = nowNs();
    const writer = Writer.forCommit(
      this.path,
      { fd: this.fd, start: this.tipEnd, key: this.key },
      {
        compression: this.opts.compression,
        level: this.opts.level,
        threshold: this.opts.threshold,
        workers: this.opts.workers,
        onWarning: this.opts.onWarning,
        onProgress: this.opts.onProgress,
      },
    );
    const special = reader
      .specialEntries()
      .filter((e) => !this.nodes.has(e.path) && this.isDirectory(parentOf(e.path)));
    const ix = reader.index;
    writer.setExtension({
      metadata: { ...this.metadata, modifiedNs: now },
      limits: this.limits,
      previous: { footerEnd: this.tipEnd, commit: commitNo },
      commitInfo: { timeNs: now, message: options.message },
      signature: this.signature,
      unknown: this.unknown,
      special,
    });
    // Nodes whose objects are kept, by base index: unchanged ones, and moved plain or zstd files
    // (the index records the object's name; docs/format.md §5.1 record 10). A moved encrypted file
    // is bound to its path and a moved side of a shared hard-link object would leave the other side
    // under the wrong name, so those are written anew, as are moved directories and symlinks (their
    // objects are a header and a name: cheaper to write again than to name in every later index).
    // A hard link stays one only if its target does too.
    const carried = new Map<number, Snap>();
    for (const n of snapshot) {
      if (n.base < 0 || n.staged || n.target) continue;
      if (n.moved && (n.kind !== "file" || ix.enc(n.base) !== 0 || reader.sharesObject(n.base))) continue;
      carried.set(n.base, n);
    }
    let written = 0;
    let moved = 0;
    const budget = this.limits;
    let streamedBytes = 0;
    const knownBytes = this.usage.totalBytes;
    try {
      for (const n of snapshot) {
        const p = n.path;
        if (n.attrs) writer.setAttributes(p, n.attrs);
        const typeBits = n.kind === "file" ? S_IFREG : n.kind === "directory" ? S_IFDIR : S_IFLNK;
        const meta = { mode: n.perm, mtime: n.mtimeNs };
        if (carried.get(n.base) === n) {
          const t = reader.hardlinkTarget(n.base);
          const shared = t >= 0 && ix.objOffset(t) === ix.objOffset(n.base);
          const target = shared ? carried.get(t) : undefined;
          if (!shared || (target && target.path === ix.path(t))) {
            const record = { ...ix.record(n.base), pathBytes: Buffer.from(p), mode: typeBits | n.perm };
            // A renamed file keeps the name its object was written under, however often it moves.
            writer.addRecord(
              { ...record, mtimeNs: n.mtimeNs },
              shared ? undefined : reader.objectName(n.base),
            );
            if (target) writer.linkCarried(p, target.path);
            if (n.moved) moved++;
            continue;
          }
          // A hard link whose target changed or moved: its shared object carries the target's old
          // name, so it becomes a file of its own (below).
        }
        written++;
        if (n.kind === "directory") {
          await writer.addDirectory(p, meta);
        } else if (n.kind === "symlink") {
          await writer.addSymlink(p, n.target ?? reader.readlinkBytesAtSync(n.base), meta);
        } else if (n.staged) {
          const s = n.staged;
          const source =
            s.kind === "path"
              ? (this.opts.scratchContent?.(s.path) ?? s.path)
              : s.kind === "buffer"
                ? s.data
                : limited(s.source, p, budget, knownBytes, (k) => {
                    streamedBytes += k;
                    return streamedBytes;
                  });
          await writer.addFile(p, source, meta);
        } else if (ix.enc(n.base) !== 0) {
          // The path is the AEAD's associated data: a moved encrypted file is re-encrypted.
          await writer.addFile(p, reader.contentChunks(n.base), meta);
        } else {
          const range = reader.payloadRange(n.base);
          await writer.addRawCopy(
            p,
            {
              fd: this.fd,
              offset: range.offset,
              storedSize: range.storedSize,
              comp: ix.comp(n.base),
              enc: 0,
              size: ix.origSize(n.base),
              crc: ix.crc(n.base),
            },
            { mode: n.perm, mtimeNs: n.mtimeNs },
          );
        }
      }
      const summary = await writer.finish();
      const before = this.tipEnd;
      await this.committed(snapshot, seqAtStart);
      return {
        commit: commitNo,
        changed: true,
        entries: summary.entries,
        written,
        carried: summary.carried,
        moved,
        bytesAdded: summary.size - before,
        size: summary.size,
      };
    } catch (e) {
      await writer.abort();
      throw e;
    }
  }

  /**
   * The new commit becomes the base: each node the commit wrote now refers to its new index entry,
   * unless it changed again meanwhile (then that change stays staged for the next commit).
   */
  private async committed(snapshot: Snap[], seqAtStart: number): Promise<void> {
    const next = await Reader.open(this.path, this.key ? { key: this.key } : {});
    this.previousReader?.close();
    this.previousReader = this.reader;
    this.reader = next;
    this.tipEnd = next.end;
    this.tipCommit = next.commit;
    const ix = next.index;
    for (const snap of snapshot) {
      const n = snap.node;
      const i = ix.find(Buffer.from(snap.path));
      n.base = i;
      n.moved = n.path !== snap.path;
      if (n.staged === snap.staged) n.staged = undefined;
      if (n.target === snap.target) n.target = undefined;
      if (i >= 0) n.explicit = true;
    }
    if (this.seq === seqAtStart) this.committedSeq = seqAtStart;
    this.signature = undefined;
  }

  /** Drops staged changes (the container is untouched) and releases the lock. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reader.close();
    this.previousReader?.close();
    try {
      fs.closeSync(this.fd);
    } catch {}
    this.lock.release();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function credsOf(o: Credentials): Credentials {
  const c: Credentials = {};
  if (o.password !== undefined) c.password = o.password;
  if (o.key !== undefined) c.key = o.key;
  return c;
}

/**
 * A stream of unknown length counted as it flows, so the total-bytes and file-size limits hold for
 * it too: exceeding one fails the commit (which then leaves the container unchanged).
 */
async function* limited(
  source: AsyncIterable<Uint8Array>,
  p: string,
  limits: ResourceLimits | undefined,
  knownBytes: number,
  add: (n: number) => number,
): AsyncGenerator<Uint8Array> {
  let size = 0;
  for await (const chunk of source) {
    size += chunk.length;
    const streamed = add(chunk.length);
    if (limits?.maxFileSize !== undefined && size > limits.maxFileSize) {
      throw new BfcError(
        "EDQUOT",
        "RESOURCE_LIMIT_EXCEEDED",
        `'${p}': maxFileSize limit exceeded (${size} > ${limits.maxFileSize})`,
        { path: p, field: "maxFileSize" },
      );
    }
    if (limits?.maxTotalBytes !== undefined && knownBytes + streamed > limits.maxTotalBytes) {
      throw new BfcError(
        "EDQUOT",
        "RESOURCE_LIMIT_EXCEEDED",
        `'${p}': maxTotalBytes limit exceeded (${knownBytes + streamed} > ${limits.maxTotalBytes})`,
        { path: p, field: "maxTotalBytes" },
      );
    }
    yield chunk;
  }
}
