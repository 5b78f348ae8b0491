/**
 * Recently decoded entries (pieces of compressed files read in large requests, as FUSE reads them):
 * the store against a model of a small LRU, and the Reader's piece reads of compressed and encrypted
 * entries, interleaved across more files than it keeps, against the files' bytes.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { RecentDecodes } from "../../src/container/recent-decodes.ts";
import { Reader, Writer } from "../../src/index.ts";
import { content, Prng } from "../craft.ts";
import { tempDir } from "../helpers.ts";

const KiB = 1024;

describe("RecentDecodes", () => {
  it("answers the latest bytes of the last entries put, forgets the least recently used (property)", () => {
    const opArb = fc.oneof(
      fc.record({ put: fc.integer({ min: 0, max: 7 }), size: fc.nat({ max: 3 * 1024 * 1024 }) }),
      fc.record({ get: fc.integer({ min: 0, max: 7 }) }),
      fc.constant({ clear: true as const }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.array(opArb, { maxLength: 60 }), (slots, ops) => {
        const store = new RecentDecodes(slots);
        // Model: ids most recently used last, with the bytes each was last put with.
        let order: number[] = [];
        const bytes = new Map<number, Buffer>();
        let serial = 0;
        for (const op of ops) {
          if ("clear" in op) {
            store.clear();
            order = [];
            continue;
          }
          if ("put" in op) {
            const data = Buffer.alloc(op.size, serial++ & 0xff);
            if (op.size > 0) data[op.size - 1] = serial & 0x7f;
            store.put(op.put, data);
            bytes.set(op.put, data);
            order = [...order.filter((id) => id !== op.put), op.put];
            if (order.length > slots) order.shift();
            continue;
          }
          const got = store.get(op.get);
          if (order.includes(op.get)) {
            assert.ok(got?.equals(bytes.get(op.get) as Buffer), `entry ${op.get} is kept, with its bytes`);
            order = [...order.filter((id) => id !== op.get), op.get];
          } else assert.equal(got, undefined, `entry ${op.get} was forgotten`);
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe("Reader: large pieces of compressed and encrypted entries", () => {
  const dir = tempDir("bfc-pieces-");

  it("interleaved piece reads of more files than are kept return each file's bytes", async () => {
    for (const [name, opts] of [
      ["zstd", { compression: "zstd" as const }],
      ["zstd+key", { compression: "zstd" as const, key: Buffer.alloc(32, 7) }],
    ] as const) {
      const files = new Map<string, Buffer>();
      for (let k = 0; k < 7; k++)
        files.set(`f${k}.bin`, content(k % 2 ? "text" : "random", 300 * KiB + k * 777, k));
      const file = path.join(dir, `${name}.bfc`);
      const w = await Writer.create(file, opts);
      for (const [n, data] of files) await w.addFile(n, data);
      await w.finish();
      const r = Reader.openSync(file, "key" in opts ? { key: opts.key } : {});
      try {
        const rng = new Prng(name.length);
        for (let round = 0; round < 120; round++) {
          const [n, data] = rng.pick([...files]);
          const pos = rng.pick([0, 64 * KiB, 128 * KiB, rng.int(0, data.length), data.length - 10]);
          const len = rng.pick([64 * KiB, 128 * KiB, 256 * KiB, 1024 * KiB, 100 * KiB + 3]);
          const want = data.subarray(pos, pos + len);
          const into = Buffer.alloc(len + 3, 0xee);
          const got = r.readIntoAtSync(r.find(n), into, 3, len, pos);
          assert.equal(got, want.length);
          assert.ok(into.subarray(3, 3 + got).equals(want), `${name}: ${n}@${pos}+${len}`);
          assert.ok(into.subarray(0, 3).equals(Buffer.alloc(3, 0xee)), "nothing written before offset");
        }
      } finally {
        r.close();
        fs.rmSync(file);
      }
    }
  });

  it("a corrupted compressed entry read in pieces fails every time, and never answers from another entry", async () => {
    const file = path.join(dir, "bad.bfc");
    const a = content("text", 400 * KiB, 1);
    const b = content("text", 400 * KiB, 2);
    const w = await Writer.create(file, { compression: "zstd" });
    await w.addFile("a.bin", a);
    await w.addFile("b.bin", b);
    await w.finish();
    let r = Reader.openSync(file);
    const loc = r.entryAt(r.find("b.bin"));
    r.close();
    // Flip a byte inside b's compressed payload.
    const fd = fs.openSync(file, "r+");
    const at = loc.objectOffset + loc.objectSize - 20;
    const one = Buffer.alloc(1);
    fs.readSync(fd, one, 0, 1, at);
    one[0] = (one[0] as number) ^ 0xff;
    fs.writeSync(fd, one, 0, 1, at);
    fs.closeSync(fd);
    r = Reader.openSync(file);
    try {
      const into = Buffer.alloc(128 * KiB);
      assert.equal(r.readIntoAtSync(r.find("a.bin"), into, 0, 128 * KiB, 0), 128 * KiB);
      assert.ok(into.equals(a.subarray(0, 128 * KiB)));
      for (let k = 0; k < 3; k++) {
        assert.throws(
          () => r.readIntoAtSync(r.find("b.bin"), into, 0, 128 * KiB, 128 * KiB * k),
          (e: Error) =>
            ["CRC_MISMATCH", "DECOMPRESS_FAILED", "SIZE_MISMATCH"].includes(
              (e as { reason?: string }).reason ?? "",
            ),
        );
      }
      assert.equal(r.readIntoAtSync(r.find("a.bin"), into, 0, 128 * KiB, 256 * KiB), 128 * KiB);
      assert.ok(into.equals(a.subarray(256 * KiB, 384 * KiB)));
    } finally {
      r.close();
    }
  });
});
