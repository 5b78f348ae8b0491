/**
 * The extension area's entries and attributes for the listing commands: special entries (device
 * nodes, fifos, sockets) merged into index listings as pseudo-entries, and each entry's extras
 * (owner, times, xattrs, link count, device numbers) for `list --json` and `stat`.
 */
import { ExtendedEntries, specialAsEntry, specialType } from "../container/extended-entries.ts";
import type { Entry, Reader } from "../container/reader.ts";
import type { SpecialEntry } from "../format/extension.ts";
import type { EntryExtras } from "./format.ts";

/** A listed entry: an index entry, or a special entry shown like one (index -1, no object). */
export interface Listed {
  entry: Entry;
  special?: SpecialEntry;
}

/** Extended entries of a container, or null when its extension area adds none (the usual case). */
export function extendedOf(r: Reader): ExtendedEntries | null {
  return ExtendedEntries.of(r);
}

/** Index entries and special entries merged in byte-wise path order. */
export function* mergeSpecials(
  entries: Iterable<Entry>,
  specials: readonly SpecialEntry[],
): Generator<Listed> {
  let k = 0;
  const keys = specials.map((s) => Buffer.from(s.path));
  for (const entry of entries) {
    const key = Buffer.from(entry.path);
    while (k < specials.length && Buffer.compare(keys[k] as Buffer, key) < 0) {
      const s = specials[k++] as SpecialEntry;
      yield { entry: specialAsEntry(s), special: s };
    }
    yield { entry };
  }
  while (k < specials.length) {
    const s = specials[k++] as SpecialEntry;
    yield { entry: specialAsEntry(s), special: s };
  }
}

/** What the extension area records about a listed entry. */
export function extrasOf(x: ExtendedEntries, l: Listed): EntryExtras {
  const out: EntryExtras = {};
  const s = l.special;
  const i = l.entry.index;
  const attrs = s ? s.attrs : x.attrs(i);
  if (s) {
    out.specialType = specialType(s.mode) ?? undefined;
    if (out.specialType === "character" || out.specialType === "block") {
      out.rdevMajor = s.rdevMajor;
      out.rdevMinor = s.rdevMinor;
    }
  } else if (i >= 0 && l.entry.type === "file") {
    const owner = x.inodeOf(i);
    if (owner !== i) out.hardlinkOf = x.reader.index.path(owner);
    out.nlink = x.nlink(i);
  }
  if (attrs) {
    out.uid = attrs.uid;
    out.gid = attrs.gid;
    out.atimeNs = attrs.atimeNs;
    out.ctimeNs = attrs.ctimeNs;
    out.birthtimeNs = attrs.birthtimeNs;
    out.xattrs = attrs.xattrs;
  }
  return out;
}
