/**
 * Turning an overlay's upper directory into changes of the tree below it (a checkpoint). What the
 * upper directory holds is applied as is: regular files, directories, symlinks. Deletions are read
 * from the merged view instead of from whiteouts and opaque-directory xattrs (which Node cannot
 * read): for every directory present in the upper layer, names the target has there but the merged
 * directory does not are removed. That covers whiteouts (a deleted entry), opaque directories (a
 * directory removed and made again) and entries created and deleted again since the last
 * checkpoint, and leaves the target's tree equal to the merged view.
 */
import fs from "node:fs";
import path from "node:path";
import { fromSystemError } from "../errors.ts";

/** The tree a layer is applied to; paths are relative to its root ("" is the root). */
export interface LayerTarget {
  readdir(dir: string): string[];
  kind(p: string): "file" | "directory" | "symlink" | null;
  addFile(p: string, source: string, meta: { mode: number; mtimeNs: bigint }): Promise<void>;
  mkdir(p: string, meta: { mode: number; mtimeNs: bigint }): void;
  symlink(p: string, target: Buffer, meta: { mode: number; mtimeNs: bigint }): void;
  remove(p: string): void;
  setMeta(p: string, meta: { mode: number; mtimeNs: bigint }): void;
}

export interface LayerSummary {
  files: number;
  directories: number;
  symlinks: number;
  removed: number;
  skipped: string[];
}

function names(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (e) {
    throw fromSystemError(e, `cannot read directory '${dir}'`, dir);
  }
}

/** A whiteout: a character device 0/0 standing for a deleted lower entry. */
function isWhiteout(st: fs.BigIntStats): boolean {
  return st.isCharacterDevice() && st.rdev === 0n;
}

/** Applies `upper` (with `merged`, the mounted overlay, for deletions) to `target`. */
export async function applyUpperLayer(
  upper: string,
  merged: string,
  target: LayerTarget,
): Promise<LayerSummary> {
  const sum: LayerSummary = { files: 0, directories: 0, symlinks: 0, removed: 0, skipped: [] };
  const join = (rel: string, n: string) => (rel === "" ? n : `${rel}/${n}`);
  const walk = async (rel: string): Promise<void> => {
    const present = new Set(names(path.join(merged, rel)));
    for (const n of target.readdir(rel)) {
      if (!present.has(n)) {
        target.remove(join(rel, n));
        sum.removed++;
      }
    }
    const here = names(path.join(upper, rel)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const n of here) {
      const p = join(rel, n);
      const full = path.join(upper, rel, n);
      const st = fs.lstatSync(full, { bigint: true });
      if (isWhiteout(st)) continue;
      const meta = { mode: Number(st.mode) & 0o7777, mtimeNs: st.mtimeNs };
      const have = target.kind(p);
      if (st.isDirectory()) {
        if (have !== null && have !== "directory") target.remove(p);
        if (have !== "directory") target.mkdir(p, meta);
        sum.directories++;
        await walk(p);
        // After the children: adding them moves the directory's time.
        target.setMeta(p, meta);
      } else if (st.isFile()) {
        if (have === "directory" || have === "symlink") target.remove(p);
        await target.addFile(p, full, meta);
        sum.files++;
      } else if (st.isSymbolicLink()) {
        if (have !== null) target.remove(p);
        target.symlink(p, fs.readlinkSync(full, { encoding: "buffer" }), meta);
        sum.symlinks++;
      } else {
        sum.skipped.push(p);
      }
    }
  };
  await walk("");
  const root = fs.lstatSync(upper, { bigint: true });
  target.setMeta("", { mode: Number(root.mode) & 0o7777, mtimeNs: root.mtimeNs });
  return sum;
}
