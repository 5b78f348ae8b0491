/**
 * Applying an overlay's upper directory to a tree (checkpoints), without mounting anything: the
 * upper and merged directories are laid out by hand as overlayfs leaves them, the target is a
 * small in-memory tree, and the result must equal the merged view.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { applyUpperLayer, type LayerTarget } from "../../src/runtime/overlay-layer.ts";
import { tempDir, writeTree } from "../helpers.ts";

type Item =
  | { kind: "file"; data: string; mode: number }
  | { kind: "directory"; mode: number }
  | { kind: "symlink"; target: string };

/** A tree keyed by path; directories' children are found by prefix. */
class MemoryTarget implements LayerTarget {
  readonly items = new Map<string, Item>();
  readonly ops: string[] = [];
  constructor(items: Record<string, Item>) {
    for (const [p, i] of Object.entries(items)) this.items.set(p, i);
  }
  readdir(dir: string): string[] {
    const pre = dir === "" ? "" : `${dir}/`;
    return [...this.items.keys()]
      .filter((p) => p.startsWith(pre) && p !== dir && !p.slice(pre.length).includes("/"))
      .map((p) => p.slice(pre.length));
  }
  kind(p: string) {
    return this.items.get(p)?.kind ?? null;
  }
  async addFile(p: string, source: string, meta: { mode: number }) {
    this.ops.push(`file ${p}`);
    this.items.set(p, { kind: "file", data: fs.readFileSync(source, "utf8"), mode: meta.mode });
  }
  mkdir(p: string, meta: { mode: number }) {
    this.ops.push(`mkdir ${p}`);
    this.items.set(p, { kind: "directory", mode: meta.mode });
  }
  symlink(p: string, target: Buffer) {
    assert.equal(this.items.has(p), false, `symlink over existing ${p}`);
    this.ops.push(`symlink ${p}`);
    this.items.set(p, { kind: "symlink", target: target.toString() });
  }
  remove(p: string) {
    this.ops.push(`remove ${p}`);
    for (const k of [...this.items.keys()]) if (k === p || k.startsWith(`${p}/`)) this.items.delete(k);
  }
  setMeta(p: string, meta: { mode: number }) {
    const i = this.items.get(p);
    if (i && i.kind !== "symlink") i.mode = meta.mode;
  }
}

/** The tree under `dir` in the target's terms. */
function snapshot(dir: string): Record<string, Item> {
  const out: Record<string, Item> = {};
  for (const rel of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const full = path.join(dir, rel);
    const st = fs.lstatSync(full);
    if (st.isSymbolicLink()) out[rel] = { kind: "symlink", target: fs.readlinkSync(full) };
    else if (st.isDirectory()) out[rel] = { kind: "directory", mode: st.mode & 0o7777 };
    else out[rel] = { kind: "file", data: fs.readFileSync(full, "utf8"), mode: st.mode & 0o7777 };
  }
  return out;
}

describe("overlay upper layer -> tree", () => {
  it("adds files, directories and symlinks; removes what the merged view no longer has", async () => {
    const root = tempDir("bfc-layer-");
    const lower = path.join(root, "lower");
    const upper = path.join(root, "upper");
    const merged = path.join(root, "merged");
    writeTree(lower, {
      "etc/hostname": "old\n",
      "etc/os-release": "NAME=x\n",
      "keep/untouched.txt": "same\n",
      "gone/a.txt": "a\n",
      "opaque/old.txt": "old\n",
      link: { link: "etc/hostname" },
      "was-file": "f\n",
    });
    // After: etc/hostname changed, etc/os-release deleted, etc/new added; gone/ deleted; opaque/
    // removed and made again with new.txt; link retargeted; was-file replaced by a directory;
    // a new directory tree with a symlink.
    writeTree(upper, {
      "etc/hostname": "new\n",
      "etc/new": "added\n",
      "opaque/new.txt": "new\n",
      link: { link: "etc/new" },
      "was-file/inside": "i\n",
      "fresh/deeper/file": "d\n",
      "fresh/ln": { link: "deeper/file" },
    });
    fs.chmodSync(path.join(upper, "etc", "new"), 0o600);
    fs.cpSync(lower, merged, { recursive: true, verbatimSymlinks: true });
    fs.rmSync(path.join(merged, "etc", "os-release"));
    fs.rmSync(path.join(merged, "gone"), { recursive: true });
    fs.rmSync(path.join(merged, "opaque"), { recursive: true });
    fs.rmSync(path.join(merged, "link"));
    fs.rmSync(path.join(merged, "was-file"));
    fs.cpSync(upper, merged, { recursive: true, verbatimSymlinks: true, force: true });

    const target = new MemoryTarget(snapshot(lower));
    const sum = await applyUpperLayer(upper, merged, target);
    assert.deepEqual(
      Object.fromEntries([...target.items].sort()),
      Object.fromEntries(Object.entries(snapshot(merged)).sort()),
    );
    assert.deepEqual(
      { files: sum.files, directories: sum.directories, symlinks: sum.symlinks, skipped: sum.skipped },
      { files: 5, directories: 5, symlinks: 2, skipped: [] },
    );
    assert.ok(target.ops.includes("remove gone"));
    assert.ok(target.ops.includes("remove opaque/old.txt"), "an opaque directory's old entries go");
    assert.ok(
      !target.ops.some((o) => o.includes("keep")),
      "directories absent from the upper layer are not touched",
    );
    assert.equal((target.items.get("etc/new") as { mode: number }).mode, 0o600);
  });

  it("an empty upper layer changes nothing", async () => {
    const root = tempDir("bfc-layer-");
    writeTree(path.join(root, "lower"), { "a/b": "1", c: "2" });
    fs.mkdirSync(path.join(root, "upper"));
    const target = new MemoryTarget(snapshot(path.join(root, "lower")));
    await applyUpperLayer(path.join(root, "upper"), path.join(root, "lower"), target);
    assert.deepEqual(target.ops, []);
  });
});
