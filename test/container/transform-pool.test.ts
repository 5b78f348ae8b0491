/**
 * TransformPool: worker threads compress (and encrypt) contents. Batches of small files come back
 * in the batch's own buffer, each payload at or before its content's place; large files stream
 * through sessions compressed on the worker thread. Every payload must open to its content.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { openSync } from "../../src/codec/aead.ts";
import { crc32c } from "../../src/codec/crc32c.ts";
import { zstdDecompressSync } from "../../src/codec/zstd.ts";
import { ContentEncoder } from "../../src/container/content-encoder.ts";
import { InlineTransformer } from "../../src/container/transform.ts";
import { TransformPool } from "../../src/container/transform-pool.ts";
import { type ContentKind, sampleContent } from "../helpers.ts";

const KEY = Buffer.alloc(32, 3);

/** The content back from a payload, as the reader would decode it. */
function open(payload: Buffer, comp: number, key: Buffer | null, aad: Uint8Array, size: number): Buffer {
  let data = payload;
  if (key) {
    const opened = openSync(key, data, Buffer.from(aad));
    assert.ok(opened, "the tag checks");
    data = opened;
  }
  return comp === 1 ? zstdDecompressSync(data, size) : data;
}

describe("TransformPool", () => {
  it("batched files: each payload opens to its content, compressed only when smaller (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            kind: fc.constantFrom<ContentKind>("random", "text", "zeros"),
            size: fc.integer({ min: 0, max: 200_000 }),
            level: fc.constantFrom(0, 1, 3),
          }),
          { minLength: 1, maxLength: 40 },
        ),
        fc.boolean(),
        fc.integer({ min: 1, max: 1e6 }),
        async (files, encrypted, seed) => {
          const key = encrypted ? KEY : null;
          const pool = new TransformPool(key, 2);
          try {
            const inputs = files.map((f, k) => sampleContent(f.kind, f.size, seed + k));
            // All queued before any result comes back: they share batches.
            const results = await Promise.all(
              inputs.map((data, k) =>
                pool.transform(data, files[k]?.level ?? 0, encrypted, Buffer.from(`f${k}`)),
              ),
            );
            results.forEach((r, k) => {
              const data = inputs[k] as Buffer;
              assert.equal(r.crc, crc32c(data));
              if (r.comp === 1) assert.ok((files[k]?.level ?? 0) > 0);
              const plainLen = encrypted ? r.payload.length - 28 : r.payload.length;
              assert.ok(plainLen <= data.length || data.length === 0, "never longer than the content");
              assert.ok(open(r.payload, r.comp, key, Buffer.from(`f${k}`), data.length).equals(data));
            });
          } finally {
            await pool.close();
          }
        },
      ),
      { seed: 0x7a11, numRuns: 25 },
    );
  });

  it("a streamed large file: one frame across its chunks, opening to the content", async () => {
    for (const key of [null, KEY]) {
      const pool = new TransformPool(key, 2);
      try {
        const data = sampleContent("text", 5 * 1024 * 1024 + 123, 9);
        const parts: Buffer[] = [];
        const aad = Buffer.from("big.txt");
        const s = pool.openStream(3, key !== null, aad, data.length, (b) => parts.push(Buffer.from(b)));
        for (let o = 0; o < data.length; o += 256 * 1024) {
          const n = Math.min(256 * 1024, data.length - o);
          const chunk = s.buffer(n);
          data.copy(chunk, 0, o, o + n);
          await s.write(chunk);
        }
        const { tag } = await s.end();
        let payload = Buffer.concat(parts);
        if (key) payload = Buffer.concat([payload, tag as Buffer]);
        const back = open(payload, 1, key, aad, data.length);
        assert.ok(back.equals(data));
        assert.ok(payload.length < data.length / 2, "compressed");
      } finally {
        await pool.close();
      }
    }
  });
});

describe("sealing in reused memory", () => {
  it("InlineTransformer: sealed payloads open to their contents, in one reused buffer (property)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            kind: fc.constantFrom<ContentKind>("random", "text", "zeros"),
            size: fc.integer({ min: 0, max: 300_000 }),
            level: fc.constantFrom(0, 3),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        fc.integer({ min: 1, max: 1e6 }),
        (files, seed) => {
          const t = new InlineTransformer();
          const buffers = new Set<ArrayBufferLike>();
          try {
            files.forEach((f, k) => {
              const data = sampleContent(f.kind, f.size, seed + k);
              const before = Buffer.from(data);
              const aad = Buffer.from(`f${k}`);
              const r = t.transform(data, f.level, KEY, aad);
              assert.ok(data.equals(before), "the content is left as it was");
              assert.equal(r.crc, crc32c(data));
              assert.ok(open(Buffer.from(r.payload), r.comp, KEY, aad, data.length).equals(data));
              buffers.add(r.payload.buffer);
            });
          } finally {
            t.close();
          }
          // Grown in MiB steps: contents up to 300 KB all fit the first one.
          assert.equal(buffers.size, 1);
        },
      ),
      { seed: 0x5eed, numRuns: 30 },
    );
  });

  it("ContentEncoder with a key: chunks are left as they were, the payload opens (stored and zstd)", async () => {
    for (const level of [0, 3]) {
      for (const sync of [true, false]) {
        const data = sampleContent("text", 700_000, level + 1);
        const aad = Buffer.from("big.txt");
        const parts: Buffer[] = [];
        const chunks: Buffer[] = [];
        const ended = new Promise<Buffer | null>((resolve, reject) => {
          const enc = new ContentEncoder({
            level,
            key: KEY,
            aad,
            size: data.length,
            sync,
            emit: (b) => parts.push(Buffer.from(b)),
            done: (_frameLen, tag) => resolve(tag),
            error: reject,
          });
          for (let o = 0; o < data.length; o += 100_000) {
            const chunk = Buffer.from(data.subarray(o, o + 100_000));
            chunks.push(chunk);
            enc.write(chunk, () => {});
          }
          enc.end();
        });
        const tag = await ended;
        assert.ok(Buffer.concat(chunks).equals(data), "chunks unchanged");
        const payload = Buffer.concat([...parts, tag as Buffer]);
        assert.ok(open(payload, level > 0 ? 1 : 0, KEY, aad, data.length).equals(data));
      }
    }
  });
});
