/**
 * Encrypted payloads are decrypted where they were read (in the reader's own or a scratch
 * buffer) rather than into fresh memory; a caller's buffer that the reader may not change stays as
 * it was. A changed byte anywhere in an encrypted object still fails that entry only.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { extract } from "../../src/container/extract.ts";
import { Reader } from "../../src/container/reader.ts";
import { verify } from "../../src/container/verify.ts";
import { Writer } from "../../src/container/writer.ts";
import { sampleContent, tempDir } from "../helpers.ts";

const KEY = Buffer.alloc(32, 0x2a);
const SIZES = [0, 1, 5_000, 65_536, 65_537, 300_000, 1_100_000];

async function encrypted(
  dir: string,
  compression: "zstd" | "none",
): Promise<{ file: string; files: Buffer[] }> {
  const file = path.join(dir, `${compression}.bfc`);
  const files = SIZES.map((n, k) => sampleContent(k % 2 ? "random" : "text", n, 40 + k));
  const w = await Writer.create(file, { compression, key: KEY });
  for (const [k, data] of files.entries()) await w.addFile(`e/f${k}`, data);
  await w.finish();
  return { file, files };
}

/** The whole object of `name` as verify's sequential scan reads it. */
function objectBytes(file: string, r: Reader, name: string): Buffer {
  const e = r.stat(name);
  const b = Buffer.alloc(e.objectSize);
  const fd = fs.openSync(file, "r");
  try {
    fs.readSync(fd, b, 0, b.length, e.objectOffset);
  } finally {
    fs.closeSync(fd);
  }
  return b;
}

describe("decrypting in place", () => {
  for (const compression of ["zstd", "none"] as const) {
    it(`${compression}: verifyObjectBytes keeps the caller's object unless told it need not`, async () => {
      const dir = tempDir();
      const { file, files } = await encrypted(dir, compression);
      const r = await Reader.open(file, { key: KEY });
      try {
        for (const [k, data] of files.entries()) {
          const obj = objectBytes(file, r, `e/f${k}`);
          const before = Buffer.from(obj);
          const got = await r.verifyObjectBytes(r.find(`e/f${k}`), obj, true);
          assert.ok(got?.equals(data), `f${k} content`);
          assert.ok(obj.equals(before), `f${k}: the object was left as it was`);
          assert.equal(await r.verifyObjectBytes(r.find(`e/f${k}`), obj, false), null);
        }
      } finally {
        r.close();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it(`${compression}: readFilesSync decrypts in the scratch buffer and gives exact contents`, async () => {
      const dir = tempDir();
      const { file, files } = await encrypted(dir, compression);
      const r = await Reader.open(file, { key: KEY });
      try {
        const ids = files.map((_, k) => r.find(`e/f${k}`));
        const scratch = Buffer.alloc(4 * 1024 * 1024);
        const got = r.readFilesSync(ids, scratch);
        got.forEach((g, k) => {
          assert.ok(Buffer.isBuffer(g) && g.equals(files[k] as Buffer), `f${k}`);
          // Stored contents are the decrypted bytes where they were read.
          if (compression === "none" && g.length > 0)
            assert.equal(g.buffer, scratch.buffer, `f${k} in scratch`);
        });
        // Whole reads and positioned reads agree after that.
        for (const [k, data] of files.entries()) {
          assert.ok(r.readFileSync(`e/f${k}`).equals(data));
          if (data.length > 10) assert.ok(r.readAtSync(ids[k] as number, 3, 7).equals(data.subarray(3, 10)));
        }
      } finally {
        r.close();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it("a hard link's shared object is decrypted once per reader of it, not twice in one buffer", async () => {
    const dir = tempDir();
    try {
      for (const compression of ["none", "zstd"] as const) {
        const file = path.join(dir, `${compression}-links.bfc`);
        const data = sampleContent("text", 70_000, 3);
        const w = await Writer.create(file, { compression, key: KEY });
        await w.addFile("a.txt", data);
        await w.addHardlink("b.txt", "a.txt");
        await w.addFile("c.txt", Buffer.from("after"));
        await w.finish();
        const r = await Reader.open(file, { key: KEY });
        try {
          assert.equal(r.stat("a.txt").objectOffset, r.stat("b.txt").objectOffset);
          const rep = await verify(r, { deep: true });
          assert.deepEqual(rep.problems, []);
          const got = r.readFilesSync(
            ["a.txt", "b.txt", "c.txt"].map((p) => r.find(p)),
            Buffer.alloc(1 << 20),
          );
          assert.ok(Buffer.isBuffer(got[0]) && got[0].equals(data));
          assert.ok(Buffer.isBuffer(got[1]) && got[1].equals(data));
          const out = path.join(dir, `out-${compression}`);
          assert.deepEqual((await extract(r, out)).failed, []);
          assert.ok(fs.readFileSync(path.join(out, "b.txt")).equals(data));
        } finally {
          r.close();
        }
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a changed byte in one encrypted object fails that entry only", async () => {
    const dir = tempDir();
    const { file, files } = await encrypted(dir, "zstd");
    let r = await Reader.open(file, { key: KEY });
    const victim = r.stat("e/f5");
    r.close();
    const bytes = fs.readFileSync(file);
    bytes[victim.objectOffset + Math.floor(victim.objectSize / 2)] ^= 0x10;
    fs.writeFileSync(file, bytes);
    r = await Reader.open(file, { key: KEY });
    try {
      const ids = files.map((_, k) => r.find(`e/f${k}`));
      const got = r.readFilesSync(ids, Buffer.alloc(4 * 1024 * 1024));
      got.forEach((g, k) => {
        if (k === 5) assert.ok(!Buffer.isBuffer(g) && g.reason === "AUTH_FAILED", `f5: ${String(g)}`);
        else assert.ok(Buffer.isBuffer(g) && g.equals(files[k] as Buffer), `f${k}`);
      });
    } finally {
      r.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
