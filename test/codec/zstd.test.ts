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

  it("one reused decoder: any mix of good, corrupt, truncated, oversized and empty frames decodes like fresh ones (property)", () => {
    const good = (k: number) => content(k % 2 ? "text" : "random", 1 + ((k * 7919) % 40_000), k);
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.constantFrom("good", "corrupt", "truncated", "oversized", "empty"), fc.nat(50)),
          {
            maxLength: 30,
          },
        ),
        (ops) => {
          for (const [kind, k] of ops) {
            const data = kind === "empty" ? Buffer.alloc(0) : good(k);
            const frame = zstdCompressSync(data, 3);
            if (kind === "good" || kind === "empty") {
              assert.deepEqual(zstdDecompressSync(frame, data.length), data);
            } else if (kind === "oversized") {
              assert.throws(
                () => zstdDecompressSync(frame, Math.max(0, data.length - 1 - (k % 5))),
                RangeError,
              );
            } else if (kind === "truncated") {
              assert.throws(() =>
                zstdDecompressSync(frame.subarray(0, frame.length - 1 - (k % 4)), data.length),
              );
            } else {
              const bad = Buffer.from(frame);
              const at = 4 + (k % (bad.length - 4));
              bad[at] = (bad[at] as number) ^ (1 << (k % 8));
              let out: Buffer | undefined;
              try {
                out = zstdDecompressSync(bad, data.length);
              } catch {
                // refused: fine
              }
              // what does come out is never longer than the entry claims (its CRC catches the rest)
              if (out) assert.ok(out.length <= data.length);
            }
          }
          // and the decoder is sound afterwards
          const after = good(7);
          assert.deepEqual(zstdDecompressSync(zstdCompressSync(after, 3), after.length), after);
        },
      ),
      { seed: 0x5eed, numRuns: 25 },
    );
  });

  it("looksLikeZstd needs the 4-byte magic", () => {
    assert.equal(looksLikeZstd(Buffer.from([0x28, 0xb5, 0x2f])), false);
    assert.equal(looksLikeZstd(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), true);
    assert.equal(looksLikeZstd(Buffer.from("hello")), false);
  });
});
