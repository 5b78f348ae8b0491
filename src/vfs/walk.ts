import { nodeError, toNodeError } from "./errors.ts";
import type { NodeStat } from "./filesystem.ts";
import type { Mount, MountTable } from "./mount-table.ts";

/** Linux's limit on symlinks followed while resolving one path. */
export const MAX_SYMLINK_HOPS = 40;

/** A resolved node: the mount it is on, its path there, its absolute VFS path and its stat. */
export interface Located {
  mount: Mount;
  rel: string;
  vpath: string;
  st: NodeStat;
  /** A directory that exists only on the way to a mount point: nothing can be created in it. */
  synthetic: boolean;
}

/** Where a new or replaced name goes: its resolved parent directory and the child's current stat. */
export interface ParentLocated {
  parent: Located;
  name: string;
  /** The child's path inside parent.mount. */
  rel: string;
  vpath: string;
  /** lstat of the child (not following), undefined when absent. */
  st: NodeStat | undefined;
  /** The child is itself a mount point (it cannot be removed or replaced). */
  mountPoint: boolean;
}

/**
 * True for "/a/b" style paths with no empty, "." or ".." component and no trailing slash: these can
 * be looked up in one step on filesystems with structural lookup.
 */
function isSimple(p: string): boolean {
  const n = p.length;
  if (n < 2 || p.charCodeAt(0) !== 47 || p.charCodeAt(n - 1) === 47) return n === 1 && p === "/";
  let i = p.indexOf("/", 1);
  let start = 1;
  for (;;) {
    const end = i < 0 ? n : i;
    const len = end - start;
    if (len === 0) return false;
    if (p.charCodeAt(start) === 46 && (len === 1 || (len === 2 && p.charCodeAt(start + 1) === 46)))
      return false;
    if (i < 0) return true;
    start = i + 1;
    i = p.indexOf("/", start);
  }
}

interface Frame {
  vpath: string;
  mount: Mount;
  rel: string;
  st: NodeStat;
  synthetic: boolean;
}

export class Walker {
  private readonly table: MountTable;

  constructor(table: MountTable) {
    this.table = table;
  }

  private rootFrame(): Frame {
    const m = this.table.at("/") as Mount;
    return { vpath: "/", mount: m, rel: "", st: this.rootStat(m, "/"), synthetic: false };
  }

  private rootStat(m: Mount, vpath: string): NodeStat {
    return m.fs.lstat("") ?? this.table.syntheticStat(vpath);
  }

  /** The child `name` of directory frame `dir`, or undefined when absent. */
  private child(dir: Frame, name: string, syscall: string, userPath: string): Frame | undefined {
    const vpath = dir.vpath === "/" ? `/${name}` : `${dir.vpath}/${name}`;
    const mounted = this.table.at(vpath);
    if (mounted)
      return { vpath, mount: mounted, rel: "", st: this.rootStat(mounted, vpath), synthetic: false };
    const rel = dir.rel === "" ? name : `${dir.rel}/${name}`;
    let st: NodeStat | undefined;
    if (!dir.synthetic) {
      try {
        st = dir.mount.fs.lstat(rel);
      } catch (e) {
        throw toNodeError(e, syscall, userPath);
      }
    }
    if (st === undefined) {
      if (!this.table.isAncestor(vpath)) return undefined;
      return { vpath, mount: dir.mount, rel, st: this.table.syntheticStat(vpath), synthetic: true };
    }
    return { vpath, mount: dir.mount, rel, st, synthetic: false };
  }

  private readlinkOf(f: Frame, syscall: string, userPath: string): string {
    try {
      return f.mount.fs.readlink(f.rel);
    } catch (e) {
      throw toNodeError(e, syscall, userPath);
    }
  }

  /**
   * Resolves `path` (absolute; relative paths are taken from "/") to an existing node. `follow`
   * decides whether a final symlink is followed; symlinks in parent components always are. Throws
   * ENOENT, ENOTDIR or ELOOP where Linux does.
   */
  resolve(path: string, follow: boolean, syscall: string, userPath = path): Located {
    return (
      this.lookupStructural(path, follow, syscall, userPath) ??
      this.walk(path.charCodeAt(0) === 47 ? path : `/${path}`, follow, syscall, userPath, false)
    );
  }

  /**
   * The one-lookup path of `resolve`: a simple path on a filesystem with structural lookup, found
   * by one `lstat` in the mount that owns it. Its answer depends only on the mount table and that
   * mount's contents (no other component is looked at). undefined: use `resolve`.
   */
  lookupStructural(path: string, follow: boolean, syscall: string, userPath = path): Located | undefined {
    const p = path.charCodeAt(0) === 47 ? path : `/${path}`;
    if (!isSimple(p)) return undefined;
    const m = this.table.owner(p);
    if (!m.fs.capabilities.structuralLookup) return undefined;
    const rel = this.table.relOf(m, p);
    let st: NodeStat | undefined;
    try {
      st = rel === "" ? this.rootStat(m, p) : m.fs.lstat(rel);
    } catch (e) {
      throw toNodeError(e, syscall, userPath);
    }
    if (st === undefined || (follow && st.type === "symlink")) return undefined;
    return { mount: m, rel, vpath: p, st, synthetic: false };
  }

  /**
   * The walk proper: component by component, crossing mounts, following symlinks (relative targets
   * from the link's directory, absolute ones from the VFS root), with ".." leaving a mount for the
   * directory that holds its mount point. With `parentOnly` it stops before the last component and
   * returns the parent frame plus that name.
   */
  private walk(p: string, follow: boolean, syscall: string, userPath: string, parentOnly: false): Located;
  private walk(
    p: string,
    follow: boolean,
    syscall: string,
    userPath: string,
    parentOnly: true,
  ): { parent: Frame; name: string };
  private walk(
    p: string,
    follow: boolean,
    syscall: string,
    userPath: string,
    parentOnly: boolean,
  ): Located | { parent: Frame; name: string } {
    let parts = p.split("/");
    let i = 0;
    let hops = 0;
    const stack: Frame[] = [this.rootFrame()];
    // A trailing slash (or "/.") demands a directory and follows a final symlink even for lstat.
    let mustBeDir = false;
    {
      const last = parts[parts.length - 1];
      if (p.length > 1 && (last === "" || last === ".")) mustBeDir = true;
    }
    const hasMore = (from: number): boolean => {
      for (let k = from; k < parts.length; k++) {
        const s = parts[k];
        if (s !== "" && s !== ".") return true;
      }
      return false;
    };
    while (i < parts.length) {
      const name = parts[i++] as string;
      if (name === "" || name === ".") continue;
      const cur = stack[stack.length - 1] as Frame;
      if (name === "..") {
        if (stack.length > 1) stack.pop();
        continue;
      }
      const last = !hasMore(i);
      if (last && parentOnly) {
        return { parent: cur, name };
      }
      const f = this.child(cur, name, syscall, userPath);
      if (f === undefined) throw nodeError("ENOENT", syscall, userPath);
      if (f.st.type === "symlink" && (!last || follow || mustBeDir)) {
        if (++hops > MAX_SYMLINK_HOPS) throw nodeError("ELOOP", syscall, userPath);
        const target = this.readlinkOf(f, syscall, userPath);
        if (target === "") throw nodeError("ENOENT", syscall, userPath);
        if (target.charCodeAt(0) === 47) stack.length = 1;
        const rest = parts.slice(i);
        parts = target.split("/").concat(rest);
        i = 0;
        continue;
      }
      if (!last && f.st.type !== "directory") throw nodeError("ENOTDIR", syscall, userPath);
      stack.push(f);
    }
    const end = stack[stack.length - 1] as Frame;
    if (parentOnly) {
      // The path names a directory by itself ("/", "/a/..", "/a/."): there is no new last name.
      return { parent: end, name: "" };
    }
    if (mustBeDir && end.st.type !== "directory") throw nodeError("ENOTDIR", syscall, userPath);
    return { mount: end.mount, rel: end.rel, vpath: end.vpath, st: end.st, synthetic: end.synthetic };
  }

  /**
   * Resolves everything but the last component (following symlinks), which must then be a
   * directory, and looks the last name up without following it. For calls that create, remove or
   * rename a name. `name` is "" when the path has no last name of its own ("/", "a/..").
   */
  resolveParent(path: string, syscall: string, userPath = path): ParentLocated {
    const p = path.charCodeAt(0) === 47 ? path : `/${path}`;
    const { parent, name } = this.walk(p, true, syscall, userPath, true);
    if (parent.st.type !== "directory") throw nodeError("ENOTDIR", syscall, userPath);
    const parentLoc: Located = {
      mount: parent.mount,
      rel: parent.rel,
      vpath: parent.vpath,
      st: parent.st,
      synthetic: parent.synthetic,
    };
    if (name === "") {
      return {
        parent: parentLoc,
        name,
        rel: parent.rel,
        vpath: parent.vpath,
        st: parent.st,
        mountPoint: true,
      };
    }
    const f = this.child(parent, name, syscall, userPath);
    const vpath = parent.vpath === "/" ? `/${name}` : `${parent.vpath}/${name}`;
    const mountPoint = this.table.at(vpath) !== undefined || this.table.isAncestor(vpath);
    return {
      parent: parentLoc,
      name,
      rel: parent.rel === "" ? name : `${parent.rel}/${name}`,
      vpath,
      st: f?.st,
      mountPoint,
    };
  }

  /** Where a name with a trailing slash must be a directory: "a/" given to mkdir is fine, to open not. */
  static hasTrailingSlash(path: string): boolean {
    return path.length > 1 && path.charCodeAt(path.length - 1) === 47;
  }
}
