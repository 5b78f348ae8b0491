import { BfcError } from "../errors.ts";
import type { EntryAttrs, SpecialEntry } from "../format/extension.ts";
import { checkStoredPath, parentOf } from "../format/path.ts";
import { type Entry, entryWithoutObject, type Reader } from "./reader.ts";

const S_IFMT = 0o170000;

/** The file types of special entries, named as the VFS and `bfc list --json` name them. */
export type SpecialType = "character" | "block" | "fifo" | "socket";

/** The type of a special entry's mode, or null when the mode is no special type. */
export function specialType(mode: number): SpecialType | null {
  switch (mode & S_IFMT) {
    case 0o020000:
      return "character";
    case 0o060000:
      return "block";
    case 0o010000:
      return "fifo";
    case 0o140000:
      return "socket";
    default:
      return null;
  }
}

/** glibc's makedev: st_rdev of a device node from its major and minor numbers (exact below 2^53). */
export function makeRdev(major: number, minor: number): number {
  return (
    Math.floor(major / 4096) * 2 ** 44 +
    (major % 4096) * 256 +
    Math.floor(minor / 256) * 2 ** 20 +
    (minor % 256)
  );
}

/** A special entry as an Entry (type "other", no object: index -1) for listings and reports. */
export function specialAsEntry(s: SpecialEntry): Entry {
  return entryWithoutObject(s.path, "other", s.mode, s.mtimeNs);
}

function corrupt(detail: string): BfcError {
  return new BfcError("EIO", "BAD_INDEX", `index extension area: ${detail}`, { field: "index.extension" });
}

/**
 * What the extension area adds to a container's index, in the shape tools need it: special entries
 * (device nodes, fifos, sockets) by path and by directory, the directories that exist only as their
 * parents, hard-link groups (link counts, a shared inode) and per-entry attributes. Special entry
 * paths are untrusted like index paths: each must be canonical and must not name an index entry.
 */
export class ExtendedEntries {
  readonly reader: Reader;
  /** Special entries in byte-wise path order. */
  readonly specials: readonly SpecialEntry[];
  /** Special entries by path, with their position in `specials`. */
  private readonly byPath = new Map<string, { e: SpecialEntry; k: number }>();
  private readonly byParent = new Map<string, SpecialEntry[]>();
  /** Directories that hold special entries (or such directories) but have no index entry. */
  readonly impliedDirs = new Set<string>();
  /** Index position → how many index entries share its object (hard links), when more than one. */
  private readonly linkCounts = new Map<number, number>();

  /** The extended entries of a container, or null when its extension area adds none (the usual case). */
  static of(reader: Reader): ExtendedEntries | null {
    const ext = reader.extension;
    if (!ext.special?.length && !ext.hardlinks?.length && ext.entryAttrs === undefined) return null;
    return new ExtendedEntries(reader);
  }

  constructor(reader: Reader) {
    this.reader = reader;
    const ix = reader.index;
    const list = [...reader.specialEntries()];
    const keyed = list.map((e) => ({ e, k: Buffer.from(e.path) }));
    keyed.sort((a, b) => Buffer.compare(a.k, b.k));
    for (const { e, k } of keyed) {
      const why = checkStoredPath(k, 0, k.length);
      if (why !== null) throw corrupt(`special entry '${e.path.slice(0, 200)}': ${why}`);
      if (specialType(e.mode) === null) {
        throw corrupt(
          `special entry '${e.path}' has mode 0${e.mode.toString(8)}, not a device, fifo or socket`,
        );
      }
      if (this.byPath.has(e.path) || ix.find(k) >= 0)
        throw corrupt(`special entry '${e.path}' is listed twice`);
      this.byPath.set(e.path, { e, k: this.byPath.size });
      const parent = parentOf(e.path);
      const siblings = this.byParent.get(parent);
      if (siblings) siblings.push(e);
      else this.byParent.set(parent, [e]);
      for (let d = parent; d !== "" && !this.impliedDirs.has(d); d = parentOf(d)) {
        const i = ix.find(Buffer.from(d));
        if (i >= 0) {
          if ((ix.mode(i) & S_IFMT) !== 0o040000) {
            throw corrupt(`special entry '${e.path}' lies beneath '${d}', which is not a directory`);
          }
          break;
        }
        const [lo, hi] = ix.descendantRange(Buffer.from(d));
        if (lo < hi) break;
        this.impliedDirs.add(d);
      }
    }
    this.specials = keyed.map((x) => x.e);
    for (const { target } of reader.extension.hardlinks ?? []) {
      this.linkCounts.set(target, (this.linkCounts.get(target) ?? 1) + 1);
    }
  }

  special(path: string): SpecialEntry | undefined {
    return this.byPath.get(path)?.e;
  }

  /** Position of a special entry in `specials` (a stable number for inode numbers), or -1. */
  specialIndex(path: string): number {
    return this.byPath.get(path)?.k ?? -1;
  }

  /** Special entries directly inside a directory ("" is the root), in byte-wise order. */
  specialsIn(dir: string): readonly SpecialEntry[] {
    return this.byParent.get(dir) ?? [];
  }

  /** Special entries at or under a path (list semantics: `a` matches `a` and `a/…`). */
  specialsUnder(prefix: string): SpecialEntry[] {
    if (prefix === "") return [...this.specials];
    const under = `${prefix}/`;
    return this.specials.filter((e) => e.path === prefix || e.path.startsWith(under));
  }

  /** The index position whose object entry `i` shares (itself unless it is a hard link). */
  inodeOf(i: number): number {
    const t = this.reader.hardlinkTarget(i);
    return t >= 0 ? t : i;
  }

  /** Names a regular file has: 1, or the size of its hard-link group. */
  nlink(i: number): number {
    return this.linkCounts.get(this.inodeOf(i)) ?? 1;
  }

  /** uid, gid, extra times and xattrs of index entry `i`, when recorded. */
  attrs(i: number): EntryAttrs | undefined {
    return i >= 0 ? this.reader.attributesAt(i) : undefined;
  }
}
