/** zstd frames as the reference writes them (content size recorded, no checksum) and bounded decoding. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import zlib from "node:zlib";
import fc from "fast-check";
import {
  createZstdEncoder,
  isSingleFrameOf,
  looksLikeZstd,
  ReusableZstdDecoder,
  ZstdChunkEncoder,
  ZstdFrameEncoder,
  ZstdStreamDecoder,
  zstdCompressBound,
  zstdCompressSync,
  zstdDecompressSync,
} from "../../src/codec/zstd.ts";
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

  it("the synchronous stream decoder: any input split, output in bounded pieces, errors for corrupt or cut-short frames", () => {
    assert.ok(ZstdStreamDecoder.available());
    fc.assert(
      fc.property(
        fc.constantFrom("random", "text", "zeros") as fc.Arbitrary<"random" | "text" | "zeros">,
        fc.integer({ min: 0, max: 400_000 }),
        fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 64, max: 100_000 }),
        (kind, size, cuts, chunk) => {
          const data = content(kind, size, size);
          const frame = zstdCompressSync(data, 3);
          const dec = ZstdStreamDecoder.create(chunk) as ZstdStreamDecoder;
          const out: Buffer[] = [];
          for (let pos = 0, k = 0; pos < frame.length; k++) {
            const n = Math.min(frame.length - pos, cuts[k % cuts.length] as number);
            for (const piece of dec.decode(frame.subarray(pos, pos + n), pos + n >= frame.length)) {
              assert.ok(piece.length <= chunk, "pieces never exceed the output buffer");
              out.push(Buffer.from(piece));
            }
            pos += n;
          }
          assert.deepEqual(Buffer.concat(out), data);
        },
      ),
      { seed: 0x51ce, numRuns: 30 },
    );
    const data = content("text", 200_000, 3);
    const frame = zstdCompressSync(data, 3);
    const cut = ZstdStreamDecoder.create() as ZstdStreamDecoder;
    assert.throws(() => [...cut.decode(frame.subarray(0, frame.length - 5), true)], "a frame cut short");
    const bad = Buffer.from(frame);
    bad[Math.floor(bad.length / 2)] ^= 0xff;
    // zstd itself does not see every flipped byte (frames carry no checksum; the entry's CRC does):
    // the decoder either refuses or yields something other than the original, never the original
    const corrupt = ZstdStreamDecoder.create() as ZstdStreamDecoder;
    const pieces: Buffer[] = [];
    try {
      for (const piece of corrupt.decode(bad, true)) pieces.push(Buffer.from(piece));
    } catch {
      pieces.length = 0;
    }
    if (pieces.length) assert.notDeepEqual(Buffer.concat(pieces), data);
  });

  it("looksLikeZstd needs the 4-byte magic", () => {
    assert.equal(looksLikeZstd(Buffer.from([0x28, 0xb5, 0x2f])), false);
    assert.equal(looksLikeZstd(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), true);
    assert.equal(looksLikeZstd(Buffer.from("hello")), false);
  });
});

/** What the one-shot node:zlib call gives for a payload: bytes, or the error's class and code. */
function oneShot(data: Uint8Array, expected: number): Buffer | string {
  try {
    return zlib.zstdDecompressSync(data, { maxOutputLength: Math.max(1, expected) });
  } catch (e) {
    return `${(e as Error).constructor.name}:${(e as NodeJS.ErrnoException).code}`;
  }
}

function ours(data: Uint8Array, expected: number): Buffer | string {
  try {
    return zstdDecompressSync(data, expected);
  } catch (e) {
    return `${(e as Error).constructor.name}:${(e as NodeJS.ErrnoException).code}`;
  }
}

function withChecksum(data: Buffer, level: number): Buffer {
  return zlib.zstdCompressSync(data, {
    params: {
      [zlib.constants.ZSTD_c_compressionLevel]: level,
      [zlib.constants.ZSTD_c_checksumFlag]: 1,
      [zlib.constants.ZSTD_c_contentSizeFlag]: 1,
    },
    pledgedSrcSize: data.length,
  });
}

const kinds = fc.constantFrom("random", "text", "zeros") as fc.Arbitrary<"random" | "text" | "zeros">;

describe("zstd: reused decoding context", () => {
  it("decodes our frames through the reused context, as the one-shot call does (property)", () => {
    const dec = new ReusableZstdDecoder();
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 22 }),
        kinds,
        fc.oneof(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 100_000, max: 300_000 })),
        fc.boolean(),
        fc.nat(),
        (level, kind, size, checksum, seed) => {
          const data = content(kind, size, seed);
          // Several blocks, but at levels that keep the test fast.
          const lv = size > 5000 ? Math.min(level, 6) : level;
          const frame = checksum ? withChecksum(data, lv) : zstdCompressSync(data, lv);
          assert.ok(isSingleFrameOf(frame, size));
          const out = dec.decode(frame, size);
          assert.ok(out, "the reused context answered");
          assert.deepEqual(out, data);
          assert.deepEqual(zstdDecompressSync(frame, size), oneShot(frame, size));
        },
      ),
      { seed: 0x5eed, numRuns: 80 },
    );
  });

  it("isSingleFrameOf accepts exactly one complete frame declaring the size", () => {
    const data = content("text", 3000, 7);
    const frame = zstdCompressSync(data, 3);
    assert.equal(isSingleFrameOf(frame, 3000), true);
    assert.equal(isSingleFrameOf(frame, 2999), false, "declared size differs");
    assert.equal(isSingleFrameOf(frame.subarray(0, frame.length - 1), 3000), false, "truncated");
    assert.equal(isSingleFrameOf(Buffer.concat([frame, Buffer.from([0])]), 3000), false, "trailing byte");
    assert.equal(isSingleFrameOf(Buffer.concat([frame, frame]), 3000), false, "two frames");
    const sum = withChecksum(data, 3);
    assert.equal(isSingleFrameOf(sum, 3000), true);
    assert.equal(isSingleFrameOf(sum.subarray(0, sum.length - 4), 3000), false, "checksum cut off");
    const unsized = zlib.zstdCompressSync(data, {
      params: { [zlib.constants.ZSTD_c_contentSizeFlag]: 0 },
    });
    assert.equal(isSingleFrameOf(unsized, 3000), false, "no content size");
    assert.equal(isSingleFrameOf(Buffer.from("not a frame at all"), 18), false);
  });

  it("answers corrupt, truncated, padded and oversized payloads exactly as the one-shot call (property)", () => {
    const good = content("text", 4096, 3);
    const goodFrame = zstdCompressSync(good, 3);
    fc.assert(
      fc.property(
        kinds,
        fc.integer({ min: 1, max: 70_000 }),
        fc.nat(),
        fc.boolean(),
        fc.constantFrom("flip", "truncate", "append", "concat", "size", "flip-block"),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (kind, size, seed, checksum, how, at, xor) => {
          const data = content(kind, size, seed);
          const frame = checksum ? withChecksum(data, 3) : zstdCompressSync(data, 3);
          let bad = Buffer.from(frame);
          let expected = size;
          if (how === "flip") bad[at % bad.length] ^= xor;
          else if (how === "flip-block")
            bad[Math.min(bad.length - 1, 8 + (at % Math.max(1, bad.length - 8)))] ^= xor;
          else if (how === "truncate") bad = bad.subarray(0, at % bad.length);
          else if (how === "append") bad = Buffer.concat([bad, Buffer.from([xor, at & 255])]);
          else if (how === "concat") bad = Buffer.concat([bad, goodFrame]);
          else expected = (size + 1 + (at % 100)) % 80_000;
          assert.deepEqual(ours(bad, expected), oneShot(bad, expected));
          // A failure never leaves the shared context unusable for the next frame.
          assert.deepEqual(zstdDecompressSync(goodFrame, 4096), good);
        },
      ),
      { seed: 0xbad, numRuns: 300 },
    );
  });

  it("discards the context after a frame that fails inside it, and stays usable", () => {
    const dec = new ReusableZstdDecoder();
    const data = content("text", 20_000, 9);
    const frame = withChecksum(data, 3);
    const bad = Buffer.from(frame);
    bad[bad.length - 1] ^= 0xff; // checksum wrong: structurally complete, fails when decoded
    assert.equal(isSingleFrameOf(bad, data.length), true);
    assert.equal(dec.decode(bad, data.length), undefined);
    assert.deepEqual(dec.decode(frame, data.length), data);
    assert.throws(() => zstdDecompressSync(bad, data.length), /checksum/i);
  });
});

/**
 * The frame createZstdEncoder streams for `chunks` written as a transform worker writes them: each
 * once the one before was consumed, then the end.
 */
async function streamed(chunks: Buffer[], level: number, size: number): Promise<Buffer> {
  const enc = createZstdEncoder(level, size);
  const parts: Buffer[] = [];
  enc.on("data", (d: Buffer) => parts.push(d));
  const ended = new Promise<void>((resolve, reject) => {
    enc.on("end", resolve);
    enc.on("error", reject);
  });
  for (const c of chunks) await new Promise<void>((resolve) => enc.write(c, () => resolve()));
  enc.end();
  await ended;
  return Buffer.concat(parts);
}

/** `data` cut at the given points. */
function split(data: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, data.length]) {
    out.push(data.subarray(prev, c));
    prev = c;
  }
  return out;
}

describe("zstd: reused compression contexts", () => {
  it("one frame encoder, file after file: zstdCompressSync's frames byte for byte (property)", () => {
    const enc = new ZstdFrameEncoder(3);
    const encoders = new Map<number, ZstdFrameEncoder>();
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.constantFrom(1, 3, 9, 19),
            kinds,
            fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 100_000, max: 300_000 })),
            fc.nat(),
          ),
          { minLength: 1, maxLength: 8 },
        ),
        (files) => {
          for (const [level, kind, size, seed] of files) {
            const data = content(kind, size, seed);
            const lv = size > 5000 ? Math.min(level, 6) : level;
            let e = encoders.get(lv);
            if (!e) {
              e = new ZstdFrameEncoder(lv);
              encoders.set(lv, e);
            }
            const frame = e.encode(data);
            assert.ok(frame.length <= zstdCompressBound(size));
            assert.deepEqual(frame, zstdCompressSync(data, lv));
            assert.deepEqual(enc.encode(data), zstdCompressSync(data, 3));
          }
        },
      ),
      { seed: 0xf4a3e, numRuns: 40 },
    );
    for (const e of encoders.values()) e.close();
    enc.close();
  });

  it("the chunk encoder: createZstdEncoder's frame for any split of the content, in bounded pieces (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(1, 3, 7),
        kinds,
        fc.integer({ min: 0, max: 600_000 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.nat(),
        async (level, kind, size, cuts, seed) => {
          const data = content(kind, size, seed);
          const chunks = split(data, cuts);
          const enc = ZstdChunkEncoder.create(level, size, 16 * 1024);
          assert.ok(enc, "node:zlib has the internals here");
          const pieces: Buffer[] = [];
          const keep = (p: Buffer) => {
            assert.ok(p.length > 0 && p.length <= 16 * 1024);
            pieces.push(Buffer.from(p));
          };
          for (const c of chunks) enc.write(c, false, keep);
          enc.write(Buffer.alloc(0), true, keep);
          enc.close();
          const frame = Buffer.concat(pieces);
          assert.deepEqual(frame, await streamed(chunks, level, size));
          assert.ok(isSingleFrameOf(frame, size) || size === 0);
          assert.deepEqual(zstdDecompressSync(frame, size), data);
        },
      ),
      { seed: 0xc4a2, numRuns: 30 },
    );
  });

  it("the chunk encoder fails when the content is not the size pledged", () => {
    const data = content("text", 50_000, 2);
    const short = ZstdChunkEncoder.create(3, data.length + 1);
    assert.ok(short);
    assert.throws(() => short.write(data, true, () => {}));
    short.close();
    const long = ZstdChunkEncoder.create(3, data.length - 1);
    assert.ok(long);
    assert.throws(() => long.write(data, true, () => {}));
    long.close();
  });
});
