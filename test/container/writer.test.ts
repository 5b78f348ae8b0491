/**
 * Writer behaviour: duplicate and conflicting paths, atomic output (existing targets, abort and
 * failures), every source kind, compression decisions and thresholds, option validation.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { describe, it } from "node:test";
import fc from "fast-check";
import { type BfcError, Reader, verify, Writer, type WriterOptions } from "../../src/index.ts";
import { content, storedIndexPaths } from "../craft.ts";
import { tempDir } from "../helpers.ts";

const MiB = 1024 * 1024;
const KEY = Buffer.alloc(32, 0x42);
const root = tempDir("bfc-writer-");
let seq = 0;

/** A fresh directory and a container path inside it. */
function place(): { dir: string; file: string } {
  const dir = path.join(root, String(seq++));
  fs.mkdirSync(dir);
  return { dir, file: path.join(dir, "out.bfc") };
}

function leftovers(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.includes(".bfc-tmp-") || n.includes(".spool"));
}

async function* gen(parts: Buffer[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield p;
}

function split(data: Buffer, n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let p = 0; p < data.length; p += n) out.push(data.subarray(p, p + n));
  return out;
}

async function build(file: string, opts: WriterOptions, add: (w: Writer) => Promise<void>): Promise<Reader> {
  const w = await Writer.create(file, opts);
  try {
    await add(w);
    await w.finish();
  } catch (e) {
    await w.abort();
    throw e;
  }
  return Reader.open(file, opts.key ? { key: opts.key } : opts.password ? { password: opts.password } : {});
}

async function deepOk(r: Reader): Promise<void> {
  const rep = await verify(r, { deep: true });
  assert.deepEqual(rep.problems, []);
}

/** Each named file reads back as given and the container verifies deep; `r` is closed either way. */
async function assertContents(r: Reader, files: [string, Buffer][], label = ""): Promise<void> {
  try {
    for (const [name, data] of files) assert.ok(r.readFileSync(name).equals(data), `${name}${label}`);
    await deepOk(r);
  } finally {
    r.close();
  }
}

describe("duplicate and conflicting paths", () => {
  it("rejects duplicates (EEXIST, DUPLICATE_PATH) before writing; the writer stays usable", async () => {
    const { file } = place();
    const r = await build(file, {}, async (w) => {
      await w.addFile("a/b", Buffer.from("first"));
      const dup = (e: BfcError) => e.code === "EEXIST" && e.reason === "DUPLICATE_PATH" && e.path === "a/b";
      await assert.rejects(w.addFile("a/b", Buffer.from("second")), dup);
      await assert.rejects(w.addFile("a//b/", Buffer.from("second")), dup);
      await assert.rejects(w.addFile("./a/./b", Buffer.from("second")), dup);
      await assert.rejects(w.addDirectory("a/b"), dup);
      await assert.rejects(w.addSymlink("a/b", "x"), dup);
      await assert.rejects(w.addFile("a/b", path.join(root, "does-not-exist")), dup);
      await assert.rejects(w.addFile("a/b", gen([Buffer.from("s")])), dup);
      await w.addFile("c", Buffer.from("after"));
      await w.addDirectory("d");
      await assert.rejects(w.addDirectory("d/"), { code: "EEXIST", reason: "DUPLICATE_PATH" });
    });
    assert.deepEqual(
      [...r.entries()].map((e) => e.path),
      ["a/b", "c", "d"],
    );
    assert.equal((await r.readFile("a/b")).toString(), "first");
    assert.equal((await r.readFile("c")).toString(), "after");
    // Objects are back to back: nothing of the rejected adds reached the file.
    const entries = [...r.entries()].sort((x, y) => x.objectOffset - y.objectOffset);
    let pos = 4096;
    for (const e of entries) {
      assert.equal(e.objectOffset, pos, e.path);
      pos += e.objectSize;
    }
    assert.equal(pos, r.footer.indexOffset);
    await deepOk(r);
    r.close();
  });

  it("rejects file/directory conflicts in both orders (PATH_CONFLICT)", async () => {
    const { file } = place();
    const r = await build(file, {}, async (w) => {
      await w.addFile("f", Buffer.from("file"));
      await assert.rejects(w.addFile("f/x", Buffer.from("x")), { code: "ENOTDIR", reason: "PATH_CONFLICT" });
      await assert.rejects(w.addDirectory("f/sub"), { reason: "PATH_CONFLICT" });
      await w.addFile("d/x/y", Buffer.from("deep"));
      await assert.rejects(w.addFile("d", Buffer.from("d")), { code: "EEXIST", reason: "PATH_CONFLICT" });
      await assert.rejects(w.addFile("d/x", Buffer.from("d")), { reason: "PATH_CONFLICT" });
      await assert.rejects(w.addSymlink("d/x", "t"), { reason: "PATH_CONFLICT" });
      await w.addSymlink("s", "/etc");
      await assert.rejects(w.addFile("s/x", Buffer.from("through a symlink")), {
        code: "ENOTDIR",
        reason: "PATH_CONFLICT",
      });
      // An explicit directory may come after its children.
      await w.addDirectory("d/x", { mode: 0o750 });
      await w.addDirectory("d");
    });
    assert.deepEqual(
      [...r.entries()].map((e) => `${e.type}:${e.path}`),
      ["directory:d", "directory:d/x", "file:d/x/y", "file:f", "symlink:s"],
    );
    assert.equal(r.stat("d/x").mode & 0o777, 0o750);
    await deepOk(r);
    r.close();
  });

  it("a path whose add failed does not block a later file at its parent", async () => {
    const { file, dir } = place();
    const r = await build(file, {}, async (w) => {
      await assert.rejects(w.addFile("q/f", path.join(dir, "missing")), { code: "ENOENT" });
      await w.addFile("q", Buffer.from("now a file"));
    });
    assert.equal((await r.readFile("q")).toString(), "now a file");
    r.close();
  });
});

describe("atomic output", () => {
  it("never touches an existing target without overwrite (EEXIST) and replaces it with overwrite", async () => {
    const { dir, file } = place();
    fs.writeFileSync(file, "OLD");
    await assert.rejects(Writer.create(file), (e: BfcError) => {
      assert.equal(e.code, "EEXIST");
      assert.equal(e.reason, "ALREADY_EXISTS");
      assert.ok(e.message.includes(file), e.message);
      return true;
    });
    assert.equal(fs.readFileSync(file, "utf8"), "OLD");
    assert.deepEqual(leftovers(dir), []);
    const w = await Writer.create(file, { overwrite: true });
    await w.addFile("x", Buffer.from("new"));
    assert.equal(fs.readFileSync(file, "utf8"), "OLD", "untouched until finish");
    await w.finish();
    const r = await Reader.open(file);
    assert.equal((await r.readFile("x")).toString(), "new");
    r.close();
    assert.deepEqual(leftovers(dir), []);
  });

  it("a target that appears while writing is not replaced (EEXIST) and no temporary file remains", async () => {
    const { dir, file } = place();
    const w = await Writer.create(file);
    await w.addFile("x", Buffer.from("data"));
    fs.writeFileSync(file, "SOMEONE ELSE");
    await assert.rejects(w.finish(), { code: "EEXIST", reason: "ALREADY_EXISTS" });
    assert.equal(fs.readFileSync(file, "utf8"), "SOMEONE ELSE");
    assert.deepEqual(leftovers(dir), []);
  });

  it("abort() removes the temporary file, keeps the existing target and closes the writer", async () => {
    const { dir, file } = place();
    fs.writeFileSync(file, "OLD");
    for (const opts of [{}, { compression: "zstd" as const }, { key: KEY }]) {
      const w = await Writer.create(file, { overwrite: true, ...opts });
      await w.addFile("x", content("text", 100000, 1));
      await w.addFile("big", gen(split(content("text", 5 * MiB, 2), MiB)));
      assert.equal(leftovers(dir).length, 1, "a temporary file while writing");
      await w.abort();
      assert.deepEqual(leftovers(dir), []);
      assert.equal(fs.readFileSync(file, "utf8"), "OLD");
      await assert.rejects(w.addFile("y", Buffer.from("y")), { reason: "ABORTED" });
      await assert.rejects(w.finish(), { reason: "ABORTED" });
      await w.abort(); // idempotent
    }
  });

  it("a missing source file fails that call only (ENOENT, naming the file); the writer goes on", async () => {
    const { dir, file } = place();
    fs.writeFileSync(file, "OLD");
    const missing = path.join(dir, "no such file.txt");
    const w = await Writer.create(file, { overwrite: true });
    await w.addFile("ok1", Buffer.from("1"));
    await assert.rejects(w.addFile("gone", missing), (e: BfcError) => {
      assert.equal(e.code, "ENOENT");
      assert.ok(e.message.includes(missing), e.message);
      assert.equal(e.path, missing);
      return true;
    });
    await assert.rejects(w.addFile("dir", dir), { code: "EISDIR", reason: "NOT_A_FILE" });
    await w.addFile("ok2", Buffer.from("2"));
    await w.addFile("gone", Buffer.from("the name is free again"));
    await w.finish();
    assert.deepEqual(leftovers(dir), []);
    const r = await Reader.open(file);
    assert.deepEqual(
      [...r.entries()].map((e) => e.path),
      ["gone", "ok1", "ok2"],
    );
    r.close();
  });

  it("a small stream that throws fails that call only; the writer goes on", async () => {
    const { dir, file } = place();
    const w = await Writer.create(file, { compression: "zstd" });
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield Buffer.alloc(1000, 1);
      throw new Error("disk on fire");
    }
    await assert.rejects(w.addFile("s", broken()), /disk on fire/);
    await w.addFile("s", Buffer.from("retry"));
    await w.finish();
    const r = await Reader.open(file);
    assert.equal((await r.readFile("s")).toString(), "retry");
    r.close();
    assert.deepEqual(leftovers(dir), []);
  });

  for (const opts of [{}, { compression: "zstd" as const }, { key: KEY }] as WriterOptions[]) {
    it(`a large stream that throws mid-way fails the writer; abort leaves nothing (${JSON.stringify(Object.keys(opts))})`, async () => {
      const { dir, file } = place();
      fs.writeFileSync(file, "OLD");
      const w = await Writer.create(file, { overwrite: true, ...opts });
      await w.addFile("before", Buffer.from("b"));
      async function* broken(): AsyncGenerator<Uint8Array> {
        yield Buffer.alloc(3 * MiB, 1);
        yield Buffer.alloc(3 * MiB, 2);
        throw new Error("disk on fire");
      }
      await assert.rejects(w.addFile("s", broken()), /disk on fire/);
      await assert.rejects(w.addFile("after", Buffer.from("a")), /disk on fire/);
      await w.abort();
      assert.deepEqual(leftovers(dir), []);
      assert.equal(fs.readFileSync(file, "utf8"), "OLD");
    });
  }

  it("after a failed large stream, finish() rejects and cleans up by itself (no abort needed)", async () => {
    const { dir, file } = place();
    fs.writeFileSync(file, "OLD");
    const w = await Writer.create(file, { overwrite: true, key: KEY });
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield Buffer.alloc(5 * MiB, 1);
      throw new Error("disk on fire");
    }
    await assert.rejects(w.addFile("s", broken()));
    try {
      await assert.rejects(w.finish());
      assert.deepEqual(leftovers(dir), []);
      assert.equal(fs.readFileSync(file, "utf8"), "OLD");
    } finally {
      await w.abort(); // keeps this process from hanging on the bug
    }
  });

  it("a stream's own error is reported as a BfcError naming the entry", async () => {
    const { file } = place();
    const w = await Writer.create(file);
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield Buffer.alloc(10);
      throw new Error("disk on fire");
    }
    try {
      await assert.rejects(w.addFile("the-entry", broken()), (e: BfcError) => {
        assert.equal(e.name, "BfcError");
        assert.ok(e.message.includes("the-entry"), e.message);
        return true;
      });
    } finally {
      await w.abort();
    }
  });

  it("a source file that shrinks while queued fails with SOURCE_CHANGED naming the file", async () => {
    const { dir, file } = place();
    fs.writeFileSync(file, "OLD");
    const big = path.join(dir, "big.bin");
    fs.writeFileSync(big, content("random", 5 * MiB, 3));
    const w = await Writer.create(file, { overwrite: true });
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    async function* slow(): AsyncGenerator<Uint8Array> {
      yield Buffer.alloc(4 * MiB + 1, 7);
      await gate;
      yield Buffer.alloc(10, 8);
    }
    const first = w.addFile("slow", slow());
    await new Promise((r) => setTimeout(r, 20));
    await w.addFile("big", big); // queued behind the stream
    fs.truncateSync(big, MiB);
    release();
    await first;
    await assert.rejects(w.finish(), (e: BfcError) => {
      assert.equal(e.name, "BfcError");
      assert.equal(e.reason, "SOURCE_CHANGED");
      assert.ok(e.message.includes(big), e.message);
      return true;
    });
    await w.abort();
    assert.deepEqual(leftovers(dir), []);
    assert.equal(fs.readFileSync(file, "utf8"), "OLD");
  });
});

describe("sources", () => {
  const small = content("text", 3000, 11);
  const large = content("text", 4 * MiB + 12345, 12);
  for (const size of ["small", "large"] as const) {
    for (const opts of [{}, { compression: "zstd" as const }] as WriterOptions[]) {
      it(`Buffer, Uint8Array view, path, Readable and async generator (${size}, ${opts.compression ?? "none"})`, async () => {
        const data = size === "small" ? small : large;
        const { dir, file } = place();
        const src = path.join(dir, "src.bin");
        fs.writeFileSync(src, data);
        fs.chmodSync(src, 0o640);
        fs.utimesSync(src, 1_600_000_000, 1_600_000_000);
        const view = new Uint8Array(data.length + 10);
        view.set(data, 5);
        const r = await build(file, { ...opts, workers: 1 }, async (w) => {
          await w.addFile("buffer", data, { mode: 0o600, mtime: 1234567890123456789n });
          await w.addFile("view", view.subarray(5, 5 + data.length));
          await w.addFile("path", src);
          await w.addFile("readable", Readable.from(split(data, 65536)), {
            mtime: new Date(1_500_000_000_000),
          });
          await w.addFile("generator", gen(split(data, 1000 * 1000)), { mtime: 1_400_000_000_000 });
        });
        for (const name of ["buffer", "view", "path", "readable", "generator"]) {
          assert.ok((await r.readFile(name)).equals(data), name);
          const e = r.stat(name);
          assert.equal(e.compression, opts.compression === "zstd" ? "zstd" : "none", name);
        }
        assert.equal(r.stat("buffer").mode, 0o100600);
        assert.equal(r.stat("buffer").mtimeNs, 1234567890123456789n);
        assert.equal(r.stat("path").mode, 0o100640, "a path source keeps its file's mode");
        assert.equal(r.stat("path").mtimeNs, 1_600_000_000_000_000_000n, "and mtime");
        assert.equal(r.stat("readable").mtimeNs, 1_500_000_000_000_000_000n);
        assert.equal(r.stat("generator").mtimeNs, 1_400_000_000_000_000_000n);
        assert.equal(r.stat("view").mode, 0o100644, "default file mode");
        await deepOk(r);
        r.close();
      });
    }
  }

  it("files past 4 MiB from a path or stream are readable when encrypted (streaming path)", async () => {
    const { dir, file } = place();
    const text = content("text", 4 * MiB + 100, 21);
    const random = content("random", 4 * MiB + 100, 22);
    const src = path.join(dir, "t.bin");
    fs.writeFileSync(src, text);
    for (const compression of ["none", "zstd"] as const) {
      fs.rmSync(file, { force: true });
      const r = await build(file, { compression, key: KEY }, async (w) => {
        await w.addFile("path", src);
        await w.addFile("gen", gen(split(random, MiB)));
        await w.addFile("readable", Readable.from(split(text, MiB)));
      });
      try {
        assert.ok((await r.readFile("path")).equals(text));
        assert.ok((await r.readFile("gen")).equals(random));
        assert.ok(r.readFileSync("readable").equals(text));
        await deepOk(r);
      } finally {
        r.close();
      }
    }
  });
});

describe("transformed on the writer's own thread (workers: 0)", () => {
  it("small files queued behind a large one keep their own payloads, compressed and encrypted or not", async () => {
    const { dir, file } = place();
    const big = path.join(dir, "big.bin");
    fs.writeFileSync(big, content("text", 9 * MiB, 31));
    const files = Array.from({ length: 40 }, (_, k) =>
      content(k % 2 ? "random" : "text", 1000 + k * 37, 40 + k),
    );
    for (const compression of ["none", "zstd"] as const) {
      for (const key of [KEY, undefined]) {
        fs.rmSync(file, { force: true });
        // Not awaited one by one: the small files queue while the large one is being written, and
        // each payload (a view of the transformer's reused buffers) must be copied for the wait.
        const r = await build(file, { compression, key, workers: 0 }, async (w) => {
          await Promise.all([w.addFile("a-big", big), ...files.map((d, k) => w.addFile(`f${k}`, d))]);
        });
        await assertContents(
          r,
          files.map((d, k) => [`f${k}`, d]),
          ` (${compression}, ${key ? "key" : "no key"})`,
        );
      }
    }
  });
});

describe("streamed through worker threads", () => {
  it("a large stream whose chunks include ones under 4 KiB (slices of Node's buffer pool) is stored whole", async () => {
    const { file } = place();
    const data = content("text", 4 * MiB + 5001, 77);
    // 4 MiB, then 5000 bytes, then 1 byte: the small ones are copied by the writer into pooled memory.
    const parts = [
      data.subarray(0, 4 * MiB),
      data.subarray(4 * MiB, 4 * MiB + 5000),
      data.subarray(4 * MiB + 5000),
    ];
    for (const opts of [
      { compression: "zstd", workers: 1 },
      { compression: "none", key: KEY, workers: 1 },
      { compression: "zstd", key: KEY, workers: 2 },
    ] as WriterOptions[]) {
      fs.rmSync(file, { force: true });
      const r = await build(file, opts, async (w) => {
        await w.addFile("s", gen(parts));
        await w.addFile(
          "t",
          Readable.from([Buffer.from("x"), data.subarray(0, 4 * MiB + 2), Buffer.from("yz")]),
        );
      });
      const t = Buffer.concat([Buffer.from("x"), data.subarray(0, 4 * MiB + 2), Buffer.from("yz")]);
      await assertContents(
        r,
        [
          ["s", data],
          ["t", t],
        ],
        ` ${JSON.stringify({ ...opts, key: !!opts.key })}`,
      );
    }
  });
});

describe("payload ownership under any interleaving (property)", () => {
  it("every file reads back as added: small and streamed, from buffers, paths and streams, all awaited together", async () => {
    const { dir } = place();
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            kind: fc.constantFrom("text" as const, "random" as const),
            size: fc.oneof(
              fc.integer({ min: 0, max: 70_000 }),
              fc.integer({ min: 4 * MiB - 10, max: 5 * MiB }),
            ),
            source: fc.constantFrom("buffer" as const, "path" as const, "stream" as const),
          }),
          { minLength: 1, maxLength: 14 },
        ),
        fc.constantFrom("none" as const, "zstd" as const),
        fc.boolean(),
        fc.constantFrom(0, 1),
        async (specs, compression, encrypted, workers) => {
          const file = path.join(dir, `p${run++}.bfc`);
          const datas = specs.map((f, k) => content(f.kind, f.size, run * 100 + k));
          const key = encrypted ? KEY : undefined;
          const r = await build(file, { compression, key, workers }, async (w) => {
            await Promise.all(
              specs.map((f, k) => {
                const data = datas[k] as Buffer;
                if (f.source === "buffer") return w.addFile(`f${k}`, data);
                if (f.source === "stream") return w.addFile(`f${k}`, gen(split(data, 300_000)));
                const src = path.join(dir, `src-${run}-${k}`);
                fs.writeFileSync(src, data);
                return w.addFile(`f${k}`, src);
              }),
            );
          });
          try {
            await assertContents(
              r,
              datas.map((d, k) => [`f${k}`, d]),
            );
          } finally {
            fs.rmSync(file, { force: true });
          }
        },
      ),
      { seed: 0x0a11, numRuns: 12 },
    );
  });
});

describe("compression decisions", () => {
  it("incompressible data stays raw (comp none) and compressible data becomes zstd, small and streamed", async () => {
    const { dir, file } = place();
    const bigRandom = path.join(dir, "r.bin");
    const bigText = path.join(dir, "t.txt");
    fs.writeFileSync(bigRandom, content("random", 4 * MiB + 1, 31));
    fs.writeFileSync(bigText, content("text", 4 * MiB + 1, 32));
    const r = await build(file, { compression: "zstd", level: 1 }, async (w) => {
      await w.addFile("random", content("random", 100000, 33));
      await w.addFile("text", content("text", 100000, 34));
      await w.addFile("big-random", bigRandom);
      await w.addFile("big-text", bigText);
      await w.addFile("big-random-stream", gen(split(content("random", 4 * MiB + 1, 35), MiB)));
    });
    for (const [name, comp] of [
      ["random", "none"],
      ["text", "zstd"],
      ["big-random", "none"],
      ["big-text", "zstd"],
      ["big-random-stream", "none"],
    ]) {
      const e = r.stat(name);
      assert.equal(e.compression, comp, name);
      if (comp === "none") assert.equal(e.storedSize, e.size, name);
      else assert.ok(e.storedSize < e.size / 2, name);
    }
    await deepOk(r);
    r.close();
  });

  it("threshold: 63 bytes raw, 64 compressed by default; a custom threshold moves the edge", async () => {
    const { file } = place();
    const r = await build(file, { compression: "zstd" }, async (w) => {
      await w.addFile("a63", Buffer.alloc(63, "a"));
      await w.addFile("a64", Buffer.alloc(64, "a"));
      await w.addFile("a65", Buffer.alloc(65, "a"));
    });
    assert.equal(r.stat("a63").compression, "none");
    assert.equal(r.stat("a63").storedSize, 63);
    assert.equal(r.stat("a64").compression, "zstd");
    assert.equal(r.stat("a65").compression, "zstd");
    r.close();
    const p2 = place();
    const r2 = await build(p2.file, { compression: "zstd", threshold: 100 }, async (w) => {
      await w.addFile("a99", Buffer.alloc(99, "a"));
      await w.addFile("a100", Buffer.alloc(100, "a"));
    });
    assert.equal(r2.stat("a99").compression, "none");
    assert.equal(r2.stat("a100").compression, "zstd");
    r2.close();
  });

  it("empty files with compression and threshold 0 work (the reference fails), encrypted or not", async () => {
    for (const extra of [{}, { key: KEY }] as WriterOptions[]) {
      const { file } = place();
      const r = await build(file, { compression: "zstd", threshold: 0, ...extra }, async (w) => {
        await w.addFile("empty", Buffer.alloc(0));
        await w.addFile("empty-stream", gen([]));
        await w.addFile("one", Buffer.from("x"));
      });
      for (const n of ["empty", "empty-stream"]) {
        const e = r.stat(n);
        assert.equal(e.size, 0);
        assert.equal(e.compression, "none");
        assert.equal(e.storedSize, extra.key ? 28 : 0);
        assert.equal((await r.readFile(n)).length, 0);
      }
      assert.equal((await r.readFile("one")).toString(), "x");
      await deepOk(r);
      r.close();
    }
  });

  it("auto compresses text and skips random data and already-compressed formats", async () => {
    const { file } = place();
    const r = await build(file, { compression: "auto" }, async (w) => {
      await w.addFile("doc.txt", content("text", 20000, 41));
      await w.addFile("noise.bin", content("random", 20000, 42));
      await w.addFile("photo.jpg", content("text", 20000, 43));
    });
    assert.equal(r.stat("doc.txt").compression, "zstd");
    assert.equal(r.stat("noise.bin").compression, "none");
    assert.equal(r.stat("photo.jpg").compression, "none");
    assert.equal(r.header.features & 1, 1);
    r.close();
  });
});

describe("metadata and limits", () => {
  it("stores paths up to 65535 bytes and rejects longer ones (ENAMETOOLONG)", async () => {
    const { file } = place();
    const long = `${"d".repeat(200)}/${"é".repeat(32000)}/${"x".repeat(65535 - 200 - 64000 - 2)}`;
    assert.equal(Buffer.byteLength(long), 65535);
    const r = await build(file, {}, async (w) => {
      await w.addFile(long, Buffer.from("long"));
      await assert.rejects(w.addFile(`${long}y`, Buffer.from("too long")), { code: "ENAMETOOLONG" });
    });
    assert.equal((await r.readFile(long)).toString(), "long");
    assert.deepEqual(r.readdir(`${"d".repeat(200)}/${"é".repeat(32000)}`), [
      "x".repeat(65535 - 200 - 64000 - 2),
    ]);
    await deepOk(r);
    r.close();
  });

  it("keeps setuid/setgid/sticky bits, negative and nanosecond mtimes", async () => {
    const { file } = place();
    const r = await build(file, {}, async (w) => {
      await w.addFile("suid", Buffer.from("x"), { mode: 0o104755, mtime: -1_000_000_001n });
      await w.addDirectory("sticky", { mode: 0o1777, mtime: 1n });
      await w.addSymlink("link", "suid", { mtime: 9_223_372_036_854_775_807n });
    });
    assert.equal(r.stat("suid").mode, 0o104755);
    assert.equal(r.stat("suid").mtimeNs, -1_000_000_001n);
    assert.equal(r.stat("sticky").mode, 0o041777);
    assert.equal(r.stat("sticky").mtimeNs, 1n);
    assert.equal(r.stat("link").mode, 0o120777);
    assert.equal(r.stat("link").mtimeNs, 9_223_372_036_854_775_807n);
    r.close();
  });

  it("rejects invalid options and symlink targets", async () => {
    const { file } = place();
    const bad: [WriterOptions, string][] = [
      [{ level: 0 }, "INVALID_ARGUMENT"],
      [{ level: 23 }, "INVALID_ARGUMENT"],
      [{ level: 2.5 }, "INVALID_ARGUMENT"],
      [{ threshold: -1 }, "INVALID_ARGUMENT"],
      [{ blockSize: 0 }, "INVALID_ARGUMENT"],
      [{ blockSize: 2 * MiB }, "INVALID_ARGUMENT"],
      [{ compression: "gzip" as "zstd" }, "INVALID_ARGUMENT"],
      [{ key: Buffer.alloc(31) }, "BAD_KEY"],
      [{ password: "" }, "BAD_KEY"],
      [{ key: KEY, password: "x" }, "INVALID_ARGUMENT"],
    ];
    for (const [opts, reason] of bad) {
      await assert.rejects(Writer.create(file, opts), { code: "EINVAL", reason }, JSON.stringify(opts));
    }
    assert.equal(fs.existsSync(file), false);
    assert.deepEqual(leftovers(path.dirname(file)), []);
    const w = await Writer.create(file);
    await assert.rejects(w.addSymlink("l", ""), { reason: "INVALID_ARGUMENT" });
    await assert.rejects(w.addSymlink("l", "a\0b"), { reason: "INVALID_ARGUMENT" });
    await assert.rejects(w.addFile("/abs", Buffer.from("x")), { reason: "BAD_PATH" });
    await assert.rejects(w.addFile("../up", Buffer.from("x")), { reason: "BAD_PATH" });
    await assert.rejects(w.addFile("x", Buffer.alloc(1), { mtime: Number.NaN }), {
      reason: "INVALID_ARGUMENT",
    });
    await w.finish();
    await assert.rejects(w.addFile("late", Buffer.from("x")), { reason: "CLOSED" });
  });

  it("addTree stores a directory tree in byte-wise order with modes, mtimes and symlinks", async () => {
    const { dir, file } = place();
    const src = path.join(dir, "tree");
    fs.mkdirSync(path.join(src, "sub"), { recursive: true });
    fs.writeFileSync(path.join(src, "b.txt"), "b");
    fs.writeFileSync(path.join(src, "a.txt"), "a");
    fs.writeFileSync(path.join(src, "\u{1F600}"), "astral");
    fs.writeFileSync(path.join(src, "\uFFFD"), "bmp");
    fs.writeFileSync(path.join(src, "sub", "x"), "x");
    fs.chmodSync(path.join(src, "sub", "x"), 0o751);
    fs.symlinkSync("../a.txt", path.join(src, "sub", "link"));
    const r = await build(file, {}, async (w) => {
      await w.addTree(src, "top");
    });
    assert.deepEqual(
      [...r.entries()].map((e) => e.path),
      [
        "top",
        "top/a.txt",
        "top/b.txt",
        "top/sub",
        "top/sub/link",
        "top/sub/x",
        "top/\uFFFD",
        "top/\u{1F600}",
      ],
    );
    assert.deepEqual(
      storedIndexPaths(fs.readFileSync(file)).map((b) => b.toString()),
      [...r.entries()].map((e) => e.path),
    );
    assert.equal(r.stat("top/sub/x").mode, 0o100751);
    assert.equal(
      r.stat("top/sub/x").mtimeNs,
      fs.statSync(path.join(src, "sub", "x"), { bigint: true }).mtimeNs,
    );
    assert.equal(await r.readlink("top/sub/link"), "../a.txt");
    r.close();
  });
});

describe("writer: resource limits of a new container", () => {
  it("refuses the entry that would exceed a limit, before writing it", async () => {
    const { file } = place();
    const w = await Writer.create(file, {
      limits: { maxFiles: 2, maxDirectories: 2, maxFileSize: 100, maxTotalBytes: 150 },
    });
    await w.addFile("a/b/one", Buffer.alloc(100));
    await assert.rejects(() => w.addDirectory("a/b/c"), { code: "EDQUOT", field: "maxDirectories" });
    await assert.rejects(() => w.addFile("big", Buffer.alloc(101)), { code: "EDQUOT", field: "maxFileSize" });
    await assert.rejects(() => w.addFile("two", Buffer.alloc(51)), {
      code: "EDQUOT",
      field: "maxTotalBytes",
    });
    await w.addFile("two", Buffer.alloc(50));
    await assert.rejects(() => w.addSymlink("three", "one"), { code: "EDQUOT", field: "maxFiles" });
    await w.finish();
    const r = await Reader.open(file);
    assert.deepEqual(
      [...r.entries()].map((e) => e.path),
      ["a/b/one", "two"],
    );
    assert.deepEqual(r.extension.limits, {
      maxFiles: 2,
      maxDirectories: 2,
      maxFileSize: 100,
      maxTotalBytes: 150,
    });
    r.close();
  });

  it("counts a stream of unknown length as it flows", async () => {
    const { dir, file } = place();
    const w = await Writer.create(file, { limits: { maxTotalBytes: 5 * MiB } });
    await assert.rejects(() => w.addFile("s", gen(split(Buffer.alloc(6 * MiB, 1), 64 * 1024))), {
      code: "EDQUOT",
      field: "maxTotalBytes",
    });
    await assert.rejects(() => w.finish());
    assert.equal(fs.existsSync(file), false);
    assert.deepEqual(leftovers(dir), []);
  });
});

describe("entry attributes", () => {
  const attrsArb = fc.record(
    {
      uid: fc.integer({ min: 0, max: 0xffffffff }),
      gid: fc.integer({ min: 0, max: 0xffffffff }),
      atimeNs: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
      ctimeNs: fc.bigInt({ min: -(2n ** 40n), max: 2n ** 62n }),
      birthtimeNs: fc.bigInt({ min: 0n, max: 2n ** 62n }),
      xattrs: fc
        .uniqueArray(
          fc.tuple(
            fc.constantFrom("user.a", "user.é", "security.selinux", "trusted.x", "system.posix_acl_access"),
            fc.uint8Array({ maxLength: 70 }),
          ),
          { selector: (x) => x[0], maxLength: 3 },
        )
        .map((l) => new Map(l.map(([n, v]) => [n, Buffer.from(v)]))),
    },
    { requiredKeys: [], noNullPrototype: true },
  );

  it("each entry reads back the attributes last set for it, links and renamed order included (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 12 }), { maxLength: 25 }),
        fc.array(fc.tuple(fc.nat(), fc.option(attrsArb, { nil: undefined })), { maxLength: 40 }),
        async (names, sets) => {
          const paths = names.map((n, k) => `d${k % 3}/${n.replace(/[/.\\]/g, "_")}${k}`);
          const { file } = place();
          const want = new Map<string, object>();
          const r = await build(file, {}, async (w) => {
            for (const [k, p] of paths.entries()) {
              if (k % 5 === 4) await w.addHardlink(p, paths[0] as string);
              else await w.addFile(p, Buffer.from(p));
            }
            for (const [at, a] of sets) {
              if (paths.length === 0) break;
              const p = paths[at % paths.length] as string;
              // Nothing defined clears what was set before.
              w.setAttributes(p, a ?? {});
              if (a && Object.values(a).some((v) => v !== undefined)) want.set(p, a);
              else want.delete(p);
            }
          });
          for (const p of paths) assert.deepEqual(r.attributesAt(r.find(p)), want.get(p), p);
          r.close();
        },
      ),
      { seed: 0xa77, numRuns: 40 },
    );
  });
});
