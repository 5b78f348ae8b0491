/** The 56-byte footer: round trip and the reference's open-time bounds checks. */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { crc32c } from "../../src/codec/crc32c.ts";
import { FOOTER_SIZE } from "../../src/format/constants.ts";
import { decodeFooter, encodeFooter } from "../../src/format/footer.ts";
import { VECTORS } from "../helpers.ts";

describe("footer", () => {
  it("encode then decode round-trips for any consistent layout (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 4096, max: Number.MAX_SAFE_INTEGER - 2 ** 41 }),
        fc.integer({ min: 1, max: 2 ** 40 }),
        fc.nat({ max: 0xffffffff }),
        fc.nat({ max: 1000 }),
        (indexOffset, indexSize, indexCrc, slack) => {
          const buf = encodeFooter({ indexSize, indexCrc, indexOffset });
          assert.equal(buf.length, FOOTER_SIZE);
          assert.equal(buf.toString("latin1", 0, 8), "BFCFIDX\0");
          assert.equal(buf.toString("latin1", 48, 56), "BFCFEND\0");
          assert.ok(
            buf.subarray(28, 48).every((b) => b === 0),
            "container_crc and reserved are zero",
          );
          const fileSize = indexOffset + indexSize + FOOTER_SIZE + slack;
          assert.deepEqual(decodeFooter(buf, fileSize), { indexSize, indexCrc, indexOffset });
          // One byte less and the index would run into the footer.
          assert.throws(() => decodeFooter(buf, fileSize - slack - 1), { reason: "BAD_FOOTER" });
        },
      ),
      { seed: 0xf007, numRuns: 300 },
    );
  });

  it("field offsets: index_size 8, index_crc 16, index_offset 20 (misaligned)", () => {
    const b = encodeFooter({ indexSize: 0x1122, indexCrc: 0xcafebabe, indexOffset: 0x334455 });
    assert.equal(b.readBigUInt64LE(8), 0x1122n);
    assert.equal(b.readUInt32LE(16), 0xcafebabe);
    assert.equal(b.readBigUInt64LE(20), 0x334455n);
  });

  it("rejects bad tags, zero or huge index sizes, offsets at or past the end", () => {
    const good = encodeFooter({ indexSize: 100, indexCrc: 1, indexOffset: 5000 });
    const size = 5000 + 100 + 56;
    assert.deepEqual(decodeFooter(good, size), { indexSize: 100, indexCrc: 1, indexOffset: 5000 });
    for (const at of [0, 7, 48, 55]) {
      const b = Buffer.from(good);
      b[at] ^= 1;
      assert.throws(() => decodeFooter(b, size), { reason: "BAD_FOOTER", field: "footer.tag" });
    }
    assert.throws(() => decodeFooter(encodeFooter({ indexSize: 0, indexCrc: 0, indexOffset: 5000 }), size), {
      reason: "BAD_FOOTER",
      field: "footer.index_size",
    });
    assert.throws(() => decodeFooter(encodeFooter({ indexSize: 1, indexCrc: 0, indexOffset: size }), size), {
      reason: "BAD_FOOTER",
      field: "footer.index_offset",
    });
    const huge = Buffer.from(good);
    huge.writeBigUInt64LE(2n ** 64n - 1n, 8);
    assert.throws(() => decodeFooter(huge, size), { reason: "BAD_FOOTER" });
    const near53 = Buffer.from(good);
    near53.writeBigUInt64LE(2n ** 53n - 1n, 8);
    assert.throws(() => decodeFooter(near53, size), { reason: "BAD_FOOTER", field: "footer.index_size" });
    const hugeOff = Buffer.from(good);
    hugeOff.writeBigUInt64LE(2n ** 63n, 20);
    assert.throws(() => decodeFooter(hugeOff, size), { reason: "BAD_FOOTER" });
    assert.throws(() => decodeFooter(good.subarray(1), size), { reason: "TRUNCATED" });
  });

  it("ignores container_crc and the reserved bytes, as the reference does", () => {
    const b = encodeFooter({ indexSize: 10, indexCrc: 2, indexOffset: 4096 });
    b.fill(0x5a, 28, 48);
    assert.deepEqual(decodeFooter(b, 4096 + 10 + 56), { indexSize: 10, indexCrc: 2, indexOffset: 4096 });
  });

  it("decodes the vector footers; the index CRC matches; index ends at the footer", () => {
    for (const n of ["plain.bfc", "zstd.bfc", "password.bfc"]) {
      const file = fs.readFileSync(path.join(VECTORS, "containers", n));
      const f = decodeFooter(file.subarray(file.length - FOOTER_SIZE), file.length);
      assert.equal(f.indexOffset + f.indexSize, file.length - FOOTER_SIZE, n);
      assert.equal(crc32c(file.subarray(f.indexOffset, f.indexOffset + f.indexSize)), f.indexCrc, n);
    }
  });
});
