/**
 * ZstdThreadDecoder: a frame fed in pieces of any size comes back whole, waited for synchronously
 * or asynchronously; corrupt or cut frames fail with the decoder's reason and never hang; a thread
 * that finished a frame is kept for the next, one stopped part-way is not; an idle thread does not
 * keep the process alive.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ZstdStreamDecoder, zstdCompressSync } from "../../src/codec/zstd.ts";
import { SLOT_SIZE, ZstdThreadDecoder } from "../../src/codec/zstd-thread.ts";
import { content } from "../craft.ts";
import { ROOT } from "../helpers.ts";

type Result = { data: Buffer; failure?: string; pieces: number };

/** Feeds `frame` in pieces of `piece` bytes and collects the output, waiting as `mode` says. */
async function decode(frame: Buffer, piece: number, mode: "sync" | "async"): Promise<Result> {
  const t = ZstdThreadDecoder.acquire();
  assert.ok(t, "a decoding thread");
  const out: Buffer[] = [];
  let pos = 0;
  let pieces = 0;
  try {
    for (;;) {
      const seq = t.seq();
      for (let room = t.inputRoom(); room && pos < frame.length; room = t.inputRoom()) {
        const n = Math.min(piece, room.length, frame.length - pos);
        frame.copy(room, 0, pos, pos + n);
        pos += n;
        t.pushInput(n, pos >= frame.length);
      }
      const o = t.output();
      if (o) {
        assert.ok(o.length > 0 && o.length <= SLOT_SIZE);
        out.push(Buffer.from(o));
        pieces++;
        t.releaseOutput();
        continue;
      }
      const failure = t.failure;
      if (failure !== undefined) return { data: Buffer.concat(out), failure, pieces };
      if (t.done) return { data: Buffer.concat(out), pieces };
      if (mode === "sync") t.waitSync(seq);
      else await t.changed(seq);
    }
  } finally {
    t.release();
  }
}

/** The same frame through ZstdStreamDecoder on this thread, in the same pieces. */
function onThisThread(frame: Buffer, piece: number): { data: Buffer; failed: boolean } {
  const dec = ZstdStreamDecoder.create() as ZstdStreamDecoder;
  const out: Buffer[] = [];
  try {
    for (let pos = 0; pos < frame.length; pos += piece) {
      const end = Math.min(frame.length, pos + piece);
      for (const p of dec.decode(frame.subarray(pos, end), end >= frame.length)) out.push(Buffer.from(p));
    }
    return { data: Buffer.concat(out), failed: false };
  } catch {
    return { data: Buffer.concat(out), failed: true };
  } finally {
    dec.close();
  }
}

describe("ZstdThreadDecoder", () => {
  it("decodes frames fed in pieces of any size, waiting synchronously or not (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("random", "text", "zeros") as fc.Arbitrary<"random" | "text" | "zeros">,
        fc.integer({ min: 1, max: 3 * SLOT_SIZE + 17 }),
        fc.integer({ min: 1, max: SLOT_SIZE }),
        fc.constantFrom<"sync" | "async">("sync", "async"),
        fc.nat(),
        async (kind, size, piece, mode, seed) => {
          const data = content(kind, size, seed);
          const r = await decode(zstdCompressSync(data, 3), piece, mode);
          assert.equal(r.failure, undefined);
          assert.ok(r.data.equals(data));
        },
      ),
      {
        seed: 0x7d3,
        numRuns: 30,
        examples: [
          ["text", 2 * SLOT_SIZE, 7919, "sync"],
          ["zeros", 4 * SLOT_SIZE, SLOT_SIZE, "async"],
          ["random", SLOT_SIZE + 1, 1, "sync"],
        ].map(([k, s, p, m]) => [k, s, p, m, 1] as ["text", number, number, "sync", number]),
      },
    );
  });

  it("output comes in full slots while the frame lasts (the ring turns over many times)", async () => {
    const data = content("text", 9 * SLOT_SIZE + 5, 4);
    const r = await decode(zstdCompressSync(data, 1), SLOT_SIZE, "async");
    assert.ok(r.data.equals(data));
    assert.equal(r.pieces, 10);
  });

  it("corrupt or cut frames fail with a reason, never hang, and leave later frames unharmed (property)", async () => {
    const data = content("text", 2 * SLOT_SIZE + 333, 9);
    const frame = zstdCompressSync(data, 3);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: frame.length - 1 }),
        fc.integer({ min: 1, max: 255 }),
        fc.boolean(),
        fc.constantFrom<"sync" | "async">("sync", "async"),
        async (at, xor, cut, mode) => {
          const bad = cut ? frame.subarray(0, at) : Buffer.from(frame);
          if (!cut) bad[at] = (bad[at] as number) ^ xor;
          if (bad.length === 0) return;
          const r = await decode(bad, 64 * 1024, mode);
          // Exactly what the same decoder does on the calling thread. (A damaged byte may still decode
          // "cleanly", to other bytes or even the same ones: callers check size and checksum.)
          const same = onThisThread(bad, 64 * 1024);
          assert.equal(r.failure !== undefined, same.failed, `failed: ${r.failure}`);
          if (!same.failed) assert.ok(r.data.equals(same.data));
          if (cut) assert.ok(r.failure !== undefined, "a cut frame is an error");
        },
      ),
      { seed: 0x1cc, numRuns: 40 },
    );
    const again = await decode(frame, SLOT_SIZE, "sync");
    assert.ok(again.data.equals(data));
  });

  it("a finished thread is kept for the next frame; one stopped part-way is not", async () => {
    // More output than the rings hold, so that a frame left part-way is still running.
    const frame = zstdCompressSync(content("text", 12 * SLOT_SIZE, 2), 3);
    await decode(frame, SLOT_SIZE, "async");
    const kept = ZstdThreadDecoder.acquire(true);
    assert.ok(kept, "the idle thread is handed out again");
    // Start a frame and give up after its first piece.
    let pos = 0;
    for (;;) {
      const seq = kept.seq();
      const room = kept.inputRoom();
      if (room && pos < frame.length) {
        const n = Math.min(room.length, frame.length - pos);
        frame.copy(room, 0, pos, pos + n);
        pos += n;
        kept.pushInput(n, pos >= frame.length);
      }
      if (kept.output()) break;
      await kept.changed(seq);
    }
    kept.release();
    const left = ZstdThreadDecoder.acquire(true);
    left?.release();
    assert.equal(left, undefined, "no idle thread after a stop part-way");
    const fresh = await decode(frame, SLOT_SIZE, "sync");
    assert.equal(fresh.failure, undefined);
  });

  it("an idle thread does not keep the process alive", () => {
    const script = `
      import { ZstdThreadDecoder } from ${JSON.stringify(path.join(ROOT, "src/codec/zstd-thread.ts"))};
      import { zstdCompressSync } from ${JSON.stringify(path.join(ROOT, "src/codec/zstd.ts"))};
      const data = Buffer.alloc(3 << 20, 1);
      const frame = zstdCompressSync(data, 3);
      const t = ZstdThreadDecoder.acquire();
      t.inputRoom().set(frame);
      t.pushInput(frame.length, true);
      let n = 0;
      for (;;) {
        const seq = t.seq();
        const o = t.output();
        if (o) { n += o.length; t.releaseOutput(); continue; }
        if (t.done || t.failure) break;
        await t.changed(seq);
      }
      t.release();
      console.log(n);
    `;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), String(3 << 20));
  });
});
