import fs from "node:fs";
import type { Vfs } from "../vfs/vfs.ts";
import { errnoOf } from "./errno.ts";
import { PathHandles } from "./path-handles.ts";

/**
 * The FUSE operations table (fuse-native's path-based callback protocol) over any VFS: every call is
 * answered by the VFS, so every filesystem type and the VFS's own rules (symlinks, EROFS, error
 * codes) are what other processes see. Errors go back as negative errno; a failed integrity check
 * in a container is EIO, so a corrupted file reads as an error, never as wrong bytes.
 */

type Cb<T = never> = (code: number, value?: T) => void;

export interface FuseStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  dev: number;
  nlink: number;
  ino: number;
  rdev: number;
  blksize: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
}

export interface OperationsOptions {
  /** Log every failing call and its errno on stderr. */
  debug?: boolean;
  /** Report this owner instead of the filesystem's. */
  uid?: number;
  gid?: number;
  /**
   * The tree never changes and the mount is read-only to the kernel: open, release, flush, opendir
   * and releasedir are left to libfuse (no trip to the JS thread), and reads find their file by path
   * in a bounded table of open descriptors. That halves the round trips per small file.
   */
  immutable?: boolean;
  /** Descriptors kept open for path-addressed reads (immutable mounts). */
  maxOpenFiles?: number;
}

/** Directory entries kept in answered listings of an immutable mount. */
const LISTING_ENTRIES = 1_000_000;
const { O_CREAT, O_RDWR, O_EXCL } = fs.constants;

/**
 * fuse-native keeps inode numbers in 32 bits. Numbers that fit are passed through (container
 * indexes, zip and memory inodes), so they are stable across mounts; larger ones (host inodes,
 * synthesized directories) are folded, which keeps them stable but may rarely collide.
 */
function ino32(ino: number): number {
  if (ino <= 0xffffffff) return ino;
  const hi = Math.floor(ino / 0x100000000);
  return ((ino >>> 0) ^ Math.imul(hi, 0x9e3779b1)) >>> 0 || 1;
}

export interface FuseOperations {
  init(cb: Cb): void;
  getattr(path: string, cb: Cb<FuseStat>): void;
  fgetattr(path: string, fd: number, cb: Cb<FuseStat>): void;
  access(path: string, mode: number, cb: Cb): void;
  statfs(path: string, cb: Cb<Record<string, number>>): void;
  readdir(path: string, cb: (code: number, names?: string[], stats?: FuseStat[]) => void): void;
  opendir(path: string, flags: number, cb: Cb<number>): void;
  releasedir(path: string, fd: number, cb: Cb): void;
  readlink(path: string, cb: Cb<string>): void;
  open(path: string, flags: number, cb: Cb<number>): void;
  read(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void): void;
  release(path: string, fd: number, cb: Cb): void;
  create(path: string, mode: number, cb: Cb<number>): void;
  write(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void): void;
  truncate(path: string, size: number, cb: Cb): void;
  ftruncate(path: string, fd: number, size: number, cb: Cb): void;
  fsync(path: string, datasync: number, fd: number, cb: Cb): void;
  flush(path: string, fd: number, cb: Cb): void;
  unlink(path: string, cb: Cb): void;
  rename(src: string, dest: string, cb: Cb): void;
  mkdir(path: string, mode: number, cb: Cb): void;
  rmdir(path: string, cb: Cb): void;
  symlink(target: string, path: string, cb: Cb): void;
  chmod(path: string, mode: number, cb: Cb): void;
  chown(path: string, uid: number, gid: number, cb: Cb): void;
  utimens(path: string, atime: number, mtime: number, cb: Cb): void;
}

export function createOperations(vfs: Vfs, options: OperationsOptions = {}): FuseOperations {
  const log = options.debug
    ? (op: string, path: string, code: number, e: unknown) =>
        process.stderr.write(`bfc mount: ${op} ${path}: ${code} (${(e as Error)?.message ?? e})\n`)
    : undefined;

  const fail = (op: string, path: string, e: unknown): number => {
    const code = errnoOf(e);
    log?.(op, path, code, e);
    return code;
  };

  /** Runs a sync VFS call and answers the callback with 0 or -errno. */
  const sync = (op: string, path: string, cb: Cb, run: () => void): void => {
    try {
      run();
    } catch (e) {
      cb(fail(op, path, e));
      return;
    }
    cb(0);
  };

  /**
   * The kernel takes a short read for the end of the file (and shrinks its idea of the size), so a
   * short read before the end must be an error, never passed on.
   */
  const whole = (path: string, fd: number, len: number, pos: number, n: number): number => {
    if (n >= len) return n;
    let size: number;
    try {
      size = vfs.fstatSync(fd).size;
    } catch (e) {
      return fail("read", path, e);
    }
    return pos + n < size ? fail("read", path, new Error(`short read at ${pos}: ${n} of ${len} bytes`)) : n;
  };

  const toFuse = (st: fs.Stats): FuseStat => ({
    mode: st.mode,
    uid: options.uid ?? st.uid,
    gid: options.gid ?? st.gid,
    size: st.size,
    dev: 0,
    nlink: st.nlink,
    ino: ino32(st.ino),
    rdev: st.rdev,
    blksize: st.blksize,
    blocks: st.blocks,
    atime: st.atimeMs,
    mtime: st.mtimeMs,
    ctime: st.ctimeMs,
  });

  const ops: FuseOperations = {
    init(cb) {
      cb(0);
    },
    getattr(path, cb) {
      let st: fs.Stats;
      try {
        st = vfs.lstatSync(path);
      } catch (e) {
        cb(fail("getattr", path, e));
        return;
      }
      cb(0, toFuse(st));
    },
    fgetattr(path, fd, cb) {
      let st: fs.Stats;
      try {
        st = vfs.fstatSync(fd);
      } catch (e) {
        cb(fail("fgetattr", path, e));
        return;
      }
      cb(0, toFuse(st));
    },
    access(path, mode, cb) {
      sync("access", path, cb, () => vfs.accessSync(path, mode));
    },
    statfs(path, cb) {
      let s: fs.StatsFs;
      try {
        s = vfs.statfsSync(path) as fs.StatsFs;
      } catch (e) {
        cb(fail("statfs", path, e));
        return;
      }
      cb(0, {
        bsize: s.bsize,
        frsize: s.bsize,
        blocks: s.blocks,
        bfree: s.bfree,
        bavail: s.bavail,
        files: s.files,
        ffree: s.ffree,
        favail: s.ffree,
        fsid: 0,
        flag: 0,
        namemax: 255,
      });
    },
    readdir(path, cb) {
      // Entries go out with their stat so the kernel fills d_type and d_ino: `find` and `ls` then
      // need no lookup per entry (libfuse 2 has no readdirplus to cache the attributes themselves).
      const names = [".", ".."];
      const stats: FuseStat[] = [];
      try {
        const self = toFuse(vfs.statSync(path));
        stats.push(self, self);
        const dir = path === "/" ? "" : path;
        for (const d of vfs.readdirSync(path, { withFileTypes: true }) as fs.Dirent[]) {
          names.push(d.name);
          stats.push(toFuse(vfs.lstatSync(`${dir}/${d.name}`)));
        }
      } catch (e) {
        cb(fail("readdir", path, e));
        return;
      }
      cb(0, names, stats);
    },
    opendir(path, _flags, cb) {
      let st: fs.Stats;
      try {
        st = vfs.statSync(path);
      } catch (e) {
        cb(fail("opendir", path, e));
        return;
      }
      if (!st.isDirectory()) cb(-20);
      else cb(0, 0);
    },
    releasedir(_path, _fd, cb) {
      cb(0);
    },
    readlink(path, cb) {
      let target: string;
      try {
        target = vfs.readlinkSync(path) as string;
      } catch (e) {
        cb(fail("readlink", path, e));
        return;
      }
      cb(0, target);
    },
    open(path, flags, cb) {
      let fd: number;
      try {
        fd = vfs.openSync(path, flags & ~O_CREAT);
      } catch (e) {
        cb(fail("open", path, e));
        return;
      }
      cb(0, fd);
    },
    read(path, fd, buf, len, pos, cb) {
      vfs.readFdAsync(fd, buf, 0, len, pos).then(
        (n) => cb(whole(path, fd, len, pos, n)),
        (e) => cb(fail("read", path, e)),
      );
    },
    release(path, fd, cb) {
      vfs.closeFdAsync(fd).then(
        () => cb(0),
        (e) => cb(fail("release", path, e)),
      );
    },
    create(path, mode, cb) {
      let fd: number;
      try {
        fd = vfs.openSync(path, O_CREAT | O_RDWR | O_EXCL, mode & 0o7777);
      } catch (e) {
        cb(fail("create", path, e));
        return;
      }
      cb(0, fd);
    },
    write(path, fd, buf, len, pos, cb) {
      vfs.writeFdAsync(fd, buf, 0, len, pos).then(
        (n) => cb(n),
        (e) => cb(fail("write", path, e)),
      );
    },
    truncate(path, size, cb) {
      sync("truncate", path, cb, () => vfs.truncateSync(path, size));
    },
    ftruncate(path, fd, size, cb) {
      sync("ftruncate", path, cb, () => vfs.ftruncateSync(fd, size));
    },
    fsync(path, _datasync, fd, cb) {
      // A writable container commits on fsync: answer once the commit is durable.
      vfs.fsyncAsync(fd).then(
        () => cb(0),
        (e) => cb(fail("fsync", path, e)),
      );
    },
    flush(_path, _fd, cb) {
      cb(0);
    },
    unlink(path, cb) {
      sync("unlink", path, cb, () => vfs.unlinkSync(path));
    },
    rename(src, dest, cb) {
      sync("rename", src, cb, () => vfs.renameSync(src, dest));
    },
    mkdir(path, mode, cb) {
      sync("mkdir", path, cb, () => {
        vfs.mkdirSync(path, { mode: mode & 0o7777 });
      });
    },
    rmdir(path, cb) {
      sync("rmdir", path, cb, () => vfs.rmdirSync(path));
    },
    symlink(target, path, cb) {
      sync("symlink", path, cb, () => vfs.symlinkSync(target, path));
    },
    chmod(path, mode, cb) {
      sync("chmod", path, cb, () => vfs.chmodSync(path, mode & 0o7777));
    },
    chown(path, _uid, _gid, cb) {
      // No filesystem type stores owners it could change; a read-only one says so first.
      sync("chown", path, cb, () => {
        vfs.accessSync(path, fs.constants.W_OK);
        throw Object.assign(new Error("chown is not supported"), { errno: -1 });
      });
    },
    utimens(path, atime, mtime, cb) {
      sync("utimens", path, cb, () => vfs.utimesSync(path, atime / 1000, mtime / 1000));
    },
  };
  if (!options.immutable) return ops;

  const handles = new PathHandles(vfs, options.maxOpenFiles ?? 256);
  const lean: Partial<FuseOperations> = { ...ops };
  // libfuse 2 cannot ask the kernel to cache listings, so every opendir comes back here: keep the
  // finished answers (names and stats) of an immutable tree, up to a bound on the entries held.
  const listings = new Map<string, { names: string[]; stats: FuseStat[] }>();
  let held = 0;
  lean.readdir = (path, cb) => {
    const hit = listings.get(path);
    if (hit) {
      cb(0, hit.names, hit.stats);
      return;
    }
    ops.readdir(path, (code, names, stats) => {
      if (code === 0 && names && stats && held + names.length <= LISTING_ENTRIES) {
        listings.set(path, { names, stats });
        held += names.length;
      }
      cb(code, names, stats);
    });
  };
  delete lean.open;
  delete lean.release;
  delete lean.flush;
  delete lean.opendir;
  delete lean.releasedir;
  lean.read = (path, _fd, buf, len, pos, cb) => {
    let h: { fd: number; busy: number };
    try {
      h = handles.acquire(path);
    } catch (e) {
      cb(fail("read", path, e));
      return;
    }
    let r: number | Promise<number>;
    try {
      r = vfs.readFdFast(h.fd, buf, 0, len, pos);
    } catch (e) {
      h.busy--;
      cb(fail("read", path, e));
      return;
    }
    if (typeof r === "number") {
      h.busy--;
      cb(whole(path, h.fd, len, pos, r));
      return;
    }
    r.then(
      (n) => {
        h.busy--;
        cb(whole(path, h.fd, len, pos, n));
      },
      (e) => {
        h.busy--;
        cb(fail("read", path, e));
      },
    );
  };
  return lean as FuseOperations;
}
