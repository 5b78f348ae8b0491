import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import zlib from "node:zlib";
import fc from "fast-check";
import { BufferSource } from "../../src/disk/block-source.ts";
import { openImage } from "../../src/disk/open-disk.ts";
import { Qcow2Image } from "../../src/disk/qcow2.ts";
import { isBfcError } from "../../src/errors.ts";
import { caught, randomBytes, tempDir } from "../helpers.ts";
import { buildQcow2, type ClusterSpec, type Qcow2Spec, type SubclusterKind } from "./qcow2-builder.ts";

function open(image: Buffer): Qcow2Image {
  return Qcow2Image.fromSource(new BufferSource(image, "test.qcow2"));
}

function readAll(img: { size: number; read(b: Uint8Array, p: number): void }, chunk = 1 << 20): Buffer {
  const out = Buffer.alloc(img.size);
  for (let p = 0; p < img.size; p += chunk) img.read(out.subarray(p, Math.min(p + chunk, img.size)), p);
  return out;
}

/** Every descriptor layout the cluster size allows, in an order that mixes neighbours. */
function allLayouts(cb: number, ext: boolean): Map<number, ClusterSpec> {
  const cs = 2 ** cb;
  const c = new Map<number, ClusterSpec>();
  c.set(0, { kind: "data", data: randomBytes(cs, 1) });
  c.set(1, { kind: "data", data: randomBytes(cs, 2) }); // host-contiguous with cluster 0
  c.set(2, {
    kind: "compressed",
    data: Buffer.concat([randomBytes(cs / 4, 3), Buffer.alloc(cs / 4, 3)]),
    frames: 3,
  });
  c.set(3, { kind: "zero", preallocated: true });
  c.set(4, { kind: "zero" });
  c.set(6, { kind: "compressed", data: Buffer.from("compressible text ".repeat(cs / 16)) });
  c.set(7, { kind: "data", data: randomBytes(cs, 7) });
  if (ext) {
    const kinds: SubclusterKind[] = ["data", "zero", "unallocated"];
    c.set(8, {
      kind: "subclusters",
      data: randomBytes(cs, 8),
      map: Array.from({ length: 32 }, (_, i) => kinds[i % 3]),
    });
    c.set(9, {
      kind: "subclusters",
      data: randomBytes(cs, 9),
      map: Array.from({ length: 32 }, (_, i) => (i < 5 || i > 20 ? "data" : "zero")),
    });
    c.set(10, { kind: "subclusters", data: randomBytes(cs, 10), map: Array(32).fill("zero") });
  }
  // Far away: a second L2 table (when the first covers little), and the partial last cluster.
  const far = farCluster(cb, ext);
  c.set(far - 2, { kind: "compressed", data: randomBytes(cs / 2, 11) });
  c.set(far, { kind: "data", data: randomBytes(cs, 12) });
  return c;
}

/** The last cluster: in a second L2 table when one table covers at most 16 MiB. */
function farCluster(cb: number, ext: boolean): number {
  const l2Entries = 2 ** cb / (ext ? 16 : 8);
  return l2Entries * 2 ** cb <= 16 << 20 ? l2Entries + 3 : 13;
}

function layoutSpec(cb: number, codec: "zlib" | "zstd", ext: boolean): Qcow2Spec {
  const cs = 2 ** cb;
  return {
    clusterBits: cb,
    virtualSize: (farCluster(cb, ext) + 1) * cs - 512,
    compression: codec,
    extendedL2: ext,
    clusters: allLayouts(cb, ext),
  };
}

describe("qcow2: descriptor layouts", () => {
  for (const cb of [9, 12, 16, 21]) {
    for (const codec of ["zlib", "zstd"] as const) {
      for (const ext of cb >= 14 ? [false, true] : [false]) {
        it(`cluster_bits ${cb}, ${codec}${ext ? ", extended L2" : ""}: whole-disk and random reads`, () => {
          const built = buildQcow2(layoutSpec(cb, codec, ext));
          const img = open(built.image);
          assert.equal(img.size, built.expected.length);
          assert.equal(img.header.clusterSize, 2 ** cb);
          assert.equal(img.header.compression, codec);
          assert.equal(img.header.extendedL2, ext);
          assert.ok(readAll(img).equals(built.expected));
          // Reads of odd sizes at odd places, crossing cluster and subcluster borders.
          fc.assert(
            fc.property(fc.nat(img.size - 1), fc.nat(3 * 2 ** cb), (pos, len) => {
              const n = Math.min(len, img.size - pos);
              const b = Buffer.alloc(n);
              img.read(b, pos);
              assert.ok(b.equals(built.expected.subarray(pos, pos + n)));
            }),
            { numRuns: cb === 21 ? 30 : 100 },
          );
        });
      }
    }
  }

  for (const codec of ["zlib", "zstd"] as const) {
    it(`${codec}: a cluster cache of two clusters recycles evicted buffers without mixing clusters up`, () => {
      const cs = 4096;
      const clusters = new Map<number, ClusterSpec>();
      for (let i = 0; i < 48; i++) {
        const data = i % 3 === 0 ? randomBytes(cs, 100 + i) : Buffer.from(`cluster ${i} `.repeat(cs / 8));
        clusters.set(i, { kind: "compressed", data, frames: 1 + (i % 4 === 1 ? 1 : 0) });
      }
      const built = buildQcow2({ clusterBits: 12, virtualSize: 48 * cs, compression: codec, clusters });
      const img = Qcow2Image.fromSource(new BufferSource(built.image, "test.qcow2"), {
        clusterCacheBytes: 2 * cs,
      });
      // Each cluster, then the two before it: one still cached, one evicted and decoded again.
      const b = Buffer.alloc(cs - 7);
      for (let k = 0; k < 48; k++) {
        for (const c of [k, k - 1, k - 2, k]) {
          if (c < 0) continue;
          img.read(b, c * cs + 3);
          assert.ok(b.equals(built.expected.subarray(c * cs + 3, c * cs + 3 + b.length)), `cluster ${c}`);
        }
      }
      assert.ok(readAll(img, 3 * cs + 100).equals(built.expected));
      assert.ok(readAll(img).equals(built.expected), "again, through recycled buffers");
      fc.assert(
        fc.property(fc.nat(img.size - 1), fc.nat(5 * cs), (pos, len) => {
          const n = Math.min(len, img.size - pos);
          const b = Buffer.alloc(n);
          img.read(b, pos);
          assert.ok(b.equals(built.expected.subarray(pos, pos + n)));
        }),
        { seed: 0xc1a5, numRuns: 200 },
      );
    });
  }

  it("qcow2 v2 reads data and compressed clusters", () => {
    const cs = 65536;
    const clusters = new Map<number, ClusterSpec>([
      [0, { kind: "data", data: randomBytes(cs, 1) }],
      [2, { kind: "compressed", data: Buffer.alloc(cs, 0x11) }],
    ]);
    const built = buildQcow2({ version: 2, clusterBits: 16, virtualSize: 4 * cs, clusters });
    const img = open(built.image);
    assert.equal(img.header.version, 2);
    assert.ok(readAll(img).equals(built.expected));
  });

  it("a zero flag in a v2 image is corruption", () => {
    const cs = 65536;
    const built = buildQcow2({
      version: 2,
      clusterBits: 16,
      virtualSize: 2 * cs,
      clusters: new Map([[1, { kind: "zero" }]]),
    });
    const img = open(built.image);
    const b = Buffer.alloc(10);
    img.read(b, 0);
    assert.throws(() => img.read(b, cs), { reason: "BAD_TABLE" });
  });
});

describe("qcow2: compressed descriptor math", () => {
  // x = 62 - (cluster_bits - 8): bits 0..x-1 are the byte offset, bits x..61 the extra sectors.
  for (const [cb, x] of [
    [9, 61],
    [12, 58],
    [16, 54],
    [21, 49],
  ]) {
    it(`cluster_bits ${cb}: offset bits 0..${x - 1}, sector count bits ${x}..61`, () => {
      const cs = 2 ** cb;
      const built = buildQcow2({
        clusterBits: cb,
        virtualSize: 2 * cs,
        clusters: new Map([[1, { kind: "compressed", data: randomBytes(cs, cb) }]]),
      });
      const entry = built.image.readBigUInt64BE(built.l2Offsets[0] + 8);
      const offset = Number(entry & ((1n << BigInt(x)) - 1n));
      const sectors = Number((entry >> BigInt(x)) & ((1n << BigInt(cb - 8)) - 1n)) + 1;
      // The payload starts unaligned and its last byte lies in the last counted sector.
      assert.notEqual(offset % 512, 0);
      assert.ok(sectors * 512 - (offset % 512) >= built.image.length - offset - 7);
      assert.ok(readAll(open(built.image)).equals(built.expected));
    });
  }

  it("a payload ending exactly at the end of the file (bound clipped to the file)", () => {
    const cs = 4096;
    const built = buildQcow2({
      clusterBits: 12,
      virtualSize: 2 * cs,
      compressedGap: Buffer.alloc(0),
      clusters: new Map([[1, { kind: "compressed", data: randomBytes(cs, 5) }]]),
    });
    assert.ok(readAll(open(built.image)).equals(built.expected));
  });

  it("a sector count too small for the payload fails to decompress", () => {
    for (const compression of ["zlib", "zstd"] as const) {
      const cs = 65536;
      const built = buildQcow2({
        clusterBits: 16,
        virtualSize: cs,
        compression,
        clusters: new Map([[0, { kind: "compressed", data: randomBytes(cs, 6) }]]),
      });
      const at = built.l2Offsets[0];
      const entry = built.image.readBigUInt64BE(at);
      built.image.writeBigUInt64BE(entry & ~(0xffn << 54n), at); // one sector only
      assert.throws(() => readAll(open(built.image)), { reason: "DECOMPRESS_FAILED" });
    }
  });

  it("a payload that decodes to less or more than a cluster, or is garbled, is refused", () => {
    const cs = 4096;
    for (const compression of ["zlib", "zstd"] as const) {
      const built = buildQcow2({
        clusterBits: 12,
        virtualSize: cs,
        compression,
        clusters: new Map([[0, { kind: "compressed", data: randomBytes(cs, 1) }]]),
      });
      const offset = Number(built.image.readBigUInt64BE(built.l2Offsets[0]) & ((1n << 58n) - 1n));
      const codec = (n: number) =>
        compression === "zstd"
          ? zlib.zstdCompressSync(Buffer.alloc(n, 1))
          : zlib.deflateRawSync(Buffer.alloc(n, 1));
      for (const replacement of [codec(2 * cs), codec(cs / 2), randomBytes(64, 2)]) {
        const b = Buffer.from(built.image);
        replacement.copy(b, offset);
        const err = caught(() => readAll(open(b)));
        assert.equal((err as { reason?: string }).reason, "DECOMPRESS_FAILED", err.message);
        assert.match(err.message, /^test\.qcow2: compressed cluster at host offset \d+ \(virtual offset 0\)/);
      }
    }
  });
});

describe("qcow2: header checks", () => {
  const base = () =>
    buildQcow2({
      clusterBits: 16,
      virtualSize: 1 << 20,
      clusters: new Map([[0, { kind: "data", data: Buffer.alloc(65536, 1) }]]),
    }).image;

  const cases: [string, (b: Buffer) => void, string][] = [
    ["bad magic", (b) => b.writeUInt32BE(0x12345678, 0), "BAD_MAGIC"],
    ["version 4", (b) => b.writeUInt32BE(4, 4), "UNSUPPORTED"],
    ["cluster_bits 8", (b) => b.writeUInt32BE(8, 20), "BAD_HEADER"],
    ["cluster_bits 22", (b) => b.writeUInt32BE(22, 20), "BAD_HEADER"],
    ["cluster_bits 2^31", (b) => b.writeUInt32BE(0x80000000, 20), "BAD_HEADER"],
    ["AES encryption", (b) => b.writeUInt32BE(1, 32), "UNSUPPORTED"],
    ["LUKS encryption", (b) => b.writeUInt32BE(2, 32), "UNSUPPORTED"],
    ["unknown incompatible bit", (b) => b.writeBigUInt64BE(1n << 40n, 72), "UNSUPPORTED"],
    ["external data file", (b) => b.writeBigUInt64BE(4n, 72), "UNSUPPORTED"],
    [
      "compression type 2",
      (b) => {
        b.writeBigUInt64BE(8n, 72);
        b[104] = 2;
      },
      "UNSUPPORTED",
    ],
    [
      "compression type without its bit",
      (b) => {
        b[104] = 1;
      },
      "BAD_HEADER",
    ],
    [
      "extended L2 with 4 KiB clusters",
      (b) => {
        b.writeBigUInt64BE(16n, 72);
        b.writeUInt32BE(12, 20);
      },
      "BAD_HEADER",
    ],
    ["header_length not a multiple of 8", (b) => b.writeUInt32BE(108, 100), "BAD_HEADER"],
    ["header_length beyond the cluster", (b) => b.writeUInt32BE(1 << 20, 100), "BAD_HEADER"],
    ["virtual size beyond 2^53", (b) => b.writeBigUInt64BE(1n << 60n, 24), "BAD_HEADER"],
    ["L1 too small for the virtual size", (b) => b.writeBigUInt64BE(1n << 40n, 24), "BAD_HEADER"],
    ["L1 of 2^32-1 entries", (b) => b.writeUInt32BE(0xffffffff, 36), "BAD_HEADER"],
    ["L1 beyond the end of the file", (b) => b.writeUInt32BE(1 << 20, 36), "TRUNCATED"],
    ["L1 offset unaligned", (b) => b.writeBigUInt64BE(65537n, 40), "BAD_HEADER"],
    ["L1 offset 2^63", (b) => b.writeBigUInt64BE(1n << 63n, 40), "BAD_HEADER"],
    [
      "backing name of 4000 bytes",
      (b) => {
        b.writeBigUInt64BE(200n, 8);
        b.writeUInt32BE(4000, 16);
      },
      "BAD_HEADER",
    ],
    [
      "backing name outside cluster 0",
      (b) => {
        b.writeBigUInt64BE(65530n, 8);
        b.writeUInt32BE(100, 16);
      },
      "BAD_HEADER",
    ],
    [
      "extension overrunning the cluster",
      (b) => {
        b.writeUInt32BE(0x6803f857, 112);
        b.writeUInt32BE(0xfffffff0, 116);
      },
      "BAD_HEADER",
    ],
  ];
  for (const [name, mutate, reason] of cases) {
    it(`refuses: ${name} (${reason})`, () => {
      const b = base();
      mutate(b);
      const err = caught(() => open(b));
      assert.ok(isBfcError(err), String(err));
      assert.equal((err as { reason?: string }).reason, reason, err.message);
      assert.match(err.message, /^test\.qcow2: /);
    });
  }

  it("names unknown incompatible features from the feature-name table", () => {
    const b = base();
    b.writeBigUInt64BE(1n << 7n, 72);
    // Feature name table: type 0 (incompatible), bit 7, name.
    b.writeUInt32BE(0x6803f857, 112);
    b.writeUInt32BE(48, 116);
    b[120] = 0;
    b[121] = 7;
    b.write("time travel", 122, "latin1");
    assert.throws(() => open(b), {
      reason: "UNSUPPORTED",
      message: /unknown incompatible features: time travel/,
    });
  });

  it("refuses truncated files of every length below the header", () => {
    const b = base();
    for (const n of [0, 3, 4, 23, 50, 71, 100]) {
      const err = caught(() => open(b.subarray(0, n)));
      assert.ok(isBfcError(err), `${n}: ${err}`);
    }
  });

  it("a dirty image opens; a corrupt-flagged one opens with a warning", () => {
    const b = base();
    b.writeBigUInt64BE(1n, 72);
    assert.deepEqual(open(b).warnings, []);
    b.writeBigUInt64BE(2n, 72);
    assert.match(open(b).warnings.join(), /marked corrupt/);
  });
});

describe("qcow2: corrupt mappings", () => {
  const cs = 65536;
  function image(clusters: [number, ClusterSpec][], ext = false) {
    return buildQcow2({ clusterBits: 16, virtualSize: 8 * cs, extendedL2: ext, clusters: new Map(clusters) });
  }
  function reasonOf(b: Buffer): string | undefined {
    const err = caught(() => readAll(open(b)));
    assert.ok(isBfcError(err), String(err));
    return (err as { reason?: string }).reason;
  }

  it("L2 table offset unaligned or beyond the file", () => {
    const built = image([[0, { kind: "data", data: Buffer.alloc(cs, 1) }]]);
    const b = Buffer.from(built.image);
    b.writeBigUInt64BE(BigInt(built.l2Offsets[0] + 512), built.l1Offset);
    assert.equal(reasonOf(b), "BAD_TABLE");
    b.writeBigUInt64BE(BigInt(built.image.length + cs * 4) & ~0xffffn, built.l1Offset);
    assert.equal(reasonOf(b), "TRUNCATED");
    b.writeBigUInt64BE(0x00fffffffffff0000n & ~0xffffn, built.l1Offset);
    assert.equal(reasonOf(b), "BAD_TABLE");
  });

  it("data cluster unaligned or beyond the file", () => {
    const built = image([[0, { kind: "data", data: Buffer.alloc(cs, 1) }]]);
    const b = Buffer.from(built.image);
    const at = built.l2Offsets[0];
    b.writeBigUInt64BE(b.readBigUInt64BE(at) + 512n, at);
    assert.equal(reasonOf(b), "BAD_TABLE");
    b.writeBigUInt64BE(BigInt(b.length) & ~0xffffn, at); // the last (partial) cluster: runs past the end
    b.writeBigUInt64BE(BigInt(b.length + cs) & ~0xffffn, at);
    assert.equal(reasonOf(b), "TRUNCATED");
  });

  it("compressed offset beyond the file", () => {
    const built = image([[0, { kind: "compressed", data: Buffer.alloc(cs, 1) }]]);
    const b = Buffer.from(built.image);
    b.writeBigUInt64BE((1n << 62n) | BigInt(b.length + 10), built.l2Offsets[0]);
    assert.equal(reasonOf(b), "TRUNCATED");
  });

  it("extended L2: a subcluster both allocated and zero; allocated subclusters without a host cluster", () => {
    const built = image(
      [[0, { kind: "subclusters", data: Buffer.alloc(cs, 1), map: Array(32).fill("data") }]],
      true,
    );
    const b = Buffer.from(built.image);
    const at = built.l2Offsets[0];
    b.writeBigUInt64BE(0x00000001_ffffffffn, at + 8);
    assert.equal(reasonOf(b), "BAD_TABLE");
    b.writeBigUInt64BE(0n, at);
    b.writeBigUInt64BE(0x1n, at + 8);
    assert.equal(reasonOf(b), "BAD_TABLE");
  });

  it("reads beyond the virtual size are refused", () => {
    const img = open(image([]).image);
    assert.throws(() => img.read(Buffer.alloc(2), img.size - 1), { reason: "TRUNCATED" });
    assert.throws(() => img.read(Buffer.alloc(1), -1), { reason: "TRUNCATED" });
  });

  it("a closed image refuses reads", () => {
    const img = open(image([]).image);
    img.close();
    img.close();
    assert.throws(() => img.read(Buffer.alloc(1), 0), { reason: "CLOSED" });
  });
});

/** 64-bit values: arbitrary ones, and plausible entries (flag bits over small, often aligned, offsets). */
const u64 = fc.oneof(
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  fc
    .tuple(fc.constantFrom(0n, 1n, 1n << 62n, 1n << 63n, (1n << 63n) | 1n), fc.nat(1 << 20), fc.boolean())
    .map(([flags, off, align]) => flags | BigInt(align ? off & ~0xfff : off)),
);

describe("qcow2: fuzzing", () => {
  const cs = 4096;
  const built = buildQcow2({
    clusterBits: 12,
    virtualSize: 64 * cs,
    compression: "zstd",
    clusters: new Map<number, ClusterSpec>([
      [0, { kind: "data", data: randomBytes(cs, 1) }],
      [1, { kind: "compressed", data: Buffer.alloc(cs, 2), frames: 2 }],
      [2, { kind: "zero", preallocated: true }],
      [5, { kind: "compressed", data: randomBytes(cs, 5) }],
    ]),
  });
  const ext = buildQcow2({
    clusterBits: 14,
    virtualSize: 40 * 16384,
    extendedL2: true,
    clusters: new Map<number, ClusterSpec>([
      [
        0,
        {
          kind: "subclusters",
          data: randomBytes(16384, 1),
          map: Array.from({ length: 32 }, (_, i) => (i % 2 ? "data" : "zero")),
        },
      ],
      [3, { kind: "compressed", data: Buffer.alloc(16384, 3) }],
    ]),
  });

  /** Opens and reads some of it; anything thrown must be a BfcError. */
  function tolerate(image: Buffer): void {
    try {
      const img = open(image);
      const n = Math.min(img.size, 256 * 1024);
      const b = Buffer.alloc(n);
      img.read(b, 0);
      if (img.size > n)
        img.read(Buffer.alloc(Math.min(4096, img.size - n)), img.size - Math.min(4096, img.size - n));
    } catch (e) {
      assert.ok(isBfcError(e), String((e as Error).stack));
    }
  }

  it("random header bytes: BfcErrors only", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(127), fc.nat(255)), { minLength: 1, maxLength: 8 }), (edits) => {
        const b = Buffer.from(built.image);
        for (const [at, v] of edits) b[at] = v;
        tolerate(b);
      }),
      { numRuns: 400 },
    );
  });

  it("random 64-bit header fields: BfcErrors only", () => {
    const fields = [8, 24, 40, 48, 64, 72];
    fc.assert(
      fc.property(fc.constantFrom(...fields), u64, (at, v) => {
        const b = Buffer.from(built.image);
        b.writeBigUInt64BE(v, at);
        tolerate(b);
      }),
      { numRuns: 300 },
    );
  });

  it("random L1 and L2 entries: BfcErrors only", () => {
    for (const src of [built, ext]) {
      const entry = src === ext ? 16 : 8;
      fc.assert(
        fc.property(fc.boolean(), fc.nat(7), u64, u64, (inL1, slot, v, bitmap) => {
          const b = Buffer.from(src.image);
          if (inL1) b.writeBigUInt64BE(v, src.l1Offset);
          else {
            b.writeBigUInt64BE(v, src.l2Offsets[0] + slot * entry);
            if (entry === 16) b.writeBigUInt64BE(bitmap, src.l2Offsets[0] + slot * entry + 8);
          }
          tolerate(b);
        }),
        { numRuns: 400 },
      );
    }
  });
});

describe("qcow2: backing files", () => {
  const cs = 65536;

  function write(
    dir: string,
    name: string,
    spec: Partial<Qcow2Spec> & { clusters: Map<number, ClusterSpec> },
  ) {
    const built = buildQcow2({ clusterBits: 16, virtualSize: 8 * cs, ...spec });
    fs.writeFileSync(path.join(dir, name), built.image);
    return built;
  }

  it("reads unallocated clusters and subclusters from raw and qcow2 backing files", () => {
    const dir = tempDir("bfc-qcow2-");
    const base = randomBytes(6 * cs + 1000, 1); // shorter than the overlay: zeros beyond it
    fs.writeFileSync(path.join(dir, "base.raw"), base);
    write(dir, "mid.qcow2", {
      clusters: new Map([[1, { kind: "data", data: Buffer.alloc(cs, 0x11) }]]),
      backingFile: "base.raw",
      backingFormat: "raw",
    });
    const top = write(dir, "top.qcow2", {
      extendedL2: true,
      clusters: new Map<number, ClusterSpec>([
        [0, { kind: "data", data: Buffer.alloc(cs, 0x22) }],
        [2, { kind: "zero" }],
        [
          3,
          {
            kind: "subclusters",
            data: Buffer.alloc(cs, 0x33),
            map: Array.from({ length: 32 }, (_, i) => (["data", "zero", "unallocated"] as const)[i % 3]),
          },
        ],
        [6, { kind: "compressed", data: Buffer.alloc(cs, 0x66) }],
      ]),
      backingFile: "mid.qcow2", // no format extension: probed
    });
    const expected = Buffer.alloc(8 * cs);
    base.copy(expected);
    expected.fill(0x11, cs, 2 * cs);
    expected.fill(0x22, 0, cs);
    expected.fill(0, 2 * cs, 3 * cs);
    for (let s = 0; s < 32; s++) {
      const at = 3 * cs + s * (cs / 32);
      if (s % 3 === 0) top.expected.copy(expected, at, at, at + cs / 32);
      else if (s % 3 === 1) expected.fill(0, at, at + cs / 32);
    }
    expected.fill(0x66, 6 * cs, 7 * cs);
    const img = openImage(path.join(dir, "top.qcow2")) as Qcow2Image;
    try {
      assert.ok(readAll(img, 100_000).equals(expected));
      assert.deepEqual(img.backingLink, {
        name: "mid.qcow2",
        path: path.join(dir, "mid.qcow2"),
        format: "qcow2",
        formatRecorded: false,
      });
      const mid = img.backing as Qcow2Image;
      assert.equal(mid.backingLink?.format, "raw");
      assert.equal(mid.backingLink?.formatRecorded, true);
    } finally {
      img.close();
    }
  });

  it("detects loops and over-long chains", () => {
    const dir = tempDir("bfc-qcow2-");
    write(dir, "a.qcow2", { clusters: new Map(), backingFile: "b.qcow2" });
    write(dir, "b.qcow2", { clusters: new Map(), backingFile: "./a.qcow2" });
    write(dir, "self.qcow2", { clusters: new Map(), backingFile: "self.qcow2", backingFormat: "qcow2" });
    fs.linkSync(path.join(dir, "a.qcow2"), path.join(dir, "alias.qcow2"));
    for (const name of ["a.qcow2", "self.qcow2", "alias.qcow2"]) {
      assert.throws(() => openImage(path.join(dir, name)), {
        code: "ELOOP",
        reason: "LOOP",
        message: /loops/,
      });
    }
    for (let i = 0; i < 18; i++) {
      write(dir, `c${i}.qcow2`, { clusters: new Map(), backingFile: `c${i + 1}.qcow2` });
    }
    fs.writeFileSync(path.join(dir, "c18.qcow2"), Buffer.alloc(8 * cs));
    assert.throws(() => openImage(path.join(dir, "c0.qcow2")), { reason: "LOOP", message: /deeper than 16/ });
    openImage(path.join(dir, "c2.qcow2")).close(); // 16 backing files: fine
  });

  it("refuses backing files outside the image's directory unless allowed", () => {
    const root = tempDir("bfc-qcow2-");
    const images = path.join(root, "images");
    const elsewhere = path.join(root, "elsewhere");
    fs.mkdirSync(path.join(images, "sub"), { recursive: true });
    fs.mkdirSync(elsewhere);
    const secret = Buffer.from("secret host data");
    fs.writeFileSync(path.join(elsewhere, "secret"), secret);
    fs.symlinkSync(path.join(elsewhere, "secret"), path.join(images, "innocent.raw"));
    fs.writeFileSync(path.join(images, "sub", "base.raw"), Buffer.alloc(100, 7));
    write(images, "up.qcow2", {
      clusters: new Map(),
      backingFile: "../elsewhere/secret",
      backingFormat: "raw",
    });
    write(images, "abs.qcow2", { clusters: new Map(), backingFile: path.join(elsewhere, "secret") });
    write(images, "link.qcow2", { clusters: new Map(), backingFile: "innocent.raw", backingFormat: "raw" });
    write(images, "down.qcow2", { clusters: new Map(), backingFile: "sub/base.raw", backingFormat: "raw" });
    for (const name of ["up.qcow2", "abs.qcow2", "link.qcow2"]) {
      const err = caught(() => openImage(path.join(images, name)));
      assert.equal((err as { reason?: string }).reason, "UNSAFE_PATH", err.message);
      assert.equal(err.code, "EACCES");
      assert.ok(err.message.includes(fs.realpathSync(path.join(elsewhere, "secret"))), err.message);
      assert.match(err.message, /allowBacking/);
    }
    openImage(path.join(images, "down.qcow2")).close();
    for (const allowBacking of ["any" as const, [elsewhere]]) {
      const img = openImage(path.join(images, "up.qcow2"), { allowBacking });
      const b = Buffer.alloc(secret.length);
      img.read(b, 0);
      assert.deepEqual(b, secret);
      img.close();
    }
    // An allow-list adds to the image's own directory.
    openImage(path.join(images, "down.qcow2"), { allowBacking: [elsewhere] }).close();
    assert.throws(
      () => openImage(path.join(images, "up.qcow2"), { allowBacking: [path.join(root, "other")] }),
      {
        reason: "UNSAFE_PATH",
        message: /outside any of/,
      },
    );
  });

  it("missing, protocol and unsupported-format backing files", () => {
    const dir = tempDir("bfc-qcow2-");
    write(dir, "missing.qcow2", { clusters: new Map(), backingFile: "nope.raw" });
    write(dir, "proto.qcow2", { clusters: new Map(), backingFile: "nbd://example.com/disk" });
    write(dir, "json.qcow2", { clusters: new Map(), backingFile: 'json:{"file.filename":"/etc/passwd"}' });
    fs.writeFileSync(path.join(dir, "base.vmdk"), Buffer.alloc(512));
    write(dir, "vmdk.qcow2", { clusters: new Map(), backingFile: "base.vmdk", backingFormat: "vmdk" });
    assert.throws(() => openImage(path.join(dir, "missing.qcow2")), {
      code: "ENOENT",
      reason: "NOT_FOUND",
      message: /nope\.raw/,
    });
    assert.throws(() => openImage(path.join(dir, "proto.qcow2")), {
      reason: "UNSUPPORTED",
      message: /protocol/,
    });
    assert.throws(() => openImage(path.join(dir, "json.qcow2")), {
      reason: "UNSUPPORTED",
      message: /protocol/,
    });
    assert.throws(() => openImage(path.join(dir, "vmdk.qcow2")), {
      reason: "UNSUPPORTED",
      message: /'vmdk'/,
    });
    const inMemory = buildQcow2({
      clusterBits: 16,
      virtualSize: cs,
      clusters: new Map(),
      backingFile: "x.raw",
    });
    assert.throws(() => open(inMemory.image), { reason: "UNSUPPORTED", message: /cannot be followed/ });
  });

  it("recognises other image formats instead of reading them as raw", () => {
    const dir = tempDir("bfc-qcow2-");
    const vmdk = Buffer.alloc(1024);
    vmdk.write("KDMV");
    fs.writeFileSync(path.join(dir, "x.vmdk"), vmdk);
    assert.throws(() => openImage(path.join(dir, "x.vmdk")), { reason: "UNSUPPORTED", message: /VMDK/ });
    fs.writeFileSync(path.join(dir, "short.img"), Buffer.from("ab"));
    const raw = openImage(path.join(dir, "short.img"));
    assert.equal(raw.size, 2);
    raw.close();
  });
});
