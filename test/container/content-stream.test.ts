/**
 * Reader.contentChunks, the streamed decode behind extraction, deep verify, digests, `bfc cat` and
 * large-file reads: the same bytes with and without `reuse`; with it, pieces are views of a few
 * buffers used again (nothing allocated per piece), without it each piece stays the consumer's;
 * corruption is an error, never a clean end; a consumer that stops early leaves nothing running.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { Reader } from "../../src/container/reader.ts";
import { Writer } from "../../src/container/writer.ts";
import { BfcError } from "../../src/errors.ts";
import { type ContentKind, prng, ROOT, sampleContent, tempDir } from "../helpers.ts";

const MiB = 1024 * 1024;
const KEY = Buffer.alloc(32, 7);
const CLI = path.join(ROOT, "src", "cli", "main.ts");
/** Set by content-stream-thread.test.ts: zstd frames decoded on a thread (contentChunks' `thread`). */
const THREAD = process.env.BFC_TEST_ZSTD_THREAD === "1";

async function build(file: string, files: [string, Buffer][], zstd: boolean, key?: Buffer): Promise<void> {
  const w = await Writer.create(file, { compression: zstd ? "zstd" : "none", key, overwrite: true });
  for (const [name, data] of files) await w.addFile(name, data);
  await w.finish();
}

/** Every piece of entry `name`, copied as it comes, and the distinct buffers behind them. */
async function pieces(r: Reader, name: string, reuse: boolean) {
  const copies: Buffer[] = [];
  const held: Buffer[] = [];
  const buffers = new Set<ArrayBufferLike>();
  for await (const piece of r.contentChunks(r.find(name), { reuse, thread: THREAD })) {
    copies.push(Buffer.from(piece));
    held.push(piece);
    buffers.add(piece.buffer);
  }
  return { copies: Buffer.concat(copies), held, buffers };
}

describe("Reader.contentChunks", () => {
  let dir: string;
  before(() => {
    dir = tempDir("bfc-stream-");
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("the same bytes with and without reuse, for stored, zstd, encrypted and both (property)", async () => {
    const file = path.join(dir, "p.bfc");
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<ContentKind>("random", "text", "zeros"),
        fc.integer({ min: 0, max: 3 * MiB + 1000 }),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 1, max: 1e6 }),
        async (kind, size, zstd, encrypted, seed) => {
          const data = sampleContent(kind, size, seed);
          const key = encrypted ? KEY : undefined;
          await build(file, [["f", data]], zstd, key);
          const r = await Reader.open(file, { key });
          try {
            const reused = await pieces(r, "f", true);
            assert.ok(reused.copies.equals(data), "reused pieces, copied as they come");
            const own = await pieces(r, "f", false);
            assert.ok(own.copies.equals(data));
            assert.ok(Buffer.concat(own.held).equals(data), "pieces without reuse stay intact");
            if (!encrypted && reused.held.length >= 3) {
              // Decoded or read into the same few buffers again and again.
              assert.ok(
                reused.buffers.size <= 2,
                `${reused.buffers.size} buffers for ${reused.held.length} pieces`,
              );
            }
          } finally {
            r.close();
          }
        },
      ),
      {
        seed: 0x5e7,
        numRuns: 24,
        // Always some entries of several pieces, stored and compressed.
        examples: [
          ["text", 4 * MiB + 5, true, false, 1],
          ["random", 4 * MiB, false, false, 2],
          ["text", 3 * MiB, true, true, 3],
        ],
      },
    );
  });

  it("a corrupted large entry fails (never ends cleanly), with and without reuse", async () => {
    const file = path.join(dir, "c.bfc");
    const data = sampleContent("text", 5 * MiB, 11);
    for (const key of [undefined, KEY]) {
      await build(file, [["big.txt", data]], true, key);
      const clean = await Reader.open(file, { key });
      const { offset, storedSize } = clean.payloadRange(clean.find("big.txt"));
      clean.close();
      const original = fs.readFileSync(file);
      const next = prng(key ? 3 : 4);
      for (let k = 0; k < 12; k++) {
        const bad = Buffer.from(original);
        const at = offset + Math.floor(next() * storedSize);
        bad[at] = (bad[at] as number) ^ (1 + Math.floor(next() * 255));
        fs.writeFileSync(file, bad);
        for (const reuse of [true, false]) {
          const r = await Reader.open(file, { key });
          try {
            await assert.rejects(
              async () => {
                for await (const _ of r.contentChunks(r.find("big.txt"), { reuse, thread: THREAD })) {
                  // drained
                }
              },
              (e: unknown) =>
                e instanceof BfcError &&
                ["CRC_MISMATCH", "DECOMPRESS_FAILED", "SIZE_MISMATCH", "AUTH_FAILED"].includes(e.reason),
              `byte ${at} flipped`,
            );
          } finally {
            r.close();
          }
        }
      }
    }
  });

  it("a consumer that stops early, then closes the reader, leaves no failing read behind", async () => {
    const file = path.join(dir, "s.bfc");
    const data = sampleContent("random", 6 * MiB, 5);
    await build(file, [["r.bin", data]], false);
    await build(path.join(dir, "z.bfc"), [["r.bin", data]], true);
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on("unhandledRejection", onUnhandled);
    try {
      for (const f of [file, path.join(dir, "z.bfc")]) {
        const r = await Reader.open(f);
        let first: Buffer | undefined;
        for await (const piece of r.contentChunks(r.find("r.bin"), { reuse: true, thread: THREAD })) {
          first = Buffer.from(piece);
          break;
        }
        // The next piece's read was under way when the loop stopped; the reader closes under it.
        r.close();
        assert.ok(first && first.length > 0 && data.subarray(0, first.length).equals(first));
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("bfc cat of a large zstd file: its bytes; corrupted: exit 1 and not one byte written", async () => {
    const file = path.join(dir, "cat.bfc");
    const data = sampleContent("text", 11 * MiB, 9);
    await build(
      file,
      [
        ["big.txt", data],
        ["small.txt", Buffer.from("hi\n")],
      ],
      true,
    );
    const ok = spawnSync(process.execPath, [CLI, "cat", file, "big.txt", "small.txt"], {
      maxBuffer: 64 * MiB,
    });
    assert.equal(ok.status, 0, ok.stderr.toString());
    assert.ok(ok.stdout.equals(Buffer.concat([data, Buffer.from("hi\n")])));
    const r = await Reader.open(file);
    const { offset, storedSize } = r.payloadRange(r.find("big.txt"));
    r.close();
    const bad = fs.readFileSync(file);
    bad[offset + Math.floor(storedSize * 0.9)] ^= 0x55;
    fs.writeFileSync(file, bad);
    const failed = spawnSync(process.execPath, [CLI, "cat", file, "big.txt"], { maxBuffer: 64 * MiB });
    assert.equal(failed.status, 1);
    assert.equal(failed.stdout.length, 0);
    assert.match(failed.stderr.toString(), /big\.txt/);
  });
});
