/** The 4096-byte header: encode/decode round trip, CRC coverage, vector headers. */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { crc32c } from "../../src/codec/crc32c.ts";
import { HEADER_SIZE } from "../../src/format/constants.ts";
import {
  decodeHeader,
  describeFeatures,
  encodeHeader,
  formatUuid,
  hasPasswordSalt,
} from "../../src/format/header.ts";
import { VECTORS } from "../helpers.ts";

const headerArb = fc.record({
  blockSize: fc.integer({ min: 1, max: 1 << 20 }),
  features: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.nat({ max: Number.MAX_SAFE_INTEGER })),
  uuid: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((u) => Buffer.from(u)),
  salt: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((u) => Buffer.from(u)),
});

describe("header", () => {
  it("encode then decode gives the same fields and a matching CRC (property)", () => {
    fc.assert(
      fc.property(headerArb, (h) => {
        const buf = encodeHeader(h);
        assert.equal(buf.length, HEADER_SIZE);
        assert.equal(buf.subarray(0, 8).toString("latin1"), "BFCFv1\0\0");
        const d = decodeHeader(buf);
        assert.equal(d.blockSize, h.blockSize);
        assert.equal(d.features, h.features);
        assert.deepEqual(d.uuid, h.uuid);
        assert.deepEqual(d.salt, h.salt);
        assert.equal(d.storedCrc, d.computedCrc);
        assert.equal(d.storedCrc, crc32c(buf.subarray(12)));
        assert.ok(
          buf.subarray(72).every((b) => b === 0),
          "reserved bytes are zero",
        );
      }),
      { seed: 0x4ead, numRuns: 200 },
    );
  });

  it("block size 0 is written as 4096", () => {
    const d = decodeHeader(
      encodeHeader({ blockSize: 0, features: 0, uuid: Buffer.alloc(16), salt: Buffer.alloc(32) }),
    );
    assert.equal(d.blockSize, 4096);
  });

  it("the CRC covers every byte from 12 to 4095 (property)", () => {
    const buf = encodeHeader({
      blockSize: 4096,
      features: 1,
      uuid: Buffer.alloc(16, 3),
      salt: Buffer.alloc(32),
    });
    fc.assert(
      fc.property(
        fc.integer({ min: 12, max: HEADER_SIZE - 1 }),
        fc.integer({ min: 1, max: 255 }),
        (at, x) => {
          const b = Buffer.from(buf);
          b[at] ^= x;
          const d = decodeHeader(b);
          assert.notEqual(d.storedCrc, d.computedCrc);
        },
      ),
      { seed: 12, numRuns: 300 },
    );
  });

  it("rejects bad magic (BAD_MAGIC) and short buffers (TRUNCATED)", () => {
    const buf = encodeHeader({
      blockSize: 4096,
      features: 0,
      uuid: Buffer.alloc(16),
      salt: Buffer.alloc(32),
    });
    for (const at of [0, 5, 6, 7]) {
      const b = Buffer.from(buf);
      b[at] ^= 0x20;
      assert.throws(() => decodeHeader(b), { reason: "BAD_MAGIC", field: "header.magic" });
    }
    assert.throws(() => decodeHeader(buf.subarray(0, 4095)), { reason: "TRUNCATED" });
  });

  it("rejects wrong-size uuid and salt when encoding", () => {
    assert.throws(
      () => encodeHeader({ blockSize: 1, features: 0, uuid: Buffer.alloc(15), salt: Buffer.alloc(32) }),
      RangeError,
    );
    assert.throws(
      () => encodeHeader({ blockSize: 1, features: 0, uuid: Buffer.alloc(16), salt: Buffer.alloc(16) }),
      RangeError,
    );
  });

  it("decodes the golden vector headers", () => {
    const read = (n: string) => fs.readFileSync(path.join(VECTORS, "containers", n)).subarray(0, HEADER_SIZE);
    const plain = decodeHeader(read("plain.bfc"));
    const zstd = decodeHeader(read("zstd.bfc"));
    const pw = decodeHeader(read("password.bfc"));
    for (const h of [plain, zstd, pw]) {
      assert.equal(h.storedCrc, h.computedCrc);
      assert.equal(h.blockSize, 4096);
      assert.equal(h.uuid[6] >> 4, 4, "uuid version 4");
      assert.equal(h.uuid[8] >> 6, 2, "uuid variant 10");
    }
    assert.equal(plain.features, 0);
    assert.equal(zstd.features, 1);
    assert.equal(pw.features, 2);
    assert.equal(hasPasswordSalt(plain), false);
    assert.equal(hasPasswordSalt(pw), true);
    assert.equal(pw.salt.toString("hex"), "a39e9e074917631945b4d3609192a33d17f691e3fc25f1ec93534a18a9b886fb");
    assert.equal(
      formatUuid(Buffer.from("c8f4033ff51a47969a27836c2a70e159", "hex")),
      "c8f4033f-f51a-4796-9a27-836c2a70e159",
    );
  });

  it("hasPasswordSalt looks only at the 16 bytes that feed Argon2id", () => {
    const salt = Buffer.alloc(32);
    salt[20] = 1;
    assert.equal(hasPasswordSalt({ blockSize: 1, features: 0, uuid: Buffer.alloc(16), salt }), false);
    salt[15] = 1;
    assert.equal(hasPasswordSalt({ blockSize: 1, features: 0, uuid: Buffer.alloc(16), salt }), true);
  });

  it("describeFeatures names known bits and shows unknown ones", () => {
    assert.deepEqual(describeFeatures(0), []);
    assert.deepEqual(describeFeatures(3), ["zstd", "aead"]);
    assert.deepEqual(describeFeatures(0x11), ["zstd", "0x10"]);
  });
});
