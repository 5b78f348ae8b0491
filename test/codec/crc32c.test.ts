/**
 * CRC-32C as BFC computes it (init 0, no final xor): known answers, an independent table
 * implementation as oracle, and streaming continuation.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { crc32c, crc32cTextbook } from "../../src/codec/crc32c.ts";
import { VECTORS } from "../helpers.ts";

/** Bitwise reference: reflected Castagnoli polynomial, init 0, no xorout. */
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function oracle(data: Uint8Array, crc = 0): number {
  let c = crc >>> 0;
  for (const b of data) c = (TABLE[(c ^ b) & 0xff] ^ (c >>> 8)) >>> 0;
  return c >>> 0;
}

describe("crc32c", () => {
  it('"123456789" gives 0x58E3FA20 (init 0, no xorout), not the textbook 0xE3069283', () => {
    const data = Buffer.from("123456789");
    assert.equal(crc32c(data), 0x58e3fa20);
    assert.equal(crc32cTextbook(data), 0xe3069283);
    assert.equal(oracle(data), 0x58e3fa20);
  });

  it("empty input gives 0", () => {
    assert.equal(crc32c(Buffer.alloc(0)), 0);
    assert.equal(crc32c(new Uint8Array(0), 0), 0);
  });

  it("all-zero buffers of any length give 0", () => {
    for (const n of [1, 2, 3, 4, 7, 8, 15, 16, 63, 64, 1000, 4096, 65536, 1 << 20]) {
      assert.equal(crc32c(Buffer.alloc(n)), 0, `length ${n}`);
    }
  });

  it("matches the checksums the reference recorded for the vector inputs", () => {
    const input = path.join(VECTORS, "input");
    assert.equal(crc32c(fs.readFileSync(path.join(input, "hello.txt"))), 0x0662bd9b);
    assert.equal(crc32c(fs.readFileSync(path.join(input, "a63.txt"))), 0x92fd3e95);
    assert.equal(crc32c(fs.readFileSync(path.join(input, "random.bin"))), 0xe2391eae);
    assert.equal(crc32c(Buffer.from("hello.txt")), 0xf17baa4d); // symlink target input/hello-link
  });

  it("agrees with an independent bitwise implementation (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (data) => {
        assert.equal(crc32c(data), oracle(data));
      }),
      { seed: 0xc3c, numRuns: 300 },
    );
  });

  it("streaming continuation equals one-shot at any split points (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), fc.array(fc.nat(), { maxLength: 6 }), (data, cuts) => {
        const points = [...new Set(cuts.map((c) => (data.length ? c % (data.length + 1) : 0)))].sort(
          (a, b) => a - b,
        );
        let crc = 0;
        let prev = 0;
        for (const p of [...points, data.length]) {
          crc = crc32c(data.subarray(prev, p), crc);
          prev = p;
        }
        assert.equal(crc, crc32c(data));
      }),
      { seed: 0x5eed, numRuns: 300 },
    );
  });

  it("always returns an unsigned 32-bit integer", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.nat({ max: 0xffffffff }), (d, prev) => {
        const c = crc32c(d, prev);
        assert.ok(Number.isInteger(c) && c >= 0 && c <= 0xffffffff);
        assert.equal(c, oracle(d, prev));
      }),
      { seed: 7, numRuns: 200 },
    );
  });
});
