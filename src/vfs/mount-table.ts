import { nodeError } from "./errors.ts";
import type { DirEntry, FileSystem, NodeStat } from "./filesystem.ts";
import { fnv1a } from "./names.ts";

const S_IFDIR = 0o040000;

/** One mounted filesystem. `path` is the absolute VFS path of its root ("/" or "/a/b"). */
export interface Mount {
  readonly id: number;
  /** st_dev of every node on this mount. */
  readonly dev: number;
  readonly path: string;
  readonly type: string;
  readonly fs: FileSystem;
  readonly readonly: boolean;
  readonly source: string | undefined;
  /** Open descriptors on this mount (unmount refuses while any is open). */
  openFiles: number;
}

/** The stat of a directory that exists only because a mount point lies beneath it. */
function syntheticStat(ino: number, timeMs: number): NodeStat {
  return {
    type: "directory",
    mode: S_IFDIR | 0o555,
    size: 0,
    ino,
    nlink: 2,
    uid: 0,
    gid: 0,
    rdev: 0,
    blocks: 0,
    mtimeMs: timeMs,
    mtimeNs: BigInt(Math.round(timeMs)) * 1_000_000n,
  };
}

/**
 * The filesystem at "/" until something is mounted there: an empty read-only directory tree whose
 * only members are the directories leading to mount points.
 */
class MountPointsFs implements FileSystem {
  readonly capabilities = { readonly: true, symlinks: false, structuralLookup: true };
  private readonly table: MountTable;
  constructor(table: MountTable) {
    this.table = table;
  }
  lstat(path: string): NodeStat | undefined {
    return path === "" ? this.table.syntheticStat("/") : undefined;
  }
  readdir(): DirEntry[] {
    return [];
  }
  readlink(): string {
    throw nodeError("EINVAL", "readlink");
  }
  open(): never {
    throw nodeError("EISDIR", "open");
  }
}

/**
 * Mount points by path. Lookups find the deepest mount containing a path; directories between "/"
 * and a mount point that exist in no filesystem are synthesized so that every mount is reachable.
 */
export class MountTable {
  private byPath = new Map<string, Mount>();
  /** Mounts by descending path length: the first containing a path is the deepest. */
  private ordered: Mount[] = [];
  /** Every strict ancestor of a mount point → names of its children on the way to mount points. */
  private ancestors = new Map<string, Set<string>>();
  private readonly synthetic = new Map<string, NodeStat>();
  private readonly createdMs = Date.now();
  private nextId = 1;
  readonly rootFallback: Mount;

  constructor() {
    this.rootFallback = {
      id: 0,
      dev: 0xbfc00,
      path: "/",
      type: "mountpoints",
      fs: new MountPointsFs(this),
      readonly: true,
      source: undefined,
      openFiles: 0,
    };
    this.rebuild();
  }

  allocate(): { id: number; dev: number } {
    const id = this.nextId++;
    return { id, dev: 0xbfc00 + id };
  }

  add(mount: Mount): void {
    if (this.byPath.has(mount.path)) throw nodeError("EBUSY", "mount", mount.path);
    this.byPath.set(mount.path, mount);
    this.rebuild();
  }

  remove(path: string): Mount | undefined {
    const m = this.byPath.get(path);
    if (m) {
      this.byPath.delete(path);
      this.rebuild();
    }
    return m;
  }

  list(): Mount[] {
    return [...this.byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  private rebuild(): void {
    const all = [...this.byPath.values()];
    if (!this.byPath.has("/")) all.push(this.rootFallback);
    this.ordered = all.sort((a, b) => b.path.length - a.path.length);
    this.ancestors = new Map();
    for (const m of this.byPath.values()) {
      if (m.path === "/") continue;
      const parts = m.path.split("/");
      for (let k = 1; k < parts.length; k++) {
        const anc = k === 1 ? "/" : parts.slice(0, k).join("/");
        let set = this.ancestors.get(anc);
        if (!set) {
          set = new Set();
          this.ancestors.set(anc, set);
        }
        set.add(parts[k] as string);
      }
    }
  }

  /** The mount whose root is exactly `vpath`. */
  at(vpath: string): Mount | undefined {
    if (vpath === "/") return this.byPath.get("/") ?? this.rootFallback;
    return this.byPath.get(vpath);
  }

  /** The deepest mount containing `vpath` (absolute, canonical). */
  owner(vpath: string): Mount {
    for (const m of this.ordered) {
      const mp = m.path;
      if (mp === "/") return m;
      if (
        vpath.length === mp.length ? vpath === mp : vpath.startsWith(mp) && vpath.charCodeAt(mp.length) === 47
      ) {
        return m;
      }
    }
    return this.rootFallback;
  }

  /** Path of `vpath` inside mount `m` ("" for its root). */
  relOf(m: Mount, vpath: string): string {
    if (m.path === "/") return vpath.slice(1);
    return vpath.length === m.path.length ? "" : vpath.slice(m.path.length + 1);
  }

  /** Names of mount points (or directories leading to them) directly inside `vpath`. */
  mountChildren(vpath: string): Set<string> | undefined {
    return this.ancestors.get(vpath);
  }

  isAncestor(vpath: string): boolean {
    return this.ancestors.has(vpath);
  }

  syntheticStat(vpath: string): NodeStat {
    let st = this.synthetic.get(vpath);
    if (!st) {
      // Above any real inode number range a type hands out; stable per path for this VFS.
      st = syntheticStat(2 ** 52 + fnv1a(vpath), this.createdMs);
      this.synthetic.set(vpath, st);
    }
    return st;
  }

  get size(): number {
    return this.byPath.size;
  }
}
