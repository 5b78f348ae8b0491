/** The 40-byte object header: round trip, fixed zero fields, vector object, bounds. */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { OBJECT_HEADER_SIZE } from "../../src/format/constants.ts";
import {
  contentOffset,
  decodeObjectHeader,
  encodeObjectHeader,
  type ObjectHeader,
  objectPrefixSize,
} from "../../src/format/object-header.ts";
import { VECTORS } from "../helpers.ts";

const headerArb: fc.Arbitrary<ObjectHeader> = fc.record({
  type: fc.integer({ min: 0, max: 255 }),
  comp: fc.integer({ min: 0, max: 255 }),
  enc: fc.integer({ min: 0, max: 255 }),
  nameLen: fc.integer({ min: 0, max: 0xffff }),
  mode: fc.nat({ max: 0xffffffff }),
  mtimeNs: fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }),
  origSize: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
  encSize: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
  crc: fc.nat({ max: 0xffffffff }),
});

describe("object header", () => {
  it("encode then decode is the identity; reserved and padding fields are zero (property)", () => {
    fc.assert(
      fc.property(headerArb, fc.nat({ max: 100 }), (h, at) => {
        const buf = Buffer.alloc(at + OBJECT_HEADER_SIZE + 10, 0xaa);
        encodeObjectHeader(h, buf, at);
        assert.deepEqual(decodeObjectHeader(buf, at), { ...h });
        assert.equal(buf[at + 3], 0, "reserved");
        assert.equal(buf.readUInt16LE(at + 6), 0, "padding field");
        assert.equal(buf[at - 1] ?? 0xaa, 0xaa, "nothing before");
        assert.equal(buf[at + OBJECT_HEADER_SIZE], 0xaa, "nothing after");
        assert.deepEqual(encodeObjectHeader(h), buf.subarray(at, at + OBJECT_HEADER_SIZE));
      }),
      { seed: 0x0b1, numRuns: 300 },
    );
  });

  it("field offsets match the spec (type 0, comp 1, enc 2, name_len 4, mode 8, mtime 12, sizes 20/28, crc 36)", () => {
    const b = encodeObjectHeader({
      type: 1,
      comp: 1,
      enc: 1,
      nameLen: 0x1234,
      mode: 0o100644,
      mtimeNs: 0x0102030405060708n,
      origSize: 0x0a0b0c0d,
      encSize: 0x1a1b,
      crc: 0xdeadbeef,
    });
    assert.deepEqual([b[0], b[1], b[2], b[3]], [1, 1, 1, 0]);
    assert.equal(b.readUInt16LE(4), 0x1234);
    assert.equal(b.readUInt32LE(8), 0o100644);
    assert.equal(b.readBigInt64LE(12), 0x0102030405060708n);
    assert.equal(b.readBigUInt64LE(20), 0x0a0b0c0dn);
    assert.equal(b.readBigUInt64LE(28), 0x1a1bn);
    assert.equal(b.readUInt32LE(36), 0xdeadbeef);
  });

  it("decodes input/hello.txt of plain.bfc at 267151 (name_len 15, content at +64)", () => {
    const file = fs.readFileSync(path.join(VECTORS, "containers", "plain.bfc"));
    const h = decodeObjectHeader(file, 267151);
    assert.equal(h.type, 1);
    assert.equal(h.comp, 0);
    assert.equal(h.enc, 0);
    assert.equal(h.nameLen, 15);
    assert.equal(h.origSize, 12);
    assert.equal(h.encSize, 12);
    assert.equal(h.crc, 0x0662bd9b);
    assert.equal(h.mode, 0o100644);
    assert.equal(file.toString("utf8", 267151 + 40, 267151 + 55), "input/hello.txt");
    assert.equal(contentOffset(15), 64);
    assert.equal(267151 + contentOffset(15), 267215);
  });

  it("name padding is measured from the object start", () => {
    assert.equal(objectPrefixSize(0), 48);
    assert.equal(objectPrefixSize(8), 48);
    assert.equal(objectPrefixSize(9), 64);
    assert.equal(objectPrefixSize(24), 64);
    assert.equal(objectPrefixSize(65535), 65584);
  });

  it("rejects truncated headers and sizes of 2^53 or more", () => {
    assert.throws(() => decodeObjectHeader(Buffer.alloc(39)), { reason: "TRUNCATED" });
    assert.throws(() => decodeObjectHeader(Buffer.alloc(60), 21), { reason: "TRUNCATED" });
    for (const off of [20, 28]) {
      const b = Buffer.alloc(40);
      b.writeBigUInt64LE(1n << 53n, off);
      assert.throws(() => decodeObjectHeader(b), { reason: "BAD_OBJECT" });
      b.writeBigUInt64LE((1n << 53n) - 1n, off);
      assert.equal(decodeObjectHeader(b)[off === 20 ? "origSize" : "encSize"], 2 ** 53 - 1);
    }
  });
});
