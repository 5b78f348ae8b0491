/**
 * The bfc type's listings straight from the index: names as bytes (readdirEncoded, what the FUSE
 * server writes into READDIR replies) and st_nlink counted per directory, against the ordinary
 * listing on trees with implied directories and names that sort between "a" and "a/x".
 */
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Writer } from "../../src/container/writer.ts";
import { D_TYPES, type EncodedListing } from "../../src/vfs/filesystem.ts";
import { createVfs } from "../../src/vfs/index.ts";
import type { Vfs } from "../../src/vfs/vfs.ts";
import { tempDir } from "../helpers.ts";

const BASE = tempDir("bfc-listing-");
let serial = 0;

type Kind = "file" | "dir" | "link";

/** A container holding `entries` in the order given (parents need no entry of their own). */
async function container(entries: [string, Kind][]): Promise<string> {
  const file = path.join(BASE, `c${serial++}.bfc`);
  const w = await Writer.create(file, { compression: "none" });
  for (const [p, kind] of entries) {
    if (kind === "dir") await w.addDirectory(p);
    else if (kind === "link") await w.addSymlink(p, "target");
    else await w.addFile(p, Buffer.from(p));
  }
  await w.finish();
  return file;
}

async function mounted(entries: [string, Kind][]): Promise<Vfs> {
  const vfs = createVfs();
  await vfs.mount("bfc", "/", { path: await container(entries) });
  return vfs;
}

function decoded(l: EncodedListing): { name: string; type: number; ino: number }[] {
  const out: { name: string; type: number; ino: number }[] = [];
  for (let k = 0; k < l.count; k++) {
    out.push({
      name: l.bytes.toString("utf8", l.starts[k], l.ends[k]),
      type: l.types[k] as number,
      ino: l.inos[k] as number,
    });
  }
  return out;
}

/** Checks every directory under `dir`; returns how many listings came encoded and how many not. */
function check(vfs: Vfs, dir: string, seen = { encoded: 0, plain: 0 }): { encoded: number; plain: number } {
  const children = vfs.readdirNodes(dir);
  const want = children.map((c) => ({ name: c.name, type: D_TYPES[c.type], ino: c.ino as number }));
  const enc = vfs.readdirEncoded(dir);
  if (enc === undefined) seen.plain++;
  else {
    seen.encoded++;
    assert.deepEqual(decoded(enc), want, `encoded listing of ${dir}`);
  }
  for (const c of children) {
    const child = dir === "/" ? `/${c.name}` : `${dir}/${c.name}`;
    assert.equal(vfs.lstatNode(child)?.ino, c.ino, `inode number of ${child} as listed`);
  }
  const subdirs = children.filter((c) => c.type === "directory");
  assert.equal(vfs.lstatNode(dir)?.nlink, 2 + subdirs.length, `st_nlink of ${dir}`);
  for (const c of subdirs) check(vfs, dir === "/" ? `/${c.name}` : `${dir}/${c.name}`, seen);
  return seen;
}

describe("bfc type: listings from the index", () => {
  it("lists names as index bytes with the types and inode numbers of the ordinary listing", async () => {
    const vfs = await mounted([
      ["docs", "dir"],
      ["docs/a.txt", "file"],
      ["docs/b", "link"],
      ["docs/sub/deep/x", "file"],
      ["docs/\u00e9t\u00e9", "file"],
      ["docs/\u{1f600}", "dir"],
      ["top", "file"],
    ]);
    const enc = vfs.readdirEncoded("/docs");
    assert.ok(enc, "a plain directory comes encoded");
    assert.deepEqual(
      decoded(enc).map((e) => [e.name, e.type]),
      [
        ["a.txt", D_TYPES.file],
        ["b", D_TYPES.symlink],
        ["sub", D_TYPES.directory],
        ["\u00e9t\u00e9", D_TYPES.file],
        ["\u{1f600}", D_TYPES.directory],
      ],
    );
    assert.deepEqual(check(vfs, "/"), { encoded: 5, plain: 0 });
    // Implied directories: "sub" and "sub/deep" have no entries of their own.
    assert.equal(vfs.lstatNode("/docs")?.nlink, 4);
    assert.equal(vfs.lstatNode("/docs/sub")?.nlink, 3);
    assert.equal(vfs.lstatNode("/")?.nlink, 3);
  });

  it("leaves a directory whose index order is not name order to the ordinary listing", async () => {
    // Index order: "a", "a.txt", "a/x" ('.' sorts before '/'); name order puts "a" first once.
    const vfs = await mounted([
      ["a", "dir"],
      ["a.txt", "file"],
      ["a/x", "file"],
      ["b.d/y", "file"],
      ["b.d-1", "file"],
    ]);
    assert.equal(vfs.readdirEncoded("/"), undefined);
    assert.deepEqual(
      vfs.readdirNodes("/").map((c) => c.name),
      ["a", "a.txt", "b.d", "b.d-1"],
    );
    assert.deepEqual(check(vfs, "/"), { encoded: 2, plain: 1 });
    assert.equal(vfs.lstatNode("/")?.nlink, 4, "a and b.d, each once");
  });

  it("agrees with the ordinary listing on random trees", { timeout: 120_000 }, async () => {
    const names = ["a", "a.txt", "a-1", "a b", "b", "\u00e9", "\u{1f600}", "Z"];
    const entryArb = fc.tuple(
      fc.array(fc.constantFrom(...names), { minLength: 1, maxLength: 3 }),
      fc.constantFrom<Kind>("file", "dir", "link"),
    );
    let encoded = 0;
    let plain = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(entryArb, { minLength: 1, maxLength: 25 }), async (raw) => {
        // One entry per path, and nothing below a file or symlink.
        const kinds = new Map<string, Kind>();
        for (const [parts, kind] of raw) {
          const p = parts.join("/");
          const clash = parts.some((_, k) => {
            const above = kinds.get(parts.slice(0, k).join("/"));
            return above !== undefined && above !== "dir";
          });
          const below = [...kinds.keys()].some((q) => q.startsWith(`${p}/`));
          if (!kinds.has(p) && !clash && !(below && kind !== "dir")) kinds.set(p, kind);
        }
        const vfs = await mounted([...kinds]);
        const seen = check(vfs, "/");
        encoded += seen.encoded;
        plain += seen.plain;
      }),
      { numRuns: 60 },
    );
    assert.ok(encoded > 0 && plain > 0, `both kinds of listing were checked (${encoded} / ${plain})`);
  });
});
