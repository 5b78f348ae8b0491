import { badFs } from "./corruption.ts";
import type { ExtDirEntry } from "./directory.ts";
import { type ExtFileSystem, ROOT_INO } from "./filesystem.ts";
import type { ExtFileType, Inode } from "./inode.ts";
import type { Xattr } from "./xattr.ts";

/** One entry of the tree, with everything ext keeps about it. */
export interface ExtWalkEntry {
  /** "" for the root, else the path below it ("a/b"), components decoded as UTF-8. */
  readonly path: string;
  /** The last component as stored (empty for the root); differs from the decoded name only for invalid UTF-8. */
  readonly nameBytes: Buffer;
  readonly ino: number;
  readonly inode: Inode;
  readonly type: ExtFileType;
  /** Full st_mode (type and permission bits). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly nlink: number;
  /** st_rdev of device nodes (glibc encoding), with its parts; 0 otherwise. */
  readonly rdev: number;
  readonly rdevMajor: number;
  readonly rdevMinor: number;
  readonly atimeNs: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  /** Creation time, when the inode records one. */
  readonly crtimeNs: bigint | undefined;
  /** Symlinks: the target as stored, and decoded. */
  readonly linkTargetBytes?: Buffer;
  readonly linkTarget?: string;
  /** Extended attributes (empty when the walk was asked to skip them). */
  readonly xattrs: readonly Xattr[];
  /** For a non-directory inode already yielded under another name: that first path. */
  readonly hardlinkOf?: string;
}

export interface ExtWalkOptions {
  /** Read extended attributes (default true). */
  xattrs?: boolean;
  /** Entries skipped (encrypted inodes) are reported here. */
  onWarning?: (message: string, path: string) => void;
}

interface Frame {
  path: string;
  entries: ExtDirEntry[];
  next: number;
}

function byName(a: ExtDirEntry, b: ExtDirEntry): number {
  return Buffer.compare(a.nameBytes, b.nameBytes);
}

function entryOf(
  fs: ExtFileSystem,
  path: string,
  nameBytes: Buffer,
  inode: Inode,
  withXattrs: boolean,
  hardlinkOf?: string,
): ExtWalkEntry {
  const e: ExtWalkEntry = {
    path,
    nameBytes,
    ino: inode.ino,
    inode,
    type: inode.type,
    mode: inode.mode,
    uid: inode.uid,
    gid: inode.gid,
    size: inode.size,
    nlink: inode.linksCount,
    rdev: inode.rdev,
    rdevMajor: inode.rdevMajor,
    rdevMinor: inode.rdevMinor,
    atimeNs: inode.atimeNs,
    mtimeNs: inode.mtimeNs,
    ctimeNs: inode.ctimeNs,
    crtimeNs: inode.crtimeNs,
    xattrs: withXattrs ? fs.xattrs(inode) : [],
    ...(hardlinkOf !== undefined ? { hardlinkOf } : {}),
  };
  if (inode.type !== "symlink") return e;
  const target = fs.readlink(inode);
  return { ...e, linkTargetBytes: target, linkTarget: target.toString("utf8") };
}

/**
 * Every entry of the filesystem, depth first from the root (which comes first, with path ""),
 * each directory before its children, children in byte order of their names. A directory reached
 * twice (a loop or a hard-linked directory) is an error; a non-directory reached again is yielded
 * with `hardlinkOf` naming its first path. Encrypted inodes are skipped with a warning.
 */
export function* walkExt(fs: ExtFileSystem, options: ExtWalkOptions = {}): Generator<ExtWalkEntry> {
  const withXattrs = options.xattrs ?? true;
  const warn = options.onWarning ?? (() => {});
  const root = fs.inode(ROOT_INO);
  yield entryOf(fs, "", Buffer.alloc(0), root, withXattrs);
  const visited = new Map<number, string>([[ROOT_INO, ""]]);
  const firstPaths = new Map<number, string>();
  const stack: Frame[] = [{ path: "", entries: fs.readdir(root).sort(byName), next: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1] as Frame;
    const d = top.entries[top.next++];
    if (d === undefined) {
      stack.pop();
      continue;
    }
    const path = top.path === "" ? d.name : `${top.path}/${d.name}`;
    const inode = fs.inode(d.ino);
    if (fs.isEncrypted(inode)) {
      warn(`${fs.label}: skipped '${path}' (inode ${inode.ino}): it is encrypted (fscrypt)`, path);
      continue;
    }
    if (inode.type === "directory") {
      const seen = visited.get(inode.ino);
      if (seen !== undefined) {
        throw badFs(
          fs.label,
          `directory inode ${inode.ino} is reached both as '${seen || "/"}' and as '${path}' (a loop or a hard-linked directory)`,
        );
      }
      visited.set(inode.ino, path);
      yield entryOf(fs, path, d.nameBytes, inode, withXattrs);
      stack.push({ path, entries: fs.readdir(inode).sort(byName), next: 0 });
      continue;
    }
    let hardlinkOf: string | undefined;
    if (inode.linksCount > 1) {
      hardlinkOf = firstPaths.get(inode.ino);
      if (hardlinkOf === undefined) firstPaths.set(inode.ino, path);
    }
    yield entryOf(fs, path, d.nameBytes, inode, withXattrs, hardlinkOf);
  }
}
