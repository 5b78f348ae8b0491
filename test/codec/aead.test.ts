/**
 * ChaCha20-Poly1305 (IETF) as the container stores it: nonce ‖ ciphertext ‖ tag, path as AAD.
 * RFC 8439 known answer, seal/open round trips, tamper detection and the positioned keystream;
 * sealing into and opening in a caller's buffer (the cipher runs in 64 KiB pieces there, so sizes
 * cross those boundaries).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  createCtrDecryptor,
  createDecryptor,
  createEncryptor,
  decipherInPlace,
  isKey,
  newNonce,
  openInPlace,
  openSync,
  sealInto,
  sealSync,
} from "../../src/codec/aead.ts";
import { NONCE_SIZE, TAG_SIZE } from "../../src/format/constants.ts";
import { sampleContent } from "../helpers.ts";

const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 });

describe("aead", () => {
  it("RFC 8439 §2.8.2 test vector (the cipher libsodium's _ietf variant implements)", () => {
    const key = Buffer.from("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f", "hex");
    const nonce = Buffer.from("070000004041424344454647", "hex");
    const aad = Buffer.from("50515253c0c1c2c3c4c5c6c7", "hex");
    const pt = Buffer.from(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    );
    const c = createEncryptor(key, nonce, aad);
    const ct = Buffer.concat([c.update(pt), c.final()]);
    assert.equal(ct.subarray(0, 16).toString("hex"), "d31a8d34648e60db7b86afbc53ef7ec2");
    assert.equal(c.getAuthTag().toString("hex"), "1ae10b594f09e26a7e902ecbd0600691");
    const payload = Buffer.concat([nonce, ct, c.getAuthTag()]);
    assert.deepEqual(openSync(key, payload, aad), pt);
  });

  it("seal then open returns the plaintext; layout is nonce ‖ ciphertext ‖ tag (property)", () => {
    fc.assert(
      fc.property(
        key32,
        fc.uint8Array({ maxLength: 3000 }),
        fc.uint8Array({ maxLength: 64 }),
        (k, pt, aad) => {
          const sealed = sealSync(k, pt, aad);
          assert.equal(sealed.length, NONCE_SIZE + pt.length + TAG_SIZE);
          const opened = openSync(k, sealed, aad);
          assert.ok(opened);
          assert.deepEqual(new Uint8Array(opened), pt);
          // The same layout decrypts with the streaming decryptor.
          const d = createDecryptor(
            k,
            sealed.subarray(0, NONCE_SIZE),
            aad,
            sealed.subarray(sealed.length - TAG_SIZE),
          );
          const body = Buffer.concat([
            d.update(sealed.subarray(NONCE_SIZE, sealed.length - TAG_SIZE)),
            d.final(),
          ]);
          assert.deepEqual(new Uint8Array(body), pt);
        },
      ),
      { seed: 0xaead, numRuns: 150 },
    );
  });

  it("every single-byte change of nonce, ciphertext or tag is detected (property)", () => {
    fc.assert(
      fc.property(
        key32,
        fc.uint8Array({ maxLength: 500 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (k, pt, at, xor) => {
          const sealed = sealSync(k, pt, Buffer.from("a/b"));
          const i = at % sealed.length;
          sealed[i] ^= xor;
          assert.equal(openSync(k, sealed, Buffer.from("a/b")), null);
        },
      ),
      { seed: 0x7a3e, numRuns: 300 },
    );
  });

  it("a different path (AAD) or key fails; payloads shorter than nonce+tag fail", () => {
    const k = Buffer.alloc(32, 9);
    const sealed = sealSync(k, Buffer.from("secret"), Buffer.from("dir/file"));
    assert.deepEqual(openSync(k, sealed, Buffer.from("dir/file")), Buffer.from("secret"));
    assert.equal(openSync(k, sealed, Buffer.from("dir/file2")), null);
    assert.equal(openSync(k, sealed, Buffer.alloc(0)), null);
    assert.equal(openSync(Buffer.alloc(32, 8), sealed, Buffer.from("dir/file")), null);
    assert.equal(openSync(k, sealed.subarray(0, 27), Buffer.from("dir/file")), null);
    assert.equal(openSync(k, Buffer.alloc(0), Buffer.from("dir/file")), null);
    const empty = sealSync(k, Buffer.alloc(0), Buffer.from("e"));
    assert.equal(empty.length, 28);
    assert.deepEqual(openSync(k, empty, Buffer.from("e")), Buffer.alloc(0));
  });

  it("nonces are fresh: sealing the same input twice differs", () => {
    const k = Buffer.alloc(32, 1);
    const a = sealSync(k, Buffer.from("same"), Buffer.from("p"));
    const b = sealSync(k, Buffer.from("same"), Buffer.from("p"));
    assert.notDeepEqual(a.subarray(0, NONCE_SIZE), b.subarray(0, NONCE_SIZE));
    assert.equal(newNonce().length, NONCE_SIZE);
  });

  it("the positioned keystream decrypts any slice like the whole-payload decryption (property)", () => {
    fc.assert(
      fc.property(key32, fc.integer({ min: 1, max: 700 }), fc.nat(), fc.nat(), (k, n, a, b) => {
        const pt = Buffer.alloc(n);
        for (let i = 0; i < n; i++) pt[i] = (i * 31 + 7) & 0xff;
        const sealed = sealSync(k, pt, Buffer.from("x"));
        const start = a % n;
        const end = start + (b % (n - start + 1));
        const nonce = sealed.subarray(0, NONCE_SIZE);
        const slice = sealed.subarray(NONCE_SIZE + start, NONCE_SIZE + end);
        const got = createCtrDecryptor(k, nonce, start).update(slice);
        assert.deepEqual(got, pt.subarray(start, end));
      }),
      { seed: 0xc7c, numRuns: 200 },
    );
  });

  it("sealInto writes sealSync's layout at an offset and nothing outside it (property)", () => {
    fc.assert(
      fc.property(
        key32,
        fc.integer({ min: 0, max: 200_000 }),
        fc.integer({ min: 0, max: 100 }),
        fc.uint8Array({ maxLength: 32 }),
        (k, n, at, aad) => {
          const pt = sampleContent("random", n, n);
          const out = Buffer.alloc(at + NONCE_SIZE + n + TAG_SIZE + 7, 0xee);
          const len = sealInto(k, pt, aad, out, at);
          assert.equal(len, NONCE_SIZE + n + TAG_SIZE);
          assert.ok(out.subarray(0, at).every((b) => b === 0xee));
          assert.ok(out.subarray(at + len).every((b) => b === 0xee));
          const opened = openSync(k, out.subarray(at, at + len), aad);
          assert.ok(opened);
          assert.ok(opened.equals(pt));
        },
      ),
      { seed: 0x5ea1, numRuns: 40 },
    );
  });

  it("openInPlace leaves the plaintext where the ciphertext was; a changed byte gives null (property)", () => {
    fc.assert(
      fc.property(
        key32,
        fc.integer({ min: 0, max: 200_000 }),
        fc.option(fc.nat(), { nil: undefined }),
        (k, n, flip) => {
          const pt = sampleContent("text", n, n);
          const sealed = sealSync(k, pt, Buffer.from("p"));
          if (flip !== undefined) sealed[flip % sealed.length] ^= 0x40;
          const opened = openInPlace(k, sealed, Buffer.from("p"));
          if (flip !== undefined) {
            assert.equal(opened, null);
            return;
          }
          assert.ok(opened);
          assert.equal(opened.buffer, sealed.buffer);
          assert.equal(opened.byteOffset, sealed.byteOffset + NONCE_SIZE);
          assert.ok(opened.equals(pt));
        },
      ),
      { seed: 0x0be1, numRuns: 40 },
    );
  });

  it("openSync leaves its argument as it was", () => {
    const k = Buffer.alloc(32, 3);
    const sealed = sealSync(k, Buffer.alloc(100_000, 0x61), Buffer.from("q"));
    const copy = Buffer.from(sealed);
    assert.deepEqual(openSync(k, sealed, Buffer.from("q")), Buffer.alloc(100_000, 0x61));
    assert.ok(sealed.equals(copy));
  });

  it("decipherInPlace on a positioned keystream decrypts a slice where it lies (property)", () => {
    fc.assert(
      fc.property(key32, fc.integer({ min: 1, max: 150_000 }), fc.nat(), fc.nat(), (k, n, a, b) => {
        const pt = sampleContent("random", n, a);
        const sealed = sealSync(k, pt, Buffer.from("x"));
        const start = a % n;
        const end = start + (b % (n - start + 1));
        const slice = Buffer.from(sealed.subarray(NONCE_SIZE + start, NONCE_SIZE + end));
        const got = decipherInPlace(createCtrDecryptor(k, sealed.subarray(0, NONCE_SIZE), start), slice);
        assert.equal(got, slice);
        assert.ok(got.equals(pt.subarray(start, end)));
      }),
      { seed: 0xd1ce, numRuns: 60 },
    );
  });

  it("isKey accepts exactly 32 bytes", () => {
    assert.equal(isKey(new Uint8Array(32)), true);
    assert.equal(isKey(new Uint8Array(31)), false);
    assert.equal(isKey(new Uint8Array(33)), false);
  });
});
