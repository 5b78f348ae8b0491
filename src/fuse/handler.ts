import fs from "node:fs";
import { D_TYPES, type EncodedListing, type NodeStat } from "../vfs/filesystem.ts";
import type { Vfs } from "../vfs/vfs.ts";
import { EEXIST, EINVAL, EIO, ENOENT, ENOSYS, EPERM, EPROTO, EROFS, ESTALE, errnoOf } from "./errno.ts";
import type { NodeIds } from "./node-table.ts";
import { PathHandles } from "./path-handles.ts";
import {
  ATTR_OUT_SIZE,
  type Attr,
  direntSize,
  direntType,
  ENTRY_OUT_SIZE,
  Fattr,
  forEachForget,
  getName,
  getU64,
  INIT_OUT_SIZE,
  type InHeader,
  Init,
  KERNEL_MINOR,
  KERNEL_VERSION,
  MAX_IO,
  MIN_KERNEL_MINOR,
  newInHeader,
  newOut,
  OPEN_OUT_SIZE,
  Op,
  OUT_HEADER_SIZE,
  type Out,
  parseInHeader,
  parseInit,
  parseRead,
  parseSetattr,
  parseWrite,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  STATFS_OUT_SIZE,
  WRITE_OUT_SIZE,
  writeAttrOut,
  writeDirent,
  writeDirentBytes,
  writeEntryOut,
  writeInitOut,
  writeOpenOut,
  writeOutHeader,
  writeStatfsOut,
  writeWriteOut,
} from "./protocol.ts";

const { O_CREAT, O_EXCL, O_NOCTTY, O_WRONLY, S_IFMT, S_IFREG } = fs.constants;

/** Reply buffer: the out header and the largest READ. */
const OUT_SIZE = OUT_HEADER_SIZE + MAX_IO;
/**
 * Directory entries kept in listings of an immutable source. A listing is needed while the kernel
 * reads a directory in chunks, and afterwards the kernel keeps the directory cached: a few suffice
 * (and short-lived listings keep the garbage collector's work small).
 */
const LISTING_ENTRIES = 20_000;
/**
 * st_blksize reported for files: tools size their read buffers by it (cat, cp). 128 KiB, as
 * squashfuse and most filesystems lead tools to use: a MiB-sized buffer, which some tools allocate
 * afresh per file, costs more in page faults than its reads save (measured: a warm `cat` of 1 MiB
 * files ran 4x slower with 1 MiB). The kernel's readahead still asks for up to 1 MiB per request.
 */
const BLKSIZE = 128 * 1024;

export interface HandlerOptions {
  /**
   * The source never changes while mounted (containers, zips): names, attributes, negative lookups,
   * listings and pages stay cached in the kernel (hour-long timeouts, FOPEN_KEEP_CACHE and
   * FOPEN_CACHE_DIR via no-open), and write requests are refused.
   */
  immutable: boolean;
  /** Report this owner instead of the source's. */
  uid?: number;
  gid?: number;
  /** Called with a line for every failed request (`bfc mount --debug`). */
  log?: (line: string) => void;
  /**
   * Set in threads that must never wait (they block on /dev/fuse): a request whose answer needs
   * waiting (a read that is not a pread or a copy) is handed here, raw, instead of answered.
   */
  forward?: (request: Buffer) => void;
  /**
   * When listings carry attributes (READDIRPLUS: no LOOKUP per entry follows): "adaptive" (the
   * default: while lookups of files follow listings, see `plusFull`), "always", "auto" (the kernel
   * decides per directory: READDIRPLUS_AUTO) or "never".
   */
  readdirplus?: ReaddirPlus;
  /** Called once the kernel's INIT has been answered (the mount then serves requests). */
  onInit?: (info: { minor: number; flags: number }) => void;
  /** Open descriptors kept for reads of an immutable source. */
  maxOpenFiles?: number;
}

export type ReaddirPlus = "adaptive" | "always" | "auto" | "never";

/** Adaptive READDIRPLUS: lookups of files in directories listed bare before listings carry attributes. */
const PLUS_AFTER_MISSES = 16;
/** Adaptive READDIRPLUS: listings with attributes between two bare ones that test whether they still pay. */
const PLUS_PROBE_EVERY = 32;
/** Adaptive READDIRPLUS: directories listed bare that are remembered. */
const BARE_DIRS = 256;

/** A directory listing, as sent in READDIR replies: index 0 is ".", 1 is "..", then the children. */
interface Listing {
  count: number;
  /** The children's names, unless `encoded` has them as bytes. */
  names: string[];
  /** Each name's length in UTF-8 bytes. */
  lengths: number[];
  /** Names as bytes from a type that stores them so (plain listings), sparing a string per child. */
  encoded?: EncodedListing;
  /** d_type of each child, for plain READDIR. */
  types: ArrayLike<number>;
  /** Each child's inode number where the source gave it with the listing. */
  inos: ArrayLike<number | undefined>;
  /** Immutable sources, READDIRPLUS: each child's stat, taken with the listing. */
  stats?: NodeStat[];
  selfIno: number;
  parentIno: number;
}

function join(dir: string, name: string): string {
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}

function parentOf(path: string): string {
  const k = path.lastIndexOf("/");
  return k <= 0 ? "/" : path.slice(0, k);
}

/** A failure with a ready errno (no VFS error behind it). */
function errno(n: number, message: string): Error & { errno: number } {
  return Object.assign(new Error(message), { errno: n });
}

const OP_NAMES = new Map<number, string>(Object.entries(Op).map(([k, v]) => [v, k.toLowerCase()]));

/**
 * Answers FUSE requests (as read from /dev/fuse) from a VFS: the kernel protocol's node ids are
 * mapped to VFS paths by a NodeIds table and every operation is the VFS's, so any filesystem type
 * can be served and its rules (symlinks, EROFS, errno values, integrity errors as EIO) are what
 * other processes see. One handler serves one thread; several threads serving one immutable source
 * each have their own handler and VFS over a shared node table.
 */
export class RequestHandler {
  private readonly vfs: Vfs;
  private readonly nodes: NodeIds;
  private readonly write: (reply: Buffer, length: number) => void;
  private readonly opts: HandlerOptions;
  private readonly out: Out = newOut(OUT_SIZE);
  private readonly hdr: InHeader = newInHeader();
  private readonly attr: Attr = {
    ino: 0,
    size: 0,
    blocks: 0,
    atimeNs: 0n,
    mtimeNs: 0n,
    ctimeNs: 0n,
    mode: 0,
    nlink: 0,
    uid: 0,
    gid: 0,
    rdev: 0,
    blksize: BLKSIZE,
  };
  private readonly timeout: number;
  private readonly handles: PathHandles;
  private readonly listings = new Map<string, Listing>();
  private listed = 0;
  /**
   * Adaptive READDIRPLUS. Attributes with every entry spare a LOOKUP per entry when the caller
   * stats the files (`ls -l`, `find -exec stat`, `du`), but cost the kernel an inode per entry
   * when it only wants the names (`find`, `ls`): about twice the time of a plain listing. Listings
   * go bare (entries without node ids, which the kernel takes as plain names) until lookups of
   * files follow them, then carry attributes, with a bare one now and then to see whether they
   * still pay. Lookups of directories do not count: walking a tree needs them either way.
   */
  private plusFull = false;
  private plusMisses = 0;
  private plusSinceProbe = 0;
  /** Node ids of directories listed bare lately. */
  private readonly bareDirs = new Set<number>();
  /** Open directories of a mutable source: their listing, taken when reading starts. */
  private readonly dirs = new Map<number, Listing | null>();
  private nextDir = 1;

  constructor(
    vfs: Vfs,
    nodes: NodeIds,
    write: (reply: Buffer, length: number) => void,
    options: HandlerOptions,
  ) {
    this.vfs = vfs;
    this.nodes = nodes;
    this.write = write;
    this.opts = options;
    this.timeout = options.immutable ? 3600 : 1;
    this.handles = new PathHandles(vfs, options.maxOpenFiles ?? 256);
  }

  /**
   * Answers the request of `n` bytes in `b`. Returns a promise only when the answer comes later
   * (never in a thread with `forward`); `b` may be reused as soon as this returns.
   */
  handle(b: Buffer, n: number): Promise<void> | undefined {
    let h: InHeader;
    try {
      h = parseInHeader(b, n, this.hdr);
    } catch (e) {
      // Nothing to answer to (no trustworthy request id); the kernel never sends such a request.
      this.opts.log?.(`bfc mount: ${(e as Error).message}`);
      return undefined;
    }
    try {
      return this.dispatch(b, h);
    } catch (e) {
      this.fail(h, this.describe(h), e);
      return undefined;
    }
  }

  // ------------------------------------------------------------------------------------------
  // Replies

  private send(unique: number, error: number, len = 0, r: Out = this.out): void {
    writeOutHeader(r, OUT_HEADER_SIZE + len, error, unique);
    this.write(r.b, OUT_HEADER_SIZE + len);
  }

  private fail(h: InHeader, what: string, e: unknown): void {
    const code = errnoOf(e);
    this.opts.log?.(
      `bfc mount: ${OP_NAMES.get(h.opcode) ?? h.opcode} ${what}: ${code} (${(e as Error)?.message ?? e})`,
    );
    this.send(h.unique, code);
  }

  private describe(h: InHeader): string {
    return this.nodes.pathOf(h.nodeid) ?? `node ${h.nodeid}`;
  }

  private attrOf(st: NodeStat): Attr {
    const a = this.attr;
    a.ino = st.ino;
    a.size = st.size;
    a.blocks = st.blocks;
    a.mtimeNs = st.mtimeNs;
    a.atimeNs = st.atimeNs ?? st.mtimeNs;
    a.ctimeNs = st.ctimeNs ?? st.mtimeNs;
    a.mode = st.mode;
    a.nlink = st.nlink;
    a.uid = this.opts.uid ?? st.uid;
    a.gid = this.opts.gid ?? st.gid;
    a.rdev = st.rdev;
    return a;
  }

  /** The VFS path of the request's node, or ESTALE for an id this table does not hold. */
  private pathOf(h: InHeader, id = h.nodeid): string {
    const p = this.nodes.pathOf(id);
    if (p === undefined) throw errno(ESTALE, `unknown node id ${id}`);
    return p;
  }

  private stat(path: string): NodeStat {
    const st = this.vfs.lstatNode(path);
    if (!st) throw errno(ENOENT, "no such file or directory");
    return st;
  }

  /** An entry reply for `path` (just created or looked up): one more kernel reference to its id. */
  private entry(h: InHeader, path: string, st: NodeStat, extra = 0): void {
    const id = this.nodes.remember(path, st.ino);
    writeEntryOut(this.out, OUT_HEADER_SIZE, id, this.timeout, this.timeout, this.attrOf(st));
    if (extra === 0) this.send(h.unique, 0, ENTRY_OUT_SIZE);
  }

  private readOnly(): void {
    if (this.opts.immutable) throw errno(EROFS, "read-only file system");
  }

  // ------------------------------------------------------------------------------------------

  private dispatch(b: Buffer, h: InHeader): Promise<void> | undefined {
    switch (h.opcode) {
      case Op.INIT:
        return this.init(b, h);
      case Op.LOOKUP:
        return this.lookup(b, h);
      case Op.FORGET:
      case Op.BATCH_FORGET:
        forEachForget(b, h.opcode, h.nodeid, (id, n) => this.nodes.forget(id, n));
        return;
      case Op.GETATTR:
        return this.getattr(b, h);
      case Op.READLINK: {
        const target = Buffer.from(this.vfs.readlinkSync(this.pathOf(h)) as string);
        target.copy(this.out.b, OUT_HEADER_SIZE);
        this.send(h.unique, 0, target.length);
        return;
      }
      case Op.OPEN:
        return this.open(b, h);
      case Op.READ:
        return this.read(b, h);
      case Op.RELEASE:
        if (!this.opts.immutable) this.vfs.closeSync(getU64(b, 40));
        this.send(h.unique, 0);
        return;
      case Op.OPENDIR:
        if (this.opts.immutable) {
          // The kernel stops sending OPENDIR/RELEASEDIR and caches listings (FOPEN_CACHE_DIR).
          this.send(h.unique, ENOSYS);
          return;
        }
        this.stat(this.pathOf(h));
        writeOpenOut(this.out, OUT_HEADER_SIZE, this.nextDir, 0);
        this.dirs.set(this.nextDir++, null);
        this.send(h.unique, 0, OPEN_OUT_SIZE);
        return;
      case Op.READDIR:
      case Op.READDIRPLUS:
        return this.readdir(b, h, h.opcode === Op.READDIRPLUS);
      case Op.RELEASEDIR:
        this.dirs.delete(getU64(b, 40));
        this.send(h.unique, 0);
        return;
      case Op.STATFS:
        return this.statfs(h);
      case Op.ACCESS:
        this.vfs.accessSync(this.pathOf(h), b.readUInt32LE(40));
        this.send(h.unique, 0);
        return;
      case Op.FLUSH:
      case Op.GETXATTR:
      case Op.LISTXATTR:
      case Op.SETXATTR:
      case Op.REMOVEXATTR:
        // ENOSYS once and the kernel stops asking: no flush is needed (writes are synchronous), and
        // no source has extended attributes (callers see EOPNOTSUPP, as on filesystems without them).
        this.send(h.unique, ENOSYS);
        return;
      case Op.FSYNC:
      case Op.FSYNCDIR: {
        if (this.opts.immutable) {
          this.send(h.unique, 0);
          return;
        }
        // A writable container commits on fsync, of a file or of a directory (`bfc umount` does
        // the latter first): the answer waits for the commit to be durable, and says if it failed.
        const req = { ...h };
        const what = this.describe(h);
        const done =
          h.opcode === Op.FSYNC ? this.vfs.fsyncAsync(getU64(b, 40)) : this.vfs.syncfsAsync(this.pathOf(h));
        return done.then(
          () => this.send(req.unique, 0),
          (e) => this.fail(req, what, e),
        );
      }
      case Op.INTERRUPT:
        // Every request is answered promptly; the kernel waits for the answer of an interrupted one.
        return;
      case Op.DESTROY:
        this.send(h.unique, 0);
        return;
      case Op.SETATTR:
        return this.setattr(b, h);
      case Op.WRITE:
        return this.writeData(b, h);
      case Op.CREATE:
      case Op.MKNOD:
        return this.create(b, h);
      case Op.MKDIR: {
        this.readOnly();
        const path = join(this.pathOf(h), getName(b, 48, h.len).name);
        this.vfs.mkdirSync(path, { mode: b.readUInt32LE(40) & 0o7777 });
        this.entry(h, path, this.stat(path));
        return;
      }
      case Op.SYMLINK: {
        this.readOnly();
        const { name, next } = getName(b, 40, h.len);
        const target = getName(b, next, h.len).name;
        const path = join(this.pathOf(h), name);
        this.vfs.symlinkSync(target, path);
        this.entry(h, path, this.stat(path));
        return;
      }
      case Op.UNLINK:
      case Op.RMDIR: {
        this.readOnly();
        const path = join(this.pathOf(h), getName(b, 40, h.len).name);
        if (h.opcode === Op.UNLINK) this.vfs.unlinkSync(path);
        else this.vfs.rmdirSync(path);
        this.nodes.removed(path);
        this.send(h.unique, 0);
        return;
      }
      case Op.RENAME:
      case Op.RENAME2:
        return this.rename(b, h);
      case Op.LINK:
        this.readOnly();
        // No filesystem type has hard links.
        this.send(h.unique, EPERM);
        return;
      default:
        this.send(h.unique, ENOSYS);
        return;
    }
  }

  private init(b: Buffer, h: InHeader): undefined {
    const k = parseInit(b);
    if (k.major !== KERNEL_VERSION || k.minor < MIN_KERNEL_MINOR) {
      this.opts.log?.(
        `bfc mount: the kernel speaks FUSE ${k.major}.${k.minor}; 7.${MIN_KERNEL_MINOR} or later is needed`,
      );
      this.send(h.unique, EPROTO);
      return;
    }
    let want =
      Init.ASYNC_READ |
      Init.PARALLEL_DIROPS |
      Init.MAX_PAGES |
      Init.CACHE_SYMLINKS |
      Init.NO_OPEN_SUPPORT |
      Init.NO_OPENDIR_SUPPORT;
    const rdp = this.opts.readdirplus ?? "adaptive";
    if (rdp !== "never") want |= Init.DO_READDIRPLUS;
    if (rdp === "auto") want |= Init.READDIRPLUS_AUTO;
    // A mutable source may change under the kernel's page cache: drop cached pages when the size
    // or mtime it sees changes. An immutable one never does.
    if (!this.opts.immutable) want |= Init.AUTO_INVAL_DATA | Init.ATOMIC_O_TRUNC | Init.BIG_WRITES;
    const flags = (want & k.flags) >>> 0;
    const minor = Math.min(k.minor, KERNEL_MINOR);
    writeInitOut(this.out, OUT_HEADER_SIZE, {
      minor,
      maxReadahead: k.maxReadahead,
      flags,
      maxBackground: 64,
      congestionThreshold: 48,
      maxWrite: MAX_IO,
      maxPages: MAX_IO / 4096,
    });
    this.send(h.unique, 0, INIT_OUT_SIZE);
    this.opts.onInit?.({ minor, flags });
    return;
  }

  private lookup(b: Buffer, h: InHeader): undefined {
    const dir = this.pathOf(h);
    const { name } = getName(b, 40, h.len);
    const path = name === ".." ? parentOf(dir) : join(dir, name);
    const st = this.vfs.lstatNode(path);
    if (!st) {
      if (!this.opts.immutable) {
        this.send(h.unique, ENOENT);
        return;
      }
      // A negative entry: the kernel remembers that the name does not exist.
      writeEntryOut(this.out, OUT_HEADER_SIZE, 0, this.timeout, 0, undefined);
      this.send(h.unique, 0, ENTRY_OUT_SIZE);
      return;
    }
    if (!this.plusFull && st.type !== "directory" && this.bareDirs.has(h.nodeid)) {
      if (++this.plusMisses >= PLUS_AFTER_MISSES) {
        this.plusFull = true;
        this.plusSinceProbe = 0;
        this.bareDirs.clear();
      }
    }
    this.entry(h, path, st);
    return;
  }

  /** Adaptive READDIRPLUS: whether the listing of `nodeid` that starts now carries attributes. */
  private plusWanted(nodeid: number): boolean {
    if (this.plusFull && ++this.plusSinceProbe < PLUS_PROBE_EVERY) return true;
    if (this.plusFull) {
      // A bare probe: attributes come back once lookups of files follow it again.
      this.plusFull = false;
      this.plusMisses = 0;
    }
    if (this.bareDirs.size >= BARE_DIRS) this.bareDirs.clear();
    this.bareDirs.add(nodeid);
    return false;
  }

  private getattr(b: Buffer, h: InHeader): undefined {
    const path = this.pathOf(h);
    let st = this.vfs.lstatNode(path);
    // An open file that was unlinked or renamed away is still there through its handle.
    if (!st && !this.opts.immutable && b.readUInt32LE(40) & 1) st = this.vfs.fstatNode(getU64(b, 48));
    if (!st) throw errno(ENOENT, "no such file or directory");
    writeAttrOut(this.out, OUT_HEADER_SIZE, this.timeout, this.attrOf(st));
    this.send(h.unique, 0, ATTR_OUT_SIZE);
    return;
  }

  private open(b: Buffer, h: InHeader): undefined {
    if (this.opts.immutable) {
      // No open state is needed: the kernel stops sending OPEN/RELEASE/FLUSH and keeps the file's
      // pages cached across opens (FOPEN_KEEP_CACHE is its default without open).
      this.send(h.unique, ENOSYS);
      return;
    }
    const flags = b.readUInt32LE(40) & ~(O_CREAT | O_EXCL | O_NOCTTY);
    const fd = this.vfs.openSync(this.pathOf(h), flags);
    writeOpenOut(this.out, OUT_HEADER_SIZE, fd, 0);
    this.send(h.unique, 0, OPEN_OUT_SIZE);
    return;
  }

  private read(b: Buffer, h: InHeader): Promise<void> | undefined {
    const { fh, offset, size } = parseRead(b);
    const len = Math.min(size, MAX_IO);
    if (!this.opts.immutable) return this.readAt(h, fh, offset, len, undefined);
    const path = this.pathOf(h);
    const handle = this.handles.acquire(path);
    if (this.opts.forward && !this.vfs.syncReadCheap(handle.fd)) {
      handle.busy--;
      this.opts.forward(Buffer.from(b.subarray(0, h.len)));
      return;
    }
    return this.readAt(h, handle.fd, offset, len, handle);
  }

  /**
   * Reads `len` bytes at `offset` of VFS descriptor `fd` into a reply. The kernel takes a short read
   * for the end of the file (and shrinks its idea of the size), so a short read before the end is
   * an error, never passed on.
   */
  private readAt(
    h: InHeader,
    fd: number,
    offset: number,
    len: number,
    handle: { busy: number } | undefined,
  ): Promise<void> | undefined {
    // The header object is reused by the next request; an answer that comes later needs its own.
    const req = { ...h };
    const done = (buf: Out, n: number): void => {
      if (handle) handle.busy--;
      if (n < len && offset + n < this.vfs.fstatNode(fd).size) {
        this.fail(req, this.describe(req), errno(EIO, `short read at ${offset}: ${n} of ${len} bytes`));
        return;
      }
      this.send(req.unique, 0, n, buf);
    };
    if (this.vfs.syncReadCheap(fd) || this.opts.forward) {
      let n: number;
      try {
        n = this.vfs.readSync(fd, this.out.b, OUT_HEADER_SIZE, len, offset);
      } catch (e) {
        if (handle) handle.busy--;
        throw e;
      }
      done(this.out, n);
      return;
    }
    // This thread may wait: a read that decodes goes through the type's async path, into a reply
    // buffer of its own (others are answered meanwhile).
    const buf = newOut(OUT_HEADER_SIZE + len);
    return this.vfs.readFdAsync(fd, buf.b, OUT_HEADER_SIZE, len, offset).then(
      (n) => done(buf, n),
      (e) => {
        if (handle) handle.busy--;
        this.fail(req, this.describe(req), e);
      },
    );
  }

  /** The listing of `path`: with every child's stat for READDIRPLUS of an immutable source. */
  private listing(path: string, plus: boolean): Listing {
    const key = plus ? `+${path}` : path;
    const cached = this.listings.get(key);
    if (cached) return cached;
    const self = this.stat(path);
    const parent = path === "/" ? self : this.stat(parentOf(path));
    let l: Listing;
    const encoded = plus && this.opts.immutable ? undefined : this.vfs.readdirEncoded(path);
    if (plus && this.opts.immutable) {
      const children = this.vfs.readdirStats(path);
      l = {
        count: children.length,
        names: children.map((c) => c.name),
        lengths: children.map((c) => Buffer.byteLength(c.name)),
        types: children.map((c) => D_TYPES[c.stat.type] ?? 0),
        inos: children.map((c) => c.stat.ino),
        stats: children.map((c) => c.stat),
        selfIno: self.ino,
        parentIno: parent.ino,
      };
    } else if (encoded) {
      l = {
        count: encoded.count,
        names: [],
        lengths: [],
        encoded,
        types: encoded.types,
        inos: encoded.inos,
        selfIno: self.ino,
        parentIno: parent.ino,
      };
    } else {
      const children = this.vfs.readdirNodes(path);
      l = {
        count: children.length,
        names: children.map((c) => c.name),
        lengths: children.map((c) => Buffer.byteLength(c.name)),
        types: children.map((c) => D_TYPES[c.type] ?? 0),
        inos: children.map((c) => c.ino),
        selfIno: self.ino,
        parentIno: parent.ino,
      };
    }
    return l;
  }

  /**
   * Keeps the listing of an immutable directory the kernel is still reading (it asks again from the
   * offset it reached), or lets it go once it was answered at its end: the kernel then has it cached, and
   * short-lived listings keep the garbage collector's work small.
   */
  private keepListing(key: string, l: Listing, complete: boolean): void {
    const had = this.listings.get(key);
    if (complete) {
      if (had) {
        this.listings.delete(key);
        this.listed -= had.count;
      }
      return;
    }
    if (had) return;
    // Oldest listings go first; the one being read stays, however large.
    for (const [k, old] of this.listings) {
      if (this.listed + l.count <= LISTING_ENTRIES) break;
      this.listings.delete(k);
      this.listed -= old.count;
    }
    this.listings.set(key, l);
    this.listed += l.count;
  }

  /**
   * READDIR(PLUS) from `offset`: entry k of the listing (0 ".", 1 "..", then the children) carries
   * offset k + 1, where the next call resumes. READDIRPLUS entries also give the kernel each child's
   * node id and attributes, so listing a directory needs no LOOKUP per entry afterwards.
   */
  private readdir(b: Buffer, h: InHeader, plus: boolean): undefined {
    const { fh, offset, size } = parseRead(b);
    const path = this.pathOf(h);
    // Entries of a READDIRPLUS answer without attributes ("bare": node id 0) are plain names.
    let bare = false;
    if (plus && (this.opts.readdirplus ?? "adaptive") === "adaptive") {
      // A listing read in several requests keeps the kind it started with.
      bare = offset === 0 ? !this.plusWanted(h.nodeid) : !this.listings.has(`+${path}`) && !this.plusFull;
    }
    let l: Listing;
    if (this.opts.immutable) l = this.listing(path, plus && !bare);
    else {
      // A mutable directory is listed once per open, so offsets stay meaningful while it changes.
      const snap = this.dirs.get(fh);
      l = snap && offset > 0 ? snap : this.listing(path, false);
      if (this.dirs.has(fh)) this.dirs.set(fh, l);
    }
    const out = this.out;
    const limit = OUT_HEADER_SIZE + Math.min(size, MAX_IO);
    const total = l.count + 2;
    const enc = l.encoded;
    let o = OUT_HEADER_SIZE;
    let k = offset;
    for (; k < total; k++) {
      if (k < 2) {
        const rec = direntSize(k + 1, plus);
        if (o + rec > limit) break;
        const ino = k === 0 ? l.selfIno : l.parentIno;
        if (plus) o += writeEntryOut(out, o, 0, 0, 0, undefined);
        o += writeDirent(out, o, ino, k + 1, k === 0 ? "." : "..", k + 1, 4);
        continue;
      }
      if (enc) {
        const s = enc.starts[k - 2] as number;
        const e = enc.ends[k - 2] as number;
        if (o + direntSize(e - s, plus) > limit) break;
        if (plus) o += writeEntryOut(out, o, 0, 0, 0, undefined);
        o += writeDirentBytes(
          out,
          o,
          enc.inos[k - 2] as number,
          k + 1,
          enc.bytes,
          s,
          e,
          enc.types[k - 2] as number,
        );
        continue;
      }
      const name = l.names[k - 2] as string;
      const len = l.lengths[k - 2] as number;
      if (o + direntSize(len, plus) > limit) break;
      if (!plus || bare) {
        // A plain entry needs only the inode number and type, which listings usually carry.
        const ino = l.inos[k - 2] ?? this.vfs.lstatNode(join(path, name))?.ino;
        if (ino === undefined) continue;
        if (plus) o += writeEntryOut(out, o, 0, 0, 0, undefined);
        o += writeDirent(out, o, ino, k + 1, name, len, l.types[k - 2] as number);
        continue;
      }
      const child = join(path, name);
      const st = l.stats ? l.stats[k - 2] : this.vfs.lstatNode(child);
      // Gone meanwhile (mutable sources): skipped, as a fresh listing would.
      if (!st) continue;
      const id = this.nodes.remember(child, st.ino);
      o += writeEntryOut(out, o, id, this.timeout, this.timeout, this.attrOf(st));
      o += writeDirent(out, o, st.ino, k + 1, name, len, direntType(st.mode));
    }
    // The kernel asks once more, at the end offset, before it knows a listing is complete: the
    // listing is let go on that empty answer, not rebuilt for it.
    if (this.opts.immutable) this.keepListing(plus && !bare ? `+${path}` : path, l, offset >= total);
    this.send(h.unique, 0, o - OUT_HEADER_SIZE);
    return;
  }

  private statfs(h: InHeader): undefined {
    const s = this.vfs.statfsSync(this.nodes.pathOf(h.nodeid) ?? "/") as fs.StatsFs;
    writeStatfsOut(this.out, OUT_HEADER_SIZE, {
      blocks: s.blocks,
      bfree: s.bfree,
      bavail: s.bavail,
      files: s.files,
      ffree: s.ffree,
      bsize: s.bsize,
      namelen: 255,
      frsize: s.bsize,
    });
    this.send(h.unique, 0, STATFS_OUT_SIZE);
    return;
  }

  private setattr(b: Buffer, h: InHeader): undefined {
    this.readOnly();
    const path = this.pathOf(h);
    const a = parseSetattr(b);
    const vfs = this.vfs;
    if (a.valid & (Fattr.UID | Fattr.GID)) {
      const st = this.stat(path);
      const same =
        (!(a.valid & Fattr.UID) || a.uid === st.uid) && (!(a.valid & Fattr.GID) || a.gid === st.gid);
      // No filesystem type stores owners it could change.
      if (!same) throw errno(EPERM, "chown is not supported");
    }
    if (a.valid & Fattr.MODE) vfs.chmodSync(path, a.mode & 0o7777);
    if (a.valid & Fattr.SIZE) {
      if (a.valid & Fattr.FH) vfs.ftruncateSync(a.fh, a.size);
      else vfs.truncateSync(path, a.size);
    }
    if (a.valid & (Fattr.ATIME | Fattr.MTIME | Fattr.ATIME_NOW | Fattr.MTIME_NOW)) {
      const st = this.stat(path);
      const now = Date.now() / 1000;
      const seconds = (sec: number, nsec: number) => sec + nsec / 1e9;
      const atime =
        a.valid & Fattr.ATIME_NOW
          ? now
          : a.valid & Fattr.ATIME
            ? seconds(a.atimeSec, a.atimeNsec)
            : Number(st.atimeNs ?? st.mtimeNs) / 1e9;
      const mtime =
        a.valid & Fattr.MTIME_NOW
          ? now
          : a.valid & Fattr.MTIME
            ? seconds(a.mtimeSec, a.mtimeNsec)
            : Number(st.mtimeNs) / 1e9;
      vfs.lutimesSync(path, atime, mtime);
    }
    writeAttrOut(this.out, OUT_HEADER_SIZE, this.timeout, this.attrOf(this.stat(path)));
    this.send(h.unique, 0, ATTR_OUT_SIZE);
    return;
  }

  private writeData(b: Buffer, h: InHeader): undefined {
    this.readOnly();
    const w = parseWrite(b);
    if (w.data + w.size > h.len) throw errno(EINVAL, "WRITE request shorter than its data");
    const n = this.vfs.writeSync(w.fh, b, w.data, w.size, w.offset);
    writeWriteOut(this.out, OUT_HEADER_SIZE, n);
    this.send(h.unique, 0, WRITE_OUT_SIZE);
    return;
  }

  /** CREATE (create and open) and MKNOD (regular files only: no type stores devices or fifos). */
  private create(b: Buffer, h: InHeader): undefined {
    this.readOnly();
    const create = h.opcode === Op.CREATE;
    const mode = b.readUInt32LE(create ? 44 : 40);
    const path = join(this.pathOf(h), getName(b, 56, h.len).name);
    if ((mode & S_IFMT) !== S_IFREG && !(create && (mode & S_IFMT) === 0)) {
      throw errno(EPERM, "only regular files can be created here");
    }
    if (!create) {
      this.vfs.closeSync(this.vfs.openSync(path, O_CREAT | O_EXCL | O_WRONLY, mode & 0o7777));
      this.entry(h, path, this.stat(path));
      return;
    }
    const fd = this.vfs.openSync(path, b.readUInt32LE(40) | O_CREAT, mode & 0o7777);
    let st: NodeStat;
    try {
      st = this.vfs.fstatNode(fd);
    } catch (e) {
      this.vfs.closeSync(fd);
      throw e;
    }
    this.entry(h, path, st, OPEN_OUT_SIZE);
    writeOpenOut(this.out, OUT_HEADER_SIZE + ENTRY_OUT_SIZE, fd, 0);
    this.send(h.unique, 0, ENTRY_OUT_SIZE + OPEN_OUT_SIZE);
    return;
  }

  private rename(b: Buffer, h: InHeader): undefined {
    this.readOnly();
    const two = h.opcode === Op.RENAME2;
    const flags = two ? b.readUInt32LE(48) : 0;
    const first = getName(b, two ? 56 : 48, h.len);
    const second = getName(b, first.next, h.len);
    const from = join(this.pathOf(h), first.name);
    const to = join(this.pathOf(h, getU64(b, 40)), second.name);
    if (flags & RENAME_EXCHANGE) throw errno(EINVAL, "RENAME_EXCHANGE is not supported");
    if (flags & RENAME_NOREPLACE && this.vfs.lstatNode(to)) throw errno(EEXIST, "file exists");
    this.vfs.renameSync(from, to);
    this.nodes.moved(from, to);
    this.send(h.unique, 0);
    return;
  }
}
