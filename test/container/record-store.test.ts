/** The writer's packed index records against the plain IndexRecord encoder they replace. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { crc32c } from "../../src/codec/crc32c.ts";
import { ByteArena } from "../../src/container/byte-arena.ts";
import { RecordStore } from "../../src/container/record-store.ts";
import { encodeIndex, type IndexRecord, sortRecords } from "../../src/format/index-table.ts";

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u53 = fc.oneof(fc.nat({ max: 1 << 30 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));

const recordArb = fc.record({
  objOffset: u53,
  objSize: u53,
  mode: u32,
  mtimeNs: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  comp: u32,
  enc: u32,
  origSize: u53,
  crc: u32,
});

describe("RecordStore", () => {
  it("encodes the same index as sorted IndexRecords, paths of any length and script (property)", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.oneof(
            { weight: 6, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 40 }) },
            {
              weight: 1,
              arbitrary: fc.integer({ min: 9000, max: 20_000 }).map((n) => `long/${"x".repeat(n)}`),
            },
          ),
          { maxLength: 200 },
        ),
        fc.infiniteStream(recordArb),
        fc.uint8Array({ maxLength: 40 }),
        (paths, fields, ext) => {
          const arena = new ByteArena();
          const store = new RecordStore(arena);
          const plain: IndexRecord[] = [];
          const it = fields[Symbol.iterator]();
          paths.forEach((p, k) => {
            // (fast-check's records may lack a prototype; the store's never do)
            const f = { ...(it.next().value as Omit<IndexRecord, "pathBytes">) };
            const bytes = Buffer.from(p);
            // Paths arrive both as strings and as bytes (carried records), interleaved in one arena.
            const ref = k % 3 === 0 ? arena.put(bytes) : arena.putString(p);
            assert.equal(store.push(p, ref, bytes.length, f), k);
            assert.equal(store.path(k), p);
            assert.deepEqual(store.fields(k), f);
            plain.push({ pathBytes: bytes, ...f });
          });
          sortRecords(plain);
          const order = store.sorted();
          assert.deepEqual(
            order.map((i) => store.path(i)),
            plain.map((r) => r.pathBytes.toString()),
          );
          const pieces: Buffer[] = [];
          const written = store.writeIndex(order, Buffer.from(ext), (b) => pieces.push(Buffer.from(b)));
          const want = encodeIndex(plain, Buffer.from(ext));
          assert.deepEqual(Buffer.concat(pieces), want);
          assert.deepEqual(written, { size: want.length, crc: crc32c(want) });
        },
      ),
      { seed: 0x1de7, numRuns: 60 },
    );
  });

  it("refuses an mtime that 64 bits cannot hold", () => {
    const arena = new ByteArena();
    const store = new RecordStore(arena);
    const f = { objOffset: 0, objSize: 0, mode: 0, comp: 0, enc: 0, origSize: 0, crc: 0 };
    assert.throws(() => store.push("a", arena.putString("a"), 1, { ...f, mtimeNs: 2n ** 63n }), {
      reason: "INVALID_ARGUMENT",
    });
    assert.equal(store.count, 0);
  });
});
