/** The reused raw-inflate context of QCOW2 clusters against the one-shot call it stands in for. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import zlib from "node:zlib";
import fc from "fast-check";
import { ReusableRawInflater } from "../../src/codec/raw-inflate.ts";
import { content } from "../craft.ts";

const N = 4096;

/** What QcowImage asked of node:zlib before: its bytes, or its error. */
function oneShot(data: Buffer): Buffer | string {
  try {
    const out = zlib.inflateRawSync(data, {
      maxOutputLength: N,
      chunkSize: N,
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
    });
    return out.length === N ? out : `${out.length} bytes`;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  }
}

describe("ReusableRawInflater", () => {
  it("answers only where the one-shot call gives exactly the cluster, with its bytes (property)", () => {
    const inflater = new ReusableRawInflater();
    const out = Buffer.alloc(N);
    let answered = 0;
    fc.assert(
      fc.property(
        fc.constantFrom("random", "text", "zeros") as fc.Arbitrary<"random" | "text" | "zeros">,
        fc.constantFrom(N, N - 1, N + 1, 100, 3 * N),
        fc.constantFrom("finished", "sync-flushed", "trailing", "flip", "cut"),
        fc.nat(),
        fc.uint8Array({ minLength: 1, maxLength: 12 }),
        (kind, size, how, seed, noise) => {
          const data = content(kind, size, seed);
          let input =
            how === "sync-flushed"
              ? zlib.deflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH })
              : zlib.deflateRawSync(data);
          if (how === "trailing") input = Buffer.concat([input, Buffer.from(noise)]);
          else if (how === "flip") input[seed % input.length] ^= (noise[0] as number) | 1;
          else if (how === "cut") input = input.subarray(0, seed % input.length);
          const want = oneShot(input);
          out.fill(0xa5);
          if (inflater.inflateInto(input, out)) {
            answered++;
            assert.ok(typeof want !== "string", `answered where the one-shot call says ${want}`);
            assert.deepEqual(out, want);
          } else {
            assert.ok(typeof want === "string", "declined a cluster the one-shot call decodes");
          }
        },
      ),
      { seed: 0xdef1a7e, numRuns: 400 },
    );
    assert.ok(answered > 20, `the reused context answered ${answered} times`);
  });
});
