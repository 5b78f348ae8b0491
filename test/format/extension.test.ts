import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { crc32c } from "../../src/codec/crc32c.ts";
import { Reader } from "../../src/container/reader.ts";
import { verify } from "../../src/container/verify.ts";
import { Writer } from "../../src/container/writer.ts";
import { BfcError } from "../../src/errors.ts";
import {
  decodeExtension,
  type Extension,
  encodeExtension,
  FLAG_CRITICAL,
  hasExtension,
} from "../../src/format/extension.ts";
import { decodeFooter } from "../../src/format/footer.ts";
import { tempDir } from "../helpers.ts";

const metadataArb = fc.record(
  {
    creator: fc.string(),
    createdNs: fc.bigInt({ min: -(2n ** 62n), max: 2n ** 63n - 1n }),
    modifiedNs: fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }),
    labels: fc.dictionary(fc.string(), fc.string()),
  },
  { requiredKeys: [] },
);
const limit = fc.option(fc.nat({ max: Number.MAX_SAFE_INTEGER }), { nil: undefined });
const limitsArb = fc.record({
  maxFiles: limit,
  maxDirectories: limit,
  maxTotalBytes: limit,
  maxFileSize: limit,
});
const extensionArb = fc.record(
  {
    metadata: metadataArb,
    limits: limitsArb,
    previous: fc.record({
      footerEnd: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
      commit: fc.nat({ max: 0xffffffff }),
    }),
    rootDigest: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((u) => Buffer.from(u)),
    // Increasing entries, each with a non-empty name free of NUL.
    objectNames: fc
      .uniqueArray(
        fc.record({
          entry: fc.nat({ max: 0xffffffff }),
          name: fc.uint8Array({ minLength: 1, maxLength: 40 }).map((u) => Buffer.from(u.map((b) => b || 1))),
        }),
        { selector: (o) => o.entry, minLength: 1, maxLength: 5 },
      )
      .map((l) => l.sort((a, b) => a.entry - b.entry)),
    unknown: fc.array(
      fc.record({
        type: fc.integer({ min: 100, max: 0xffff }),
        flags: fc.constant(0),
        payload: fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u)),
      }),
      { maxLength: 3 },
    ),
  },
  { requiredKeys: ["unknown"] },
);

/** Limits decode without the keys that were unlimited. */
function normalized(e: Partial<Extension>): Partial<Extension> {
  // Plain objects throughout: fast-check's records have null prototypes.
  const out: Partial<Extension> = { ...e, unknown: (e.unknown ?? []).map((u) => ({ ...u })) };
  if (e.limits) out.limits = Object.fromEntries(Object.entries(e.limits).filter(([, v]) => v !== undefined));
  if (e.previous) out.previous = { ...e.previous };
  if (e.objectNames) out.objectNames = e.objectNames.map((o) => ({ ...o }));
  if (e.metadata) {
    out.metadata = { ...e.metadata };
    if (e.metadata.labels) out.metadata.labels = { ...e.metadata.labels };
  }
  for (const k of Object.keys(out) as (keyof Extension)[]) if (out[k] === undefined) delete out[k];
  return out;
}

describe("index extension area", () => {
  it("encodes nothing at all when there is nothing to store", () => {
    assert.equal(encodeExtension({}).length, 0);
    assert.deepEqual(decodeExtension(Buffer.alloc(0)), { unknown: [] });
  });

  it("round-trips every record type, keeping unknown records", () => {
    fc.assert(
      fc.property(extensionArb, (ext) => {
        const bytes = encodeExtension(ext);
        // Nothing to store (every record absent, no unknown ones) encodes to nothing at all.
        assert.equal(hasExtension(bytes), bytes.length > 0);
        assert.deepEqual(normalized(decodeExtension(bytes)), normalized(ext));
      }),
      { numRuns: 300 },
    );
  });

  it("rejects corruption with a BfcError or decodes it, never anything else", () => {
    fc.assert(
      fc.property(
        extensionArb,
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.boolean(),
        (ext, at, xor, cut) => {
          const bytes = Buffer.from(encodeExtension(ext));
          if (bytes.length === 0) return;
          const k = at % bytes.length;
          const damaged = cut ? bytes.subarray(0, k) : bytes;
          if (!cut) damaged[k] = (damaged[k] as number) ^ xor;
          try {
            decodeExtension(damaged);
          } catch (e) {
            assert.ok(e instanceof BfcError, String(e));
            assert.ok(["BAD_INDEX", "UNSUPPORTED"].includes(e.reason), e.reason);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("refuses unknown critical records and other versions", () => {
    const crit = encodeExtension({
      unknown: [{ type: 999, flags: FLAG_CRITICAL, payload: Buffer.from("x") }],
    });
    assert.throws(
      () => decodeExtension(crit),
      (e: BfcError) => e.reason === "UNSUPPORTED",
    );
    const v2 = Buffer.from(encodeExtension({ limits: { maxFiles: 1 } }));
    v2.writeUInt16LE(2, 4);
    assert.throws(
      () => decodeExtension(v2),
      (e: BfcError) => e.reason === "UNSUPPORTED",
    );
    const dup = encodeExtension({ limits: { maxFiles: 1 }, unknown: [] });
    const twice = Buffer.concat([dup, dup.subarray(12)]);
    twice.writeUInt32LE(2, 8);
    assert.throws(
      () => decodeExtension(twice),
      (e: BfcError) => e.reason === "BAD_INDEX",
    );
  });

  it("treats a tail without the magic as no extension (another writer's bytes)", () => {
    assert.deepEqual(decodeExtension(Buffer.from("something else")), { unknown: [] });
  });
});

describe("containers with an extension area", () => {
  const dir = tempDir("bfc-ext-");
  async function make(file: string, opts: Parameters<typeof Writer.create>[1]): Promise<void> {
    const w = await Writer.create(file, opts);
    await w.addDirectory("d", { mtime: 1_000_000_000n });
    await w.addFile("d/a.txt", Buffer.from("hello\n"), { mtime: 2_000_000_000n });
    await w.addSymlink("l", "d/a.txt", { mtime: 3_000_000_000n });
    await w.finish();
  }

  it("keeps the reference's layout: same entries, extension only after them, inside the CRC'd index", async () => {
    const plain = path.join(dir, "plain.bfc");
    const ext = path.join(dir, "ext.bfc");
    await make(plain, {});
    const metadata = { creator: "bfcfs test", createdNs: 5n, labels: { app: "demo" } };
    const limits = { maxFiles: 10, maxFileSize: 1 << 20 };
    await make(ext, { metadata, limits });

    const a = await Reader.open(plain);
    const b = await Reader.open(ext);
    try {
      // Without extensions nothing follows the entries: byte-for-byte the reference's index.
      assert.equal(a.index.extension().length, 0);
      assert.deepEqual(a.extension, { unknown: [] });
      // The entries are the same bytes; the extension follows them, and the footer covers it.
      assert.ok(a.index.blob.equals(b.index.blob.subarray(0, b.index.entriesEnd)));
      assert.equal(b.index.blob.readUInt32LE(4), 3, "entry count unchanged");
      const raw = fs.readFileSync(ext);
      const footer = decodeFooter(raw.subarray(raw.length - 56), raw.length);
      assert.equal(footer.indexSize, b.index.blob.length);
      assert.equal(footer.indexCrc, crc32c(b.index.blob));
      assert.equal(footer.indexOffset + footer.indexSize + 56, raw.length);
      assert.deepEqual(b.extension.metadata, metadata);
      assert.deepEqual(b.extension.limits, limits);
      assert.equal((await verify(b, { deep: true })).ok, true);
      assert.equal(b.readFileSync("d/a.txt").toString(), "hello\n");
    } finally {
      a.close();
      b.close();
    }
  });
});
