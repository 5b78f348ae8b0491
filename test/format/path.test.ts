/**
 * Path rules: our canonical normalizer, lookups, the stored-path check, and the reference's
 * normalizer reproduced case by case from the format spec §13.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Writer } from "../../src/container/writer.ts";
import {
  baseName,
  checkStoredPath,
  normalizeLookup,
  normalizePath,
  parentOf,
  referenceCanLookUp,
  referenceNormalize,
} from "../../src/format/path.ts";
import { componentArb, pathArb } from "../craft.ts";
import { tempDir } from "../helpers.ts";

const stored = (p: string) => {
  const b = Buffer.from(p);
  return checkStoredPath(b, 0, b.length);
};

describe("referenceNormalize reproduces every case of the spec's §13 table", () => {
  const table: [string, string | null][] = [
    ["a//b/", "a/b"],
    ["dir//", "dir"],
    [".hidden", ".hidden"],
    ["a/.hidden", "a/.hidden"],
    ["..a", "..a"],
    ["a..b", "a..b"],
    ["...x", "...x"],
    ["x/..y", "x/..y"],
    ["a/./b", "a/./b"],
    ["a/b/./c", "a/b/./c"],
    [".", null],
    ["..", null],
    ["./", null],
    ["./a", null],
    ["a/.", null],
    ["../x", null],
    ["x/..", null],
    ["x/../y", null],
    ["a.", null],
    ["file.", null],
    ["foo..", null],
    ["x/y..", null],
    ["...", null],
    ["/a", null],
    ["//a", null],
    ["a\\b", "a\\b"],
    ["a\tb", "a\tb"],
    ["\tlead", "\tlead"],
    ["  spaces", "  spaces"],
    ["c:d", "c:d"],
    ["C:\\x", "C:\\x"],
    ["", null],
  ];
  for (const [input, want] of table) {
    it(`${JSON.stringify(input)} → ${want === null ? "rejected" : JSON.stringify(want)}`, () => {
      assert.equal(referenceNormalize(input), want);
    });
  }

  it("measures the 65535-byte limit before normalizing; no Unicode normalization", () => {
    assert.equal(referenceNormalize("a".repeat(65535)), "a".repeat(65535));
    assert.equal(referenceNormalize("a".repeat(65536)), null);
    assert.equal(referenceNormalize(`${"a".repeat(65534)}//`), null);
    assert.equal(referenceNormalize("e\u0301"), "e\u0301");
    assert.equal(referenceNormalize("\u00e9"), "\u00e9");
  });

  it("a path ending in '.' or with a component ending in '..' cannot be looked up by the reference", () => {
    assert.equal(referenceCanLookUp("a."), false);
    assert.equal(referenceCanLookUp("x/y.."), false);
    assert.equal(referenceCanLookUp("a../b"), false);
    assert.equal(referenceCanLookUp("a./b"), true);
    assert.equal(referenceCanLookUp(".hidden/x"), true);
    assert.equal(referenceCanLookUp("a/b"), true);
  });
});

describe("normalizePath (what the writer stores)", () => {
  it("canonicalizes", () => {
    assert.equal(normalizePath("a//b/"), "a/b");
    assert.equal(normalizePath("dir//"), "dir");
    // Deliberately stricter than the reference: '.' components are dropped, not kept verbatim.
    assert.equal(normalizePath("a/./b"), "a/b");
    assert.equal(normalizePath("./a"), "a");
    assert.equal(normalizePath("a/."), "a");
    // Names the reference rejects but that are valid are stored (with a writer warning).
    assert.equal(normalizePath("a."), "a.");
    assert.equal(normalizePath("..."), "...");
    for (const same of [
      ".hidden",
      "..a",
      "a..b",
      "x/..y",
      "a\\b",
      "a\tb",
      "  lead",
      "c:d",
      "\u{1F600}",
      "e\u0301",
    ]) {
      assert.equal(normalizePath(same), same);
    }
  });

  const rejects: [string, string][] = [
    ["", "EINVAL"],
    ["/a", "EINVAL"],
    ["//a", "EINVAL"],
    ["..", "EINVAL"],
    ["../x", "EINVAL"],
    ["x/..", "EINVAL"],
    ["x/../y", "EINVAL"],
    [".", "EINVAL"],
    ["./", "EINVAL"],
    ["a/\0", "EINVAL"],
    ["a".repeat(65536), "ENAMETOOLONG"],
  ];
  for (const [input, code] of rejects) {
    it(`rejects ${JSON.stringify(input.slice(0, 20))} with ${code}`, () => {
      assert.throws(() => normalizePath(input), { code, reason: "BAD_PATH" });
    });
  }

  it("accepts exactly 65535 bytes, counted in UTF-8", () => {
    assert.equal(normalizePath("a".repeat(65535)).length, 65535);
    assert.throws(() => normalizePath("é".repeat(32768)), { code: "ENAMETOOLONG" });
    assert.equal(normalizePath("é".repeat(32767)).length, 32767);
  });

  it("output is canonical, passes the stored-path check and is idempotent (property)", () => {
    const messy = fc
      .array(fc.oneof(componentArb(), fc.constantFrom("", ".")), { minLength: 1, maxLength: 6 })
      .map((ps) => ps.join("/"));
    fc.assert(
      fc.property(messy, (input) => {
        let out: string;
        try {
          out = normalizePath(input);
        } catch (e) {
          assert.equal((e as { reason: string }).reason, "BAD_PATH");
          return;
        }
        assert.equal(stored(out), null, out);
        assert.equal(normalizePath(out), out);
        assert.equal(normalizeLookup(out), out);
      }),
      { seed: 0x9a7, numRuns: 400 },
    );
  });

  it("wherever the reference accepts a canonical path, both agree (property)", () => {
    fc.assert(
      fc.property(pathArb(4), (p) => {
        assert.equal(normalizePath(p), p);
        const ref = referenceNormalize(p);
        if (ref !== null) assert.equal(ref, p);
        assert.equal(referenceCanLookUp(p), ref === p);
      }),
      { seed: 0x9a8, numRuns: 400 },
    );
  });
});

describe("normalizeLookup (lookup arguments)", () => {
  it("accepts leading slashes; '', '.', '/' name the root", () => {
    assert.equal(normalizeLookup("/a//b/"), "a/b");
    assert.equal(normalizeLookup("///a"), "a");
    assert.equal(normalizeLookup("./a/./b"), "a/b");
    for (const root of ["", ".", "/", "//", "./", "/./"]) assert.equal(normalizeLookup(root), "");
  });
  it("rejects '..' and NUL", () => {
    for (const bad of ["..", "../a", "a/..", "a/../b", "/..", "a\0"]) {
      assert.throws(() => normalizeLookup(bad), { code: "EINVAL", reason: "BAD_PATH" });
    }
  });
});

describe("checkStoredPath (untrusted index paths)", () => {
  it("accepts canonical paths", () => {
    for (const ok of ["a", "a/b", ".hidden", "a..b", "...", "a.", "a\\b", "\u{1F600}/x"])
      assert.equal(stored(ok), null, ok);
  });
  it("names the problem of each non-canonical path", () => {
    assert.equal(stored(""), "empty path");
    assert.equal(stored("/abs"), "absolute path");
    assert.equal(stored("a//b"), "empty path component");
    assert.equal(stored("a/"), "empty path component");
    assert.equal(stored("./a"), "'.' path component");
    assert.equal(stored("a/."), "'.' path component");
    assert.equal(stored("../x"), "'..' path component");
    assert.equal(stored("a/../../x"), "'..' path component");
    assert.equal(stored("a\0b"), "NUL byte in path");
    assert.equal(stored("a".repeat(65536)), "path longer than 65535 bytes");
  });
  it("respects start and end inside a larger buffer", () => {
    const b = Buffer.from("//a/b//");
    assert.equal(checkStoredPath(b, 2, 5), null);
    assert.equal(checkStoredPath(b, 1, 5), "absolute path");
    assert.equal(checkStoredPath(b, 2, 6), "empty path component");
  });
  it("parentOf and baseName", () => {
    assert.equal(parentOf("a/b/c"), "a/b");
    assert.equal(parentOf("a"), "");
    assert.equal(baseName("a/b/c"), "c");
    assert.equal(baseName("a"), "a");
  });
});

describe("writer warnings for names the reference cannot look up", () => {
  it("calls onWarning for names ending in '.' (and components ending in '..'), not for others", async () => {
    const dir = tempDir();
    const warned: [string, string | undefined][] = [];
    const w = await Writer.create(path.join(dir, "w.bfc"), { onWarning: (m, p) => warned.push([m, p]) });
    await w.addFile("a.", Buffer.from("1"));
    await w.addDirectory("d...");
    await w.addFile("x/y..", Buffer.from("2"));
    await w.addSymlink("l.", "target");
    await w.addFile("p../q", Buffer.from("3"));
    await w.addFile("c./b", Buffer.from("4"));
    await w.addFile(".hidden", Buffer.from("5"));
    await w.addFile("a..b", Buffer.from("6"));
    const summary = await w.finish();
    assert.deepEqual(
      warned.map(([, p]) => p),
      ["a.", "d...", "x/y..", "l.", "p../q"],
    );
    for (const [m, p] of warned) assert.ok(m.includes(`'${p}'`), m);
    assert.deepEqual(
      summary.warnings,
      warned.map(([m]) => m),
    );
  });
});
