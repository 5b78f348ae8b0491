/**
 * Node ids handed to the kernel: the single-thread NodeTable (lookup counts, forget, rename and
 * unlink of writable sources) and the SharedNodeTable that several serving threads share (the same
 * path gets the same id whichever thread asks first, concurrently included).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import fc from "fast-check";
import { NodeTable } from "../../src/fuse/node-table.ts";
import { ROOT_ID } from "../../src/fuse/protocol.ts";
import { type SharedNodeMemory, SharedNodeTable } from "../../src/fuse/shared-node-table.ts";

describe("NodeTable (one serving thread, any source)", () => {
  it("the root is id 1; a path keeps its id while referenced and counts lookups", () => {
    const t = new NodeTable();
    assert.equal(t.pathOf(ROOT_ID), "/");
    const a = t.remember("/a", 10);
    assert.notEqual(a, ROOT_ID);
    assert.equal(t.remember("/a", 10), a);
    assert.equal(t.lookups(a), 2);
    const b = t.remember("/a/b", 11);
    assert.notEqual(b, a);
    assert.equal(t.pathOf(b), "/a/b");
    t.forget(a, 1);
    assert.equal(t.pathOf(a), "/a");
    t.forget(a, 1);
    assert.equal(t.pathOf(a), undefined, "forgotten by the kernel: gone");
    assert.notEqual(t.remember("/a", 10), a, "a later lookup gets a fresh id");
    t.forget(ROOT_ID, 100);
    assert.equal(t.pathOf(ROOT_ID), "/", "the root is never forgotten");
  });

  it("a name that now holds another inode gets a new id; the old id keeps meaning the old file", () => {
    const t = new NodeTable();
    const old = t.remember("/f", 5);
    const fresh = t.remember("/f", 6);
    assert.notEqual(fresh, old);
    assert.equal(t.pathOf(old), "/f", "still readable through an open handle");
    t.forget(old, 1);
    assert.equal(t.pathOf(fresh), "/f");
    assert.equal(t.remember("/f", 6), fresh);
  });

  it("rename moves a node and everything below it; the replaced target is unnamed", () => {
    const t = new NodeTable();
    const d = t.remember("/d", 1);
    const x = t.remember("/d/x", 2);
    const deep = t.remember("/d/sub/y", 3);
    const other = t.remember("/dd", 4);
    const target = t.remember("/e", 9);
    t.moved("/d", "/e");
    assert.equal(t.pathOf(d), "/e");
    assert.equal(t.pathOf(x), "/e/x");
    assert.equal(t.pathOf(deep), "/e/sub/y");
    assert.equal(t.pathOf(other), "/dd", "a sibling with a common prefix stays");
    assert.equal(t.remember("/e", 1), d);
    assert.notEqual(t.remember("/e/x", 2), target);
    t.removed("/e/x");
    assert.equal(t.pathOf(x), "/e/x", "unlinked: the id lives until forgotten");
    assert.notEqual(t.remember("/e/x", 2), x, "a new file at that name is a new node");
  });

  it("lookups and forgets in any order: an id is alive exactly while its count is positive (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom("/a", "/b", "/a/c"), fc.boolean(), fc.integer({ min: 1, max: 3 }))),
        (ops) => {
          const t = new NodeTable();
          const counts = new Map<number, number>();
          const ids = new Map<string, number>();
          for (const [path, look, n] of ops) {
            if (look) {
              const id = t.remember(path, path.length);
              const prev = ids.get(path);
              if (prev !== undefined && (counts.get(prev) ?? 0) > 0) assert.equal(id, prev);
              ids.set(path, id);
              counts.set(id, (counts.get(id) ?? 0) + 1);
            } else {
              const id = ids.get(path);
              if (id === undefined || (counts.get(id) ?? 0) === 0) continue;
              const k = Math.min(n, counts.get(id) as number);
              t.forget(id, k);
              counts.set(id, (counts.get(id) as number) - k);
            }
            for (const [id, c] of counts) assert.equal(t.pathOf(id) !== undefined, c > 0);
          }
        },
      ),
    );
  });
});

describe("SharedNodeTable (several serving threads, immutable sources)", () => {
  it("ids are stable per path, distinct across paths, and paths round-trip (UTF-8, long)", () => {
    const t = SharedNodeTable.create(5000);
    assert.equal(t.pathOf(ROOT_ID), "/");
    assert.equal(t.remember("/"), ROOT_ID);
    const paths = ["/a", "/b", "/a/b", "/ünïcödé/日本語 フォルダ/🎉", `/${"x".repeat(4000)}`, "/a b"];
    const ids = paths.map((p) => t.remember(p));
    assert.equal(new Set(ids).size, paths.length);
    for (const [k, p] of paths.entries()) {
      assert.equal(t.remember(p), ids[k]);
      assert.equal(SharedNodeTable.attach(t.share()).pathOf(ids[k] as number), p, "seen from another view");
    }
    assert.equal(t.lookups(ids[0] as number), 2);
    t.forget(ids[0] as number, 2);
    assert.equal(t.lookups(ids[0] as number), 0);
    assert.equal(t.pathOf(ids[0] as number), "/a", "immutable: kept after forget");
    assert.equal(t.remember("/a"), ids[0], "and the same id again");
    assert.equal(t.pathOf(123456), undefined);
    assert.equal(t.pathOf(0), undefined);
    assert.equal(t.pathOf(Number.NaN), undefined);
  });

  it("a full table says so instead of handing out a wrong id", () => {
    const t = SharedNodeTable.create(10);
    let err: unknown;
    try {
      for (let k = 0; k < 5000; k++) t.remember(`/f${k}`);
    } catch (e) {
      err = e;
    }
    assert.match(String((err as Error)?.message), /node table is full/);
  });

  it("four threads remembering overlapping paths at once agree on every id", async () => {
    const t = SharedNodeTable.create(20_000);
    const paths = Array.from({ length: 8000 }, (_, k) => `/d${k % 37}/sub ${k % 11}/file-${k}`);
    const code = `
      const { workerData, parentPort } = require("node:worker_threads");
      import(workerData.module).then(({ SharedNodeTable }) => {
        const t = SharedNodeTable.attach(workerData.memory);
        const order = workerData.paths.map((p, k) => [p, k]);
        // each thread walks the paths in its own order, so first claims race everywhere
        for (let i = order.length - 1; i > 0; i--) {
          const j = (i * 7919 + workerData.seed * 104729) % (i + 1);
          [order[i], order[j]] = [order[j], order[i]];
        }
        const ids = new Array(order.length);
        for (const [p, k] of order) ids[k] = t.remember(p);
        parentPort.postMessage(ids);
      });`;
    const module = new URL("../../src/fuse/shared-node-table.ts", import.meta.url).href;
    const memory: SharedNodeMemory = t.share();
    const results = await Promise.all(
      [1, 2, 3, 4].map(
        (seed) =>
          new Promise<number[]>((resolve, reject) => {
            const w = new Worker(code, { eval: true, workerData: { module, memory, paths, seed } });
            w.once("message", resolve);
            w.once("error", reject);
          }),
      ),
    );
    for (const ids of results.slice(1)) assert.deepEqual(ids, results[0]);
    const first = results[0] as number[];
    assert.equal(new Set(first).size, paths.length, "one id per path");
    for (const [k, p] of paths.entries()) {
      assert.equal(t.pathOf(first[k] as number), p);
      assert.equal(t.lookups(first[k] as number), 4);
    }
  });
});
