/**
 * The index blob: encode/parse round trip, byte-wise (strcmp) order, lookups, and validation of
 * untrusted entries.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { align16, S_IFDIR, S_IFLNK, S_IFREG } from "../../src/format/constants.ts";
import {
  encodeIndex,
  type IndexRecord,
  IndexTable,
  sortRecords,
  typeOfMode,
} from "../../src/format/index-table.ts";
import { pathArb, storedIndexPaths } from "../craft.ts";
import { VECTORS } from "../helpers.ts";

const END = 2 ** 40;

function rec(p: string | Buffer, over: Partial<IndexRecord> = {}): IndexRecord {
  const pathBytes = Buffer.isBuffer(p) ? p : Buffer.from(p);
  return {
    pathBytes,
    objOffset: 4096,
    objSize: align16(40 + pathBytes.length),
    mode: S_IFREG | 0o644,
    mtimeNs: 0n,
    comp: 0,
    enc: 0,
    origSize: 0,
    crc: 0,
    ...over,
  };
}

const recordArb = (p: string): fc.Arbitrary<IndexRecord> =>
  fc
    .record({
      kind: fc.constantFrom("file", "dir", "link"),
      perm: fc.nat({ max: 0o7777 }),
      objOffset: fc.integer({ min: 4096, max: 2 ** 39 }),
      extra: fc.nat({ max: 2 ** 30 }),
      mtimeNs: fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }),
      comp: fc.constantFrom(0, 1),
      enc: fc.constantFrom(0, 1),
      origSize: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
      crc: fc.nat({ max: 0xffffffff }),
    })
    .map((r) => {
      const pathBytes = Buffer.from(p);
      const file = r.kind === "file";
      return {
        pathBytes,
        objOffset: r.objOffset,
        objSize: align16(40 + pathBytes.length) + r.extra,
        mode: (file ? S_IFREG : r.kind === "dir" ? S_IFDIR : S_IFLNK) | r.perm,
        mtimeNs: r.mtimeNs,
        comp: file ? r.comp : 0,
        enc: file ? r.enc : 0,
        origSize: r.origSize,
        crc: r.crc,
      };
    });

const recordsArb = fc
  .uniqueArray(pathArb(3, 8), { maxLength: 25, selector: (p) => p })
  .chain((paths) => fc.tuple(...paths.map(recordArb)));

describe("index table", () => {
  it("encode then parse returns every record, in byte-wise order (property)", () => {
    fc.assert(
      fc.property(recordsArb, fc.uint8Array({ maxLength: 20 }), (records, ext) => {
        const sorted = [...records];
        sortRecords(sorted);
        const blob = encodeIndex(sorted, Buffer.from(ext));
        assert.equal(blob.readUInt32LE(0), 1);
        assert.equal(blob.readUInt32LE(4), records.length);
        const t = IndexTable.parse(blob, END);
        assert.equal(t.count, records.length);
        for (let i = 0; i < t.count; i++) {
          assert.deepEqual(t.record(i), { ...sorted[i], pathBytes: t.pathBytes(i) });
          assert.deepEqual(t.pathBytes(i), sorted[i].pathBytes);
          assert.equal(t.path(i), sorted[i].pathBytes.toString());
          assert.equal(t.find(sorted[i].pathBytes), i);
          if (i > 0) assert.ok(Buffer.compare(t.pathBytes(i - 1), t.pathBytes(i)) < 0);
        }
        assert.deepEqual(new Uint8Array(t.extension()), ext);
      }),
      { seed: 0x1d3, numRuns: 150 },
    );
  });

  it("parses an unsorted index into byte-wise order, as the reference re-sorts (property)", () => {
    fc.assert(
      fc.property(
        recordsArb.chain((rs) => fc.shuffledSubarray(rs, { minLength: rs.length, maxLength: rs.length })),
        (shuffled) => {
          const t = IndexTable.parse(encodeIndex(shuffled), END);
          const want = shuffled.map((r) => r.pathBytes).sort(Buffer.compare);
          assert.deepEqual(
            Array.from({ length: t.count }, (_, i) => t.pathBytes(i)),
            want,
          );
          for (const r of shuffled) assert.deepEqual(t.record(t.find(r.pathBytes)), r);
        },
      ),
      { seed: 0x50e7, numRuns: 100 },
    );
  });

  it("finds entries beneath a file or symlink, in order or not, once at parse (property)", () => {
    const names = ["a", "a b", "a.txt", "b", "\u00e9"];
    const treeArb = fc
      .uniqueArray(
        fc.array(fc.constantFrom(...names), { minLength: 1, maxLength: 3 }).map((c) => c.join("/")),
        { minLength: 1, maxLength: 12 },
      )
      .chain((paths) => fc.tuple(...paths.map((p) => fc.tuple(fc.constant(p), fc.boolean()))));
    let found = 0;
    fc.assert(
      fc.property(treeArb, fc.boolean(), (tree, shuffle) => {
        const records = tree.map(([p, dir]) => rec(p, { mode: dir ? S_IFDIR | 0o755 : S_IFREG | 0o644 }));
        const want = tree.some(([p]) => tree.some(([q, dir]) => !dir && p.startsWith(`${q}/`)));
        if (want) found++;
        sortRecords(records);
        // Reversed, the index is out of order: the check then waits for the sort.
        const blob = encodeIndex(shuffle ? [...records].reverse() : records);
        const t = IndexTable.parse(blob, END);
        assert.equal(
          t.hasEntriesBelowNonDirectories(),
          want,
          tree.map(([p, d]) => `${p}${d ? "/" : ""}`).join(" "),
        );
        assert.equal(IndexTable.attach(t.share()).hasEntriesBelowNonDirectories(), want, "shared");
      }),
      { seed: 0xbe10, numRuns: 300 },
    );
    assert.ok(found > 20, `trees with entries beneath a non-directory were tried (${found})`);
  });

  it("sorts by UTF-8 bytes, not JS string order", () => {
    const names = [
      "\u{1F600}", // F0 9F 98 80: astral, sorts after high BMP in bytes but first in UTF-16
      "\uFFFD", // EF BF BD
      "\uFF5E",
      "input/a63.txt",
      "input",
      "a/b",
      "a.txt",
      "a",
      "a-b",
      "B",
      "b",
      "é",
      "z",
    ];
    const records = names.map((n) => rec(n));
    sortRecords(records);
    const got = records.map((r) => r.pathBytes.toString());
    assert.deepEqual(got, [
      "B",
      "a",
      "a-b",
      "a.txt",
      "a/b",
      "b",
      "input",
      "input/a63.txt",
      "z",
      "é",
      "\uFF5E",
      "\uFFFD",
      "\u{1F600}",
    ]);
    // JS string comparison disagrees for astral vs high-BMP characters.
    assert.ok("\u{1F600}" < "\uFFFD");
    const t = IndexTable.parse(encodeIndex([...records].reverse()), END);
    assert.deepEqual(
      Array.from({ length: t.count }, (_, i) => t.path(i)),
      got,
    );
  });

  it("the golden vectors store their index in byte-wise order", () => {
    for (const n of ["plain.bfc", "zstd.bfc", "password.bfc"]) {
      const stored = storedIndexPaths(fs.readFileSync(path.join(VECTORS, "containers", n)));
      assert.equal(stored.length, 20);
      for (let i = 1; i < stored.length; i++) assert.ok(Buffer.compare(stored[i - 1], stored[i]) < 0, n);
    }
  });

  it("lowerBound, find and descendantRange", () => {
    const paths = ["a", "a-b", "a.c", "a/b", "a/b/c", "a/d", "a0", "b"];
    const t = IndexTable.parse(encodeIndex(paths.map((p) => rec(p))), END);
    assert.equal(t.find(Buffer.from("a/b")), 3);
    assert.equal(t.find(Buffer.from("a/")), -1);
    assert.equal(t.find(Buffer.from("c")), -1);
    assert.equal(t.lowerBound(Buffer.from("a/")), 3);
    assert.deepEqual(t.descendantRange(Buffer.from("a")), [3, 6]);
    assert.deepEqual(t.descendantRange(Buffer.from("a/b")), [4, 5]);
    assert.deepEqual(t.descendantRange(Buffer.from("b")), [8, 8]);
    assert.deepEqual(t.descendantRange(Buffer.alloc(0)), [0, 8]);
  });

  it("typeOfMode reads the file-type bits", () => {
    assert.equal(typeOfMode(0o100644), "file");
    assert.equal(typeOfMode(0o040755), "directory");
    assert.equal(typeOfMode(0o120777), "symlink");
    assert.equal(typeOfMode(0o010644), "other");
    assert.equal(typeOfMode(0o644), "other");
  });

  describe("rejects hostile index blobs with BAD_INDEX (or UNSUPPORTED)", () => {
    const parse =
      (records: IndexRecord[], end = END) =>
      () =>
        IndexTable.parse(encodeIndex(records), end);

    it("wrong version, short blob, impossible counts", () => {
      const blob = encodeIndex([rec("a")]);
      blob.writeUInt32LE(2, 0);
      assert.throws(() => IndexTable.parse(blob, END), { reason: "BAD_INDEX", field: "index.version" });
      assert.throws(() => IndexTable.parse(Buffer.alloc(7), END), { reason: "BAD_INDEX" });
      const many = encodeIndex([rec("a")]);
      many.writeUInt32LE(0xffffffff, 4);
      assert.throws(() => IndexTable.parse(many, END), { reason: "BAD_INDEX", field: "index.count" });
      const two = encodeIndex([rec("a")]);
      two.writeUInt32LE(2, 4);
      assert.throws(() => IndexTable.parse(two, END), { reason: "BAD_INDEX" });
    });

    it("zero-length and overlong path_len", () => {
      const blob = encodeIndex([rec("a")]);
      blob.writeUInt32LE(0, 8);
      assert.throws(() => IndexTable.parse(blob, END), /empty path/);
      blob.writeUInt32LE(0xfffffff0, 8);
      assert.throws(() => IndexTable.parse(blob, END), { reason: "BAD_INDEX" });
    });

    for (const p of ["../x", "/abs", "a/../../x", "a//b", "./a", "a/.", "a/", "..", ".", "a\0b"]) {
      it(`unsafe path ${JSON.stringify(p)}: rejected when the index is parsed`, () => {
        const check = (e: Error & { reason: string }) => {
          assert.equal(e.reason, "BAD_INDEX");
          assert.match(e.message, /unsafe path|empty path/);
          assert.ok(e.message.includes(p.replace("\0", "\\x00")), e.message);
          return true;
        };
        assert.throws(parse([rec("ok"), rec(p)]), check);
        // Also when the unsafe path shares a prefix with the previous entry's path.
        if (p.startsWith("a"))
          assert.throws(
            parse([rec("a-ok"), rec(p)].sort((x, y) => Buffer.compare(x.pathBytes, y.pathBytes))),
            check,
          );
      });
    }

    it("objects outside the data area or smaller than their header", () => {
      assert.throws(parse([rec("a", { objOffset: 4095 })]), /outside the data area/);
      assert.throws(parse([rec("a", { objOffset: 5000, objSize: 100 })], 5099), /outside the data area/);
      assert.throws(parse([rec("a", { objOffset: 2 ** 52, objSize: 2 ** 52 })]), /outside the data area/);
      assert.throws(parse([rec("a", { objSize: 47 })]), /smaller than its header/);
      const huge = encodeIndex([rec("a")]);
      huge.writeBigUInt64LE(2n ** 64n - 1n, 8 + 4 + 1);
      assert.throws(() => IndexTable.parse(huge, END), { reason: "BAD_INDEX" });
      const hugeSize = encodeIndex([rec("a")]);
      hugeSize.writeBigUInt64LE(2n ** 64n - 1n, 8 + 4 + 1 + 36);
      assert.throws(() => IndexTable.parse(hugeSize, END), { reason: "BAD_INDEX" });
    });

    it("orig_size with a high byte set is rejected", () => {
      for (const big of [2n ** 56n * 0x20n, 2n ** 64n - 1n]) {
        const blob = encodeIndex([rec("a")]);
        blob.writeBigUInt64LE(big, 8 + 4 + 1 + 36);
        assert.throws(() => IndexTable.parse(blob, END), { reason: "BAD_INDEX" }, `orig_size ${big}`);
      }
      const ok = encodeIndex([rec("a")]);
      ok.writeBigUInt64LE(2n ** 53n - 1n, 8 + 4 + 1 + 36);
      assert.equal(IndexTable.parse(ok, END).origSize(0), 2 ** 53 - 1);
    });

    it("orig_size in [2^53, 2^61) is rejected too (not representable as a number)", () => {
      for (const big of [2n ** 53n, 2n ** 56n, 2n ** 60n]) {
        const blob = encodeIndex([rec("a")]);
        blob.writeBigUInt64LE(big, 8 + 4 + 1 + 36);
        assert.throws(() => IndexTable.parse(blob, END), { reason: "BAD_INDEX" }, `orig_size ${big}`);
      }
    });

    it("unknown compression or encryption, or either on a non-file", () => {
      assert.throws(parse([rec("a", { comp: 2 })]), { reason: "UNSUPPORTED" });
      assert.throws(parse([rec("a", { enc: 7 })]), { reason: "UNSUPPORTED" });
      assert.throws(parse([rec("a", { mode: S_IFDIR | 0o755, comp: 1 })]), /only regular files/);
      assert.throws(parse([rec("a", { mode: S_IFLNK | 0o777, enc: 1 })]), /only regular files/);
    });

    it("duplicate paths, sorted or not", () => {
      assert.throws(parse([rec("a"), rec("a")]), /duplicate path 'a'/);
      assert.throws(parse([rec("b"), rec("a"), rec("b")]), /duplicate path 'b'/);
    });
  });
});
