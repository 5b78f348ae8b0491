/**
 * Decoded copies of large compressed entries (SpillStore, Reader `spill` option): random reads of a
 * zstd entry larger than the whole-decode limit come from the copy, made once by the verification
 * pass; other threads read the same copies; the budget evicts least recently read copies and an
 * entry that does not fit is read the old way; a corrupt entry never gets a copy.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { Reader } from "../../src/container/reader.ts";
import { SpillStore } from "../../src/container/spill.ts";
import { Writer } from "../../src/container/writer.ts";
import { prng, randomBytes, sha256, tempDir } from "../helpers.ts";

const MiB = 1024 * 1024;

/** Compressible but not trivial content: text lines with random numbers. */
function content(size: number, seed: number): Buffer {
  const next = prng(seed);
  const out = Buffer.alloc(size);
  let o = 0;
  while (o < size) o += out.write(`${Math.floor(next() * 1e12)} lorem ipsum dolor ${o}\n`, o);
  return out;
}

describe("SpillStore and Reader({ spill })", () => {
  let dir: string;
  let file: string;
  const big = content(12 * MiB, 1);
  const other = content(10 * MiB, 2);
  before(async () => {
    dir = tempDir("bfc-spill-");
    file = path.join(dir, "c.bfc");
    const w = await Writer.create(file, { compression: "zstd" });
    await w.addFile("big.txt", big);
    await w.addFile("other.txt", other);
    await w.addFile("small.bin", randomBytes(1000, 3));
    await w.finish();
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** `count` ranges of up to 64 KiB at random offsets (one at the very end). */
  function ranges(size: number, count: number, seed: number): [number, number][] {
    const next = prng(seed);
    const out: [number, number][] = [[size - 100, 4096]];
    for (let k = 1; k < count; k++) {
      const len = 1 + Math.floor(next() * 65536);
      out.push([Math.floor(next() * size), len]);
    }
    return out;
  }

  /**
   * Reads `ranges` of big.txt with sync reads in a worker thread whose reader shares `spill`;
   * asserts each against the source. The thread keeps its descriptors at exit (a copy it makes
   * outlives it, as SpillStore requires).
   */
  function readInWorker(spill: SpillStore, rs: [number, number][]): Promise<void> {
    const code = `
      const { workerData, parentPort } = require("node:worker_threads");
      Promise.all([import(workerData.reader), import(workerData.spill)]).then(([{ Reader }, { SpillStore }]) => {
        const r = Reader.openSync(workerData.file, { spill: SpillStore.attach(workerData.share) });
        const i = r.find("big.txt");
        const out = [];
        for (const [pos, len] of workerData.ranges) {
          const b = Buffer.alloc(len);
          const n = r.readIntoAtSync(i, b, 0, len, pos);
          out.push(b.subarray(0, n).toString("base64"));
        }
        r.close();
        parentPort.postMessage(out);
      });`;
    return new Promise<string[]>((resolve, reject) => {
      const w = new Worker(code, {
        eval: true,
        trackUnmanagedFds: false,
        workerData: {
          reader: new URL("../../src/container/reader.ts", import.meta.url).href,
          spill: new URL("../../src/container/spill.ts", import.meta.url).href,
          file,
          share: spill.share(),
          ranges: rs,
        },
      });
      w.once("message", resolve);
      w.once("error", reject);
    }).then((got) => {
      for (const [k, [pos, len]] of rs.entries()) {
        assert.ok(Buffer.from(got[k] as string, "base64").equals(big.subarray(pos, pos + len)), `range ${k}`);
      }
    });
  }

  it("random reads of a large zstd entry come from one copy made by the verification pass", async () => {
    const spill = SpillStore.create({ dir });
    const r = await Reader.open(file, { spill });
    try {
      const i = r.find("big.txt");
      assert.equal(r.stat("big.txt").compression, "zstd");
      assert.equal(spill.has(i), false);
      for (const [pos, len] of ranges(big.length, 60, 7)) {
        const got = await r.read("big.txt", pos, len);
        assert.ok(got.equals(big.subarray(pos, pos + len)), `range ${pos}+${len}`);
      }
      assert.equal(spill.has(i), true);
      // sync reads (a thread that cannot wait) take the copy too, straight into the caller's buffer
      const target = Buffer.alloc(10_000);
      assert.equal(r.readIntoAtSync(i, target, 100, 5000, 6 * MiB), 5000);
      assert.ok(target.subarray(100, 5100).equals(big.subarray(6 * MiB, 6 * MiB + 5000)));
      // and nothing is left in the directory (the copy is an unlinked file)
      assert.deepEqual(
        fs.readdirSync(dir).filter((n) => n.startsWith(".bfc-spill")),
        [],
      );
    } finally {
      r.close();
      spill.close();
    }
  });

  it("another thread's reader reads the same copies through the store's share()", async () => {
    const spill = SpillStore.create({ dir });
    const r = await Reader.open(file, { spill });
    try {
      await r.read("big.txt", 0, 1);
      assert.ok(spill.has(r.find("big.txt")));
      await readInWorker(spill, ranges(big.length, 40, 8));
    } finally {
      r.close();
      spill.close();
    }
  });

  it("sync readers (threads that may block) make the copy themselves: two threads at once, one copy, right bytes", async () => {
    const spill = SpillStore.create({ dir });
    try {
      const rs = ranges(big.length, 30, 11);
      await Promise.all([readInWorker(spill, rs), readInWorker(spill, rs)]);
      const r = await Reader.open(file, { spill });
      assert.ok(spill.has(r.find("big.txt")));
      r.close();
    } finally {
      spill.close();
    }
  });

  it("the budget: the least recently read copy goes; an entry larger than the budget is read without one", async () => {
    const spill = SpillStore.create({ dir, maxBytes: 13 * MiB });
    const r = await Reader.open(file, { spill });
    try {
      const a = r.find("big.txt");
      const b = r.find("other.txt");
      assert.ok((await r.read("big.txt", 5, 10)).equals(big.subarray(5, 15)));
      assert.ok(spill.has(a));
      assert.ok((await r.read("other.txt", 7 * MiB, 100)).equals(other.subarray(7 * MiB, 7 * MiB + 100)));
      assert.ok(spill.has(b));
      assert.equal(spill.has(a), false, "evicted to make room");
      assert.ok((await r.read("big.txt", 11 * MiB, 4096)).equals(big.subarray(11 * MiB, 11 * MiB + 4096)));
      assert.equal(spill.has(b), false);
    } finally {
      r.close();
      spill.close();
    }
    const tiny = SpillStore.create({ dir, maxBytes: MiB });
    const t = await Reader.open(file, { spill: tiny });
    try {
      for (const [pos, len] of ranges(big.length, 8, 9)) {
        assert.ok((await t.read("big.txt", pos, len)).equals(big.subarray(pos, pos + len)));
      }
      assert.equal(tiny.has(t.find("big.txt")), false, "too large for the budget: the cursor path");
    } finally {
      t.close();
      tiny.close();
    }
  });

  it("a corrupted large entry fails its reads (EIO) and never gets a copy", async () => {
    const bad = path.join(dir, "bad.bfc");
    fs.copyFileSync(file, bad);
    const probe = await Reader.open(bad);
    const e = probe.stat("big.txt");
    probe.close();
    const fd = fs.openSync(bad, "r+");
    const at = e.objectOffset + e.objectSize - Math.floor(e.storedSize / 3);
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, at);
    b[0] = (b[0] as number) ^ 0x10;
    fs.writeSync(fd, b, 0, 1, at);
    fs.closeSync(fd);
    const spill = SpillStore.create({ dir });
    const r = await Reader.open(bad, { spill });
    try {
      // the synchronous pass refuses it too
      assert.throws(
        () => r.readIntoAtSync(r.find("big.txt"), Buffer.alloc(10), 0, 10, 5),
        (err: Error & { code?: string }) => err.code === "EIO",
      );
      assert.equal(spill.has(r.find("big.txt")), false);
      await assert.rejects(r.read("big.txt", 0, 100), (err: Error & { code?: string }) => err.code === "EIO");
      assert.equal(spill.has(r.find("big.txt")), false);
      await assert.rejects(
        r.read("big.txt", 9 * MiB, 100),
        (err: Error & { code?: string }) => err.code === "EIO",
      );
      assert.equal(sha256(await r.readFile("small.bin")), sha256(randomBytes(1000, 3)), "other entries read");
    } finally {
      r.close();
      spill.close();
    }
  });
});
