/**
 * content-stream.test.ts again, with every zstd entry decoded on a thread of its own
 * (ZstdThreadDecoder, contentChunks' `thread`) rather than only frames of hundreds of MiB: the same
 * bytes, corruption and early stops. Then: verification and hashing passes take that thread.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { ZstdThreadDecoder } from "../../src/codec/zstd-thread.ts";
import { rootDigest } from "../../src/container/digest.ts";
import { Reader } from "../../src/container/reader.ts";
import { Writer } from "../../src/container/writer.ts";
import { BfcError } from "../../src/errors.ts";
import { sampleContent, tempDir } from "../helpers.ts";

ZstdThreadDecoder.minSize = 0;
ZstdThreadDecoder.minIdleSize = 0;
process.env.BFC_TEST_ZSTD_THREAD = "1";
await import("./content-stream.test.ts");

describe("zstd decoding threads in the reader", () => {
  it("verifyEntry and digests decode large zstd entries on a thread; extraction-style reads do not", async () => {
    const dir = tempDir("bfc-zthread-");
    try {
      const file = path.join(dir, "v.bfc");
      const data = sampleContent("text", 12 * 1024 * 1024 + 3, 21);
      const w = await Writer.create(file, { compression: "zstd" });
      await w.addFile("big.txt", data);
      await w.finish();
      // Threads left idle by earlier tests end first: a thread found idle afterwards was used here.
      for (let t = ZstdThreadDecoder.acquire(true); t; t = ZstdThreadDecoder.acquire(true)) t.release();
      const r = await Reader.open(file);
      try {
        for await (const _ of r.contentChunks(r.find("big.txt"), { reuse: true })) {
          // without `thread`: decoded on this thread
        }
        const none = ZstdThreadDecoder.acquire(true);
        none?.release();
        assert.equal(none, undefined, "no thread used without `thread`");
        await r.verifyEntry(r.find("big.txt"));
        const used = ZstdThreadDecoder.acquire(true);
        assert.ok(used, "verifyEntry left its decoding thread idle");
        used.release();
        await rootDigest(r);
        const again = ZstdThreadDecoder.acquire(true);
        assert.ok(again, "the digest decoded on a thread");
        again.release();
      } finally {
        r.close();
      }
      // A corrupted copy fails its verification with the entry's reason.
      const bad = fs.readFileSync(file);
      const at = Math.floor(bad.length / 2);
      bad[at] = (bad[at] as number) ^ 0x5a;
      fs.writeFileSync(file, bad);
      const rb = await Reader.open(file);
      try {
        await assert.rejects(
          rb.verifyEntry(rb.find("big.txt")),
          (e: unknown) =>
            e instanceof BfcError &&
            ["CRC_MISMATCH", "DECOMPRESS_FAILED", "SIZE_MISMATCH"].includes(e.reason),
        );
      } finally {
        rb.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
