/**
 * Root digest: a known answer computed here from the encoding docs/format.md describes, the same
 * digest however a tree is stored, a different one for any change to it, and tampering caught
 * either by the reader's checks or by the digest (including an index rewritten with a valid CRC,
 * which verification cannot notice).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { crc32c } from "../../src/codec/crc32c.ts";
import { rootDigest } from "../../src/container/digest.ts";
import { FOOTER_SIZE } from "../../src/format/constants.ts";
import { BfcError, Reader, verify, Writer, type WriterOptions } from "../../src/index.ts";
import { content, Prng } from "../craft.ts";
import { randomBytes, tempDir, VECTOR_PASSWORD, VECTORS } from "../helpers.ts";

const root = tempDir("bfc-digest-");
const KEY = Buffer.alloc(32, 0x5a);
let seq = 0;

type Spec = Record<
  string,
  | { kind: "file"; data: Buffer; mode?: number; mtime?: bigint }
  | { kind: "dir"; mode?: number; mtime?: bigint }
  | { kind: "link"; target: string; mtime?: bigint }
>;

const T = 1_700_000_000_123_456_789n;

async function build(spec: Spec, opts: WriterOptions = {}): Promise<string> {
  const file = path.join(root, `c${seq++}.bfc`);
  const w = await Writer.create(file, { workers: 1, ...opts });
  for (const [p, e] of Object.entries(spec)) {
    const meta = { mtime: e.mtime ?? T, ...("mode" in e && e.mode !== undefined ? { mode: e.mode } : {}) };
    if (e.kind === "file") await w.addFile(p, e.data, meta);
    else if (e.kind === "dir") await w.addDirectory(p, meta);
    else await w.addSymlink(p, e.target, meta);
  }
  await w.finish();
  return file;
}

async function digestOf(file: string, creds: { key?: Buffer; password?: string } = {}): Promise<string> {
  const r = await Reader.open(file, creds);
  try {
    return (await rootDigest(r)).digest;
  } finally {
    r.close();
  }
}

function baseSpec(): Spec {
  return {
    docs: { kind: "dir", mode: 0o755 },
    "docs/a.txt": { kind: "file", data: content("text", 5000, 1), mode: 0o644 },
    "docs/empty": { kind: "file", data: Buffer.alloc(0), mode: 0o600 },
    "docs/noise.bin": { kind: "file", data: randomBytes(3000, 2), mode: 0o640 },
    // Above the batch limit, so the streaming path is covered in every variant.
    "big.txt": { kind: "file", data: content("text", 5 * 1024 * 1024 + 17, 3), mode: 0o644 },
    link: { kind: "link", target: "docs/a.txt" },
  };
}

describe("rootDigest", () => {
  it("known answer: matches the documented encoding computed independently", async () => {
    const file = await build({
      d: { kind: "dir", mode: 0o750, mtime: -5n },
      "d/hi": { kind: "file", data: Buffer.from("hello\n"), mode: 0o4755, mtime: T },
      l: { kind: "link", target: "d/hi", mtime: 1n },
    });
    const u32 = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(n);
      return b;
    };
    const i64 = (n: bigint) => {
      const b = Buffer.alloc(8);
      b.writeBigInt64LE(n);
      return b;
    };
    const u64 = (n: number) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt(n));
      return b;
    };
    const sha = (d: Buffer) => createHash("sha256").update(d).digest();
    const rec = (p: string, mode: number, mtime: bigint, type: number, size: number, h: Buffer) =>
      Buffer.concat([
        u32(Buffer.byteLength(p)),
        Buffer.from(p),
        u32(mode),
        i64(mtime),
        Buffer.of(type),
        u64(size),
        h,
      ]);
    const want = createHash("sha256")
      .update(Buffer.from("bfc-root-digest-v1\0", "latin1"))
      // Byte-wise path order: "d" < "d/hi" < "l".
      .update(rec("d", 0o040750, -5n, 2, 0, Buffer.alloc(32)))
      .update(rec("d/hi", 0o104755, T, 1, 6, sha(Buffer.from("hello\n"))))
      .update(rec("l", 0o120777, 1n, 3, 4, sha(Buffer.from("d/hi"))))
      .digest("hex");
    const r = await Reader.open(file);
    try {
      const got = await rootDigest(r);
      assert.deepEqual(got, { digest: want, entries: 3, bytes: 6 });
    } finally {
      r.close();
    }
  });

  it("the reference's vectors: plain, zstd and password containers share one pinned digest", async () => {
    const pinned = "e095450954a4f7d7968aed41d1f13cca8520e3e52e83462674ac25b036dc21c6";
    for (const name of ["plain", "zstd"]) {
      assert.equal(await digestOf(path.join(VECTORS, "containers", `${name}.bfc`)), pinned, name);
    }
    const pw = path.join(VECTORS, "containers", "password.bfc");
    assert.equal(await digestOf(pw, { password: VECTOR_PASSWORD }), pinned);
  });

  it("is independent of compression, encryption and object order", async () => {
    const spec = baseSpec();
    const plain = await digestOf(await build(spec));
    const zstd = await digestOf(await build(spec, { compression: "zstd" }));
    const enc = await digestOf(await build(spec, { compression: "zstd", key: KEY }), { key: KEY });
    const encRaw = await digestOf(await build(spec, { key: KEY }), { key: KEY });
    // Same entries added in another order: objects lie elsewhere, the index is the same.
    const reversed = Object.fromEntries(Object.entries(spec).reverse()) as Spec;
    const moved = await digestOf(await build(reversed));
    assert.match(plain, /^[0-9a-f]{64}$/);
    assert.deepEqual([zstd, enc, encRaw, moved], [plain, plain, plain, plain]);
  });

  it("changes when any single thing changes", async () => {
    const base = await digestOf(await build(baseSpec()));
    const variants: [string, (s: Spec) => void][] = [
      [
        "path rename",
        (s) => {
          s["docs/b.txt"] = s["docs/a.txt"] as Spec[string];
          delete s["docs/a.txt"];
        },
      ],
      ["mode", (s) => Object.assign(s["docs/a.txt"] as object, { mode: 0o664 })],
      ["directory mode", (s) => Object.assign(s.docs as object, { mode: 0o700 })],
      ["mtime (1 ns)", (s) => Object.assign(s["docs/noise.bin"] as object, { mtime: T + 1n })],
      [
        "one content byte",
        (s) => {
          const d = Buffer.from((s["docs/a.txt"] as { data: Buffer }).data);
          d[1234] ^= 1;
          Object.assign(s["docs/a.txt"] as object, { data: d });
        },
      ],
      [
        "one byte of the large file",
        (s) => {
          const d = Buffer.from((s["big.txt"] as { data: Buffer }).data);
          d[d.length - 1] ^= 0x20;
          Object.assign(s["big.txt"] as object, { data: d });
        },
      ],
      ["symlink target", (s) => Object.assign(s.link as object, { target: "docs/a.tx" })],
      ["added empty directory", (s) => Object.assign(s, { "docs/new": { kind: "dir" } })],
      ["added empty file", (s) => Object.assign(s, { "docs/zz": { kind: "file", data: Buffer.alloc(0) } })],
    ];
    const seen = new Map<string, string>([[base, "base"]]);
    for (const [what, change] of variants) {
      const s = baseSpec();
      change(s);
      const d = await digestOf(await build(s));
      assert.ok(!seen.has(d), `${what}: same digest as ${seen.get(d)}`);
      seen.set(d, what);
    }
  });

  it("reports progress and needs the key for encrypted files", async () => {
    const file = await build(baseSpec(), { key: KEY });
    const r = await Reader.open(file);
    try {
      await assert.rejects(
        rootDigest(r),
        (e: unknown) => e instanceof BfcError && e.reason === "KEY_REQUIRED",
      );
    } finally {
      r.close();
    }
    const r2 = await Reader.open(file, { key: KEY });
    try {
      const seen: number[] = [];
      const d = await rootDigest(r2, { onProgress: (p) => seen.push(p.bytes) });
      const total = Object.values(baseSpec()).reduce(
        (n, e) => n + (e.kind === "file" ? e.data.length : 0),
        0,
      );
      assert.equal(d.bytes, total);
      assert.equal(d.entries, 6);
      assert.equal(seen.at(-1), total);
      assert.ok(seen.every((b, k) => k === 0 || b >= (seen[k - 1] as number)));
    } finally {
      r2.close();
    }
  });
});

/** Byte ranges of file payloads and symlink targets (not the zero padding after a target). */
async function payloadRanges(file: string, creds: { key?: Buffer }): Promise<[number, number][]> {
  const r = await Reader.open(file, creds);
  try {
    const out: [number, number][] = [];
    for (const e of r.entries()) {
      const start = e.objectOffset + e.objectSize - e.storedSize;
      if (e.type === "file" && e.storedSize > 0) out.push([start, start + e.storedSize]);
      if (e.type === "symlink") out.push([start, start + e.size]);
    }
    return out;
  } finally {
    r.close();
  }
}

describe("tamper detection", () => {
  const small: Spec = {
    docs: { kind: "dir" },
    "docs/a.txt": { kind: "file", data: content("text", 3000, 7) },
    "docs/b.bin": { kind: "file", data: randomBytes(700, 8) },
    "docs/c.txt": { kind: "file", data: Buffer.from("short") },
    link: { kind: "link", target: "docs/a.txt" },
  };

  for (const [name, opts] of [
    ["plain", {}],
    ["zstd", { compression: "zstd" }],
    ["zstd+encrypted", { compression: "zstd", key: KEY }],
  ] as [string, WriterOptions][]) {
    it(`${name}: a flipped payload byte fails the reader's checks or changes the digest`, async () => {
      const creds = opts.key ? { key: KEY } : {};
      const file = await build(small, opts);
      const good = await digestOf(file, creds);
      const bytes = fs.readFileSync(file);
      const ranges = await payloadRanges(file, creds);
      const total = ranges.reduce((n, [a, b]) => n + b - a, 0);
      const rng = new Prng(0xd16e57 + name.length);
      const bad = path.join(root, `tamper-${name}.bfc`);
      let thrown = 0;
      for (let k = 0; k < 100; k++) {
        let at = rng.int(0, total - 1);
        let off = -1;
        for (const [a, b] of ranges) {
          if (at < b - a) {
            off = a + at;
            break;
          }
          at -= b - a;
        }
        const copy = Buffer.from(bytes);
        copy[off] ^= 1 << rng.int(0, 7);
        fs.writeFileSync(bad, copy);
        try {
          const d = await digestOf(bad, creds);
          assert.notEqual(d, good, `offset ${off}: tampered container has the original digest`);
        } catch (e) {
          if (e instanceof assert.AssertionError) throw e;
          assert.ok(e instanceof BfcError, `offset ${off}: ${(e as Error)?.stack ?? e}`);
          thrown++;
        }
      }
      assert.ok(thrown > 0);
    });
  }

  it("an index rewritten with a valid CRC passes deep verification but not the digest", async () => {
    const file = await build(small);
    const good = await digestOf(file);
    const bytes = fs.readFileSync(file);
    const f = bytes.length - FOOTER_SIZE;
    const indexSize = Number(bytes.readBigUInt64LE(f + 8));
    const indexOffset = Number(bytes.readBigUInt64LE(f + 20));
    const entryStart = (name: string) => {
      let o = indexOffset + 8;
      for (;;) {
        const len = bytes.readUInt32LE(o);
        if (bytes.toString("utf8", o + 4, o + 4 + len) === name) return { o, len };
        o += 52 + len;
      }
    };
    const tampers: [string, (b: Buffer) => void][] = [
      [
        "mtime",
        (b) => {
          const { o, len } = entryStart("docs/c.txt");
          b[o + 24 + len] ^= 1;
        },
      ],
      [
        "permission bits",
        (b) => {
          const { o, len } = entryStart("docs/a.txt");
          b[o + 20 + len] ^= 0o2;
        },
      ],
    ];
    for (const [what, tamper] of tampers) {
      const copy = Buffer.from(bytes);
      tamper(copy);
      copy.writeUInt32LE(crc32c(copy.subarray(indexOffset, indexOffset + indexSize)), f + 16);
      const bad = path.join(root, `index-${what.replace(/ /g, "-")}.bfc`);
      fs.writeFileSync(bad, copy);
      const r = await Reader.open(bad);
      try {
        const rep = await verify(r, { deep: true });
        assert.equal(rep.ok, true, `${what}: ${JSON.stringify(rep.problems)}`);
        const d = await rootDigest(r);
        assert.notEqual(d.digest, good, what);
      } finally {
        r.close();
      }
    }
  });
});
