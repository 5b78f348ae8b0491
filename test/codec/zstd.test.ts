/** zstd frames as the reference writes them (content size recorded, no checksum) and bounded decoding. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { looksLikeZstd, zstdCompressSync, zstdDecompressSync } from "../../src/codec/zstd.ts";
import { content } from "../craft.ts";

describe("zstd", () => {
  it("round-trips at every level (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 22 }),
        fc.constantFrom("random", "text", "zeros") as fc.Arbitrary<"random" | "text" | "zeros">,
        fc.integer({ min: 1, max: 5000 }),
        fc.nat(),
        (level, kind, size, seed) => {
          const data = content(kind, size, seed);
          const frame = zstdCompressSync(data, level);
          assert.ok(looksLikeZstd(frame));
          assert.deepEqual(zstdDecompressSync(frame, data.length), data);
        },
      ),
      { seed: 0x257d, numRuns: 60 },
    );
  });

  it("writes one frame with the content size and without a checksum", () => {
    const data = content("text", 10000, 1);
    const frame = zstdCompressSync(data, 3);
    assert.equal(frame.readUInt32LE(0), 0xfd2fb528);
    const fhd = frame[4];
    assert.equal(fhd & 0x04, 0, "no content checksum flag");
    assert.ok(fhd >> 6 !== 0 || fhd & 0x20, "frame content size present");
  });

  it("never decodes more than the expected size (a bomb is cut off, as an error)", () => {
    const frame = zstdCompressSync(Buffer.alloc(1 << 20), 3);
    assert.throws(() => zstdDecompressSync(frame, 1000), RangeError);
  });

  it("looksLikeZstd needs the 4-byte magic", () => {
    assert.equal(looksLikeZstd(Buffer.from([0x28, 0xb5, 0x2f])), false);
    assert.equal(looksLikeZstd(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), true);
    assert.equal(looksLikeZstd(Buffer.from("hello")), false);
  });
});
