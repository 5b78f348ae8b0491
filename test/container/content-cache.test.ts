/** The Reader's byte-bounded cache (CLOCK eviction) against a model of what it must guarantee. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ContentCache } from "../../src/container/content-cache.ts";

type Op = { set: number; size: number } | { get: number } | { clear: true };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ set: fc.integer({ min: -12, max: 12 }), size: fc.nat({ max: 150 }) }) },
  { weight: 5, arbitrary: fc.record({ get: fc.integer({ min: -12, max: 12 }) }) },
  { weight: 1, arbitrary: fc.constant({ clear: true as const }) },
);

describe("ContentCache", () => {
  it("keeps within its budget (or one item), never answers another key's bytes, keeps the newest (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 400 }), fc.array(opArb, { maxLength: 300 }), (budget, ops) => {
        const cache = new ContentCache(budget);
        // What each key was last set to; the cache may have dropped it, never changed it.
        const last = new Map<number, Buffer>();
        let serial = 0;
        for (const op of ops) {
          if ("clear" in op) {
            cache.clear();
            last.clear();
            assert.equal(cache.size, 0);
            continue;
          }
          if ("set" in op) {
            const value = Buffer.alloc(op.size, serial++ & 0xff);
            cache.set(op.set, value);
            last.set(op.set, value);
            if (budget > 0) assert.equal(cache.get(op.set), value, "the item just stored is kept");
          } else {
            const got = cache.get(op.get);
            if (got !== undefined) assert.equal(got, last.get(op.get), "a hit is the key's latest bytes");
          }
          let held = 0;
          let items = 0;
          for (const [k, v] of last) {
            const got = cache.get(k);
            if (got === undefined) continue;
            assert.equal(got, v);
            held += got.length;
            items++;
          }
          assert.equal(cache.size, held, "size counts exactly the bytes held");
          assert.ok(
            held <= budget || items === 1,
            `${held} bytes in ${items} items over a budget of ${budget}`,
          );
          if (budget <= 0) assert.equal(items, 0);
        }
      }),
      { seed: 0xcac4e, numRuns: 400 },
    );
  });

  it("hands each evicted value to onEvict once, and never one it still holds (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 400 }), fc.array(opArb, { maxLength: 300 }), (budget, ops) => {
        const evicted = new Set<Buffer>();
        const cache = new ContentCache(budget, (v) => {
          assert.ok(!evicted.has(v), "evicted twice");
          evicted.add(v);
        });
        const last = new Map<number, Buffer>();
        for (const op of ops) {
          if ("clear" in op) {
            cache.clear();
            last.clear();
          } else if ("set" in op) {
            const value = Buffer.alloc(op.size);
            const before = last.get(op.set);
            const gone = before !== undefined && evicted.has(before);
            cache.set(op.set, value);
            last.set(op.set, value);
            // Replaced under its own key: not an eviction (its owner decides).
            if (before !== undefined) assert.equal(evicted.has(before), gone);
          }
          for (const [k, v] of last) {
            const got = cache.get(k);
            if (got !== undefined) assert.ok(!evicted.has(got), `key ${k} still serves an evicted value`);
            else if (!evicted.has(v)) assert.fail(`key ${k} was dropped without onEvict`);
          }
        }
      }),
      { seed: 0xe71c, numRuns: 300 },
    );
  });

  it("evicts what was not used since the hand last passed, oldest first", () => {
    const cache = new ContentCache(300);
    for (const k of [1, 2, 3]) cache.set(k, Buffer.alloc(100));
    // Full: storing 4 makes one go. All are marked (storing counts as a use): the hand clears
    // the marks of 1, 2 and 3, then takes the oldest, 1.
    cache.set(4, Buffer.alloc(100));
    cache.get(3);
    // 2 is the only item not used since the hand passed (4 was stored after): it goes.
    cache.set(5, Buffer.alloc(100));
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((k) => cache.get(k) !== undefined),
      [false, false, true, true, true],
    );
  });

  it("keeps a single item larger than the budget, and drops it for the next one", () => {
    const cache = new ContentCache(100);
    cache.set(1, Buffer.alloc(10));
    const big = Buffer.alloc(500);
    cache.set(2, big);
    assert.equal(cache.get(2), big);
    assert.equal(cache.get(1), undefined);
    assert.equal(cache.size, 500);
    cache.set(3, Buffer.alloc(10));
    assert.equal(cache.get(2), undefined);
    assert.equal(cache.size, 10);
  });
});
