import assert from "node:assert/strict";
import { describe, it } from "node:test";
import zlib from "node:zlib";
import fc from "fast-check";
import {
  zstdDecompressFrames,
  zstdDecompressFramesInto,
  zstdFrameLength,
} from "../../src/codec/zstd-frames.ts";
import { isBfcError } from "../../src/errors.ts";
import { randomBytes } from "../helpers.ts";

function frame(data: Buffer, checksum = false): Buffer {
  return zlib.zstdCompressSync(data, {
    params: { [zlib.constants.ZSTD_c_checksumFlag]: checksum ? 1 : 0 },
  });
}

function skippable(payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32LE(0x184d2a53, 0);
  h.writeUInt32LE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

describe("zstd frame walking", () => {
  it("finds the exact length of frames of every block type, with and without checksums", () => {
    const inputs = [
      Buffer.alloc(0),
      Buffer.alloc(70000, 7), // RLE blocks
      randomBytes(70000, 1), // raw blocks
      Buffer.from("the quick brown fox ".repeat(5000)), // compressed blocks
      Buffer.concat([randomBytes(200000, 2), Buffer.alloc(200000)]), // several blocks of mixed types
    ];
    for (const data of inputs) {
      for (const checksum of [false, true]) {
        const f = frame(data, checksum);
        const tail = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x20]);
        assert.equal(zstdFrameLength(Buffer.concat([f, tail]), 0), f.length);
        assert.equal(zstdFrameLength(f.subarray(0, f.length - 1), 0), -1);
      }
    }
  });

  it("decodes several frames followed by trailing garbage (the head of another frame)", () => {
    const data = Buffer.concat([
      randomBytes(20000, 3),
      Buffer.alloc(30000, 1),
      Buffer.from("x".repeat(15536)),
    ]);
    const parts = [data.subarray(0, 20000), data.subarray(20000, 50000), data.subarray(50000)];
    const stream = Buffer.concat([
      frame(parts[0]),
      skippable(Buffer.from("ignored")),
      frame(parts[1], true),
      frame(parts[2]),
      frame(randomBytes(5000, 9)).subarray(0, 9), // a partial next frame
    ]);
    assert.deepEqual(zstdDecompressFrames(stream, data.length), data);
  });

  it("fails when the frames run out early or give more than asked", () => {
    const data = randomBytes(4096, 4);
    const f = frame(data);
    assert.throws(() => zstdDecompressFrames(f, 8192), { reason: "DECOMPRESS_FAILED" });
    assert.throws(() => zstdDecompressFrames(f, 1000), { reason: "DECOMPRESS_FAILED" });
    assert.throws(() => zstdDecompressFrames(f.subarray(0, f.length - 2), 4096), {
      reason: "DECOMPRESS_FAILED",
    });
    assert.throws(() => zstdDecompressFrames(Buffer.from("not zstd at all"), 10), {
      reason: "DECOMPRESS_FAILED",
    });
    const reserved = Buffer.from(f);
    reserved[4] |= 0x08;
    assert.throws(() => zstdDecompressFrames(reserved, 4096), { reason: "DECOMPRESS_FAILED" });
  });

  it("never crashes on arbitrary bytes", () => {
    const f = frame(Buffer.from("hello, world ".repeat(300)));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(f.length), fc.nat(4000), (noise, at, size) => {
        const input = Buffer.from(f);
        Buffer.from(noise).copy(input, Math.min(at, input.length));
        try {
          const out = zstdDecompressFrames(input, size + 1);
          assert.equal(out.length, size + 1);
        } catch (e) {
          assert.ok(isBfcError(e), String(e));
        }
      }),
      { numRuns: 300 },
    );
  });

  it("decoding into a given buffer: the same bytes, or the same error, as zstdDecompressFrames (property)", () => {
    const out = Buffer.alloc(4096);
    fc.assert(
      fc.property(
        fc.constantFrom("one", "two", "skippable-first", "short", "long", "trailing", "noise"),
        fc.nat(),
        fc.uint8Array({ minLength: 1, maxLength: 16 }),
        fc.nat(),
        (how, seed, noise, at) => {
          const data =
            seed % 2 ? randomBytes(4096, seed) : Buffer.from("text block ".repeat(400)).subarray(0, 4096);
          let input: Buffer;
          if (how === "two")
            input = Buffer.concat([frame(data.subarray(0, 1000)), frame(data.subarray(1000))]);
          else if (how === "skippable-first")
            input = Buffer.concat([skippable(Buffer.from(noise)), frame(data)]);
          else if (how === "short") input = frame(data.subarray(0, 4000));
          else if (how === "long") input = frame(Buffer.concat([data, Buffer.from(noise)]));
          else if (how === "trailing")
            input = Buffer.concat([frame(data, seed % 3 === 0), Buffer.from(noise)]);
          else if (how === "noise") {
            input = Buffer.from(frame(data));
            Buffer.from(noise).copy(input, at % input.length);
          } else input = frame(data);
          let want: Buffer | Error;
          try {
            want = zstdDecompressFrames(input, out.length);
          } catch (e) {
            want = e as Error;
          }
          out.fill(0xa5);
          let got: Buffer | Error;
          try {
            got = zstdDecompressFramesInto(input, out);
          } catch (e) {
            got = e as Error;
          }
          if (want instanceof Error) {
            assert.ok(got instanceof Error, `${how}: expected ${want.message}`);
            assert.equal((got as Error).message, want.message);
          } else {
            assert.ok(!(got instanceof Error), `${how}: ${String(got)}`);
            assert.deepEqual(got, want);
            // A single good frame is decoded in place.
            if (how === "one" || how === "trailing") assert.equal(got, out);
          }
        },
      ),
      { seed: 0x1470, numRuns: 300 },
    );
  });
});
