/** The writer's arena of small byte strings: every handle keeps its own bytes, whatever follows. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ByteArena } from "../../src/container/byte-arena.ts";

describe("ByteArena", () => {
  it("keeps each string's bytes under its handle, short and long ones mixed (property)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            { weight: 8, arbitrary: fc.string({ unit: "binary", maxLength: 300 }) },
            { weight: 1, arbitrary: fc.integer({ min: 8000, max: 70_000 }).map((n) => "é".repeat(n / 2)) },
          ),
          { maxLength: 400 },
        ),
        (strings) => {
          const arena = new ByteArena();
          const kept = strings.map((s, k) => {
            const bytes = Buffer.from(s);
            const h = k % 2 ? arena.putString(s) : arena.put(bytes);
            return { h, bytes };
          });
          for (const { h, bytes } of kept) {
            assert.deepEqual(arena.view(h, bytes.length), bytes);
            const at = ByteArena.offset(h);
            assert.deepEqual(arena.chunk(h).subarray(at, at + bytes.length), bytes);
          }
        },
      ),
      { seed: 0xa7e4a, numRuns: 60 },
    );
  });
});
