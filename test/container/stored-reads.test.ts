/**
 * Positioned reads of stored (uncompressed, unencrypted) files: small reads are served from cached
 * blocks of the container once the file is verified. Whatever the cache budget, every read returns
 * the file's bytes, and a corrupted file never returns any, even when its neighbour's blocks (which
 * hold some of its bytes) are cached.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Reader, Writer } from "../../src/index.ts";
import { content, Prng } from "../craft.ts";
import { tempDir } from "../helpers.ts";

const KiB = 1024;

async function storedContainer(file: string, files: Map<string, Buffer>): Promise<void> {
  const w = await Writer.create(file, { compression: "none" });
  for (const [name, data] of files) await w.addFile(name, data);
  await w.finish();
}

describe("stored files: small positioned reads", () => {
  const dir = tempDir("bfc-stored-");

  it("return the file's bytes for any budget, block boundary and read size (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 200 * KiB }), { minLength: 1, maxLength: 6 }),
        fc.constantFrom(0, 96 * KiB, 64 * 1024 * KiB),
        fc.nat(),
        async (sizes, cacheBytes, seed) => {
          const files = new Map(sizes.map((n, k) => [`f${k}.bin`, content("random", n, seed + k)]));
          const file = path.join(dir, `p${seed}.bfc`);
          await storedContainer(file, files);
          const rng = new Prng(seed);
          const r = Reader.openSync(file, { cacheBytes });
          try {
            for (let round = 0; round < 40; round++) {
              const [name, data] = rng.pick([...files]);
              const pos = rng.int(0, data.length + 3);
              const len = rng.pick([1, 7, 4096, 4097, 65535, 65536, 70000, rng.int(0, 140 * KiB)]);
              const want = data.subarray(pos, pos + len);
              const how = rng.int(0, 2);
              if (how === 0)
                assert.ok(r.readSync(name, pos, len).equals(want), `readSync ${name}@${pos}+${len}`);
              else if (how === 1)
                assert.ok((await r.read(name, pos, len)).equals(want), `read ${name}@${pos}+${len}`);
              else {
                const into = Buffer.alloc(len + 5, 0xee);
                const n = r.readIntoAtSync(r.find(name), into, 5, len, pos);
                assert.equal(n, want.length);
                assert.ok(into.subarray(5, 5 + n).equals(want), `readIntoAtSync ${name}@${pos}+${len}`);
                assert.ok(into.subarray(0, 5).equals(Buffer.alloc(5, 0xee)), "nothing written before offset");
              }
            }
          } finally {
            r.close();
            fs.rmSync(file);
          }
        },
      ),
      { seed: 0x5704ed, numRuns: 25 },
    );
  });

  it("never return bytes of a corrupted file, even with its neighbour's blocks cached", async () => {
    // Small files lie in the same 64 KiB block of the container.
    const files = new Map([
      ["a.bin", content("random", 3000, 1)],
      ["b.bin", content("random", 3000, 2)],
      ["c.bin", content("random", 3000, 3)],
    ]);
    const file = path.join(dir, "neighbours.bfc");
    await storedContainer(file, files);
    const probe = Reader.openSync(file);
    const b = probe.stat("b.bin");
    probe.close();
    const bytes = fs.readFileSync(file);
    bytes[b.objectOffset + b.objectSize - b.storedSize + 100] ^= 0x40;
    fs.writeFileSync(file, bytes);

    const r = Reader.openSync(file);
    try {
      assert.ok(r.readSync("a.bin", 10, 100).equals((files.get("a.bin") as Buffer).subarray(10, 110)));
      assert.ok(r.readSync("c.bin", 0, 4096).equals(files.get("c.bin") as Buffer));
      for (let k = 0; k < 3; k++) {
        assert.throws(() => r.readSync("b.bin", 200, 10), { reason: "CRC_MISMATCH" });
        const into = Buffer.alloc(16, 0);
        assert.throws(() => r.readIntoAtSync(r.find("b.bin"), into, 0, 16, 0), { reason: "CRC_MISMATCH" });
        assert.ok(into.equals(Buffer.alloc(16, 0)), "no byte of the corrupted file");
      }
      await assert.rejects(r.read("b.bin", 0, 10), { reason: "CRC_MISMATCH" });
      // A first read of a whole file is checked and copied in one pass: still no byte of it.
      const whole = Buffer.alloc(3005, 0);
      assert.throws(() => r.readIntoAtSync(r.find("b.bin"), whole, 5, 3000, 0), { reason: "CRC_MISMATCH" });
      assert.ok(whole.equals(Buffer.alloc(3005, 0)), "no byte of the corrupted file, read whole");
    } finally {
      r.close();
    }
    // In a fresh reader, whole first reads of the good neighbours return their bytes.
    const fresh = Reader.openSync(file);
    try {
      for (const name of ["a.bin", "c.bin"]) {
        const into = Buffer.alloc(3000);
        assert.equal(fresh.readIntoAtSync(fresh.find(name), into, 0, 3000, 0), 3000);
        assert.ok(into.equals(files.get(name) as Buffer), name);
      }
      const into = Buffer.alloc(3000, 0);
      assert.throws(() => fresh.readIntoAtSync(fresh.find("b.bin"), into, 0, 3000, 0), {
        reason: "CRC_MISMATCH",
      });
      assert.ok(into.equals(Buffer.alloc(3000, 0)));
    } finally {
      fresh.close();
    }
  });
});
