/**
 * Argon2id (t=3, m=64 MiB, p=1, 16-byte salt) known answer from the golden vectors: the key the
 * independent parser derived for password.bfc, which then opens one of its encrypted objects.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { openSync } from "../../src/codec/aead.ts";
import { crc32c } from "../../src/codec/crc32c.ts";
import { ARGON2_MEMORY_KIB, ARGON2_PASSES, deriveKey, deriveKeySync } from "../../src/codec/kdf.ts";
import { sha256, VECTOR_PASSWORD, VECTORS } from "../helpers.ts";

const container = fs.readFileSync(path.join(VECTORS, "containers", "password.bfc"));
const layout = fs.readFileSync(path.join(VECTORS, "layout", "password.txt"), "utf8");
const salt = container.subarray(40, 56);
const expectedKey = /derived key .*= ([0-9a-f]{64})$/m.exec(layout)?.[1];

describe("kdf", () => {
  it("uses the reference's parameters", () => {
    assert.equal(ARGON2_PASSES, 3);
    assert.equal(ARGON2_MEMORY_KIB, 65536);
  });

  it("derives the key printed in layout/password.txt from header bytes 40..55", async () => {
    assert.ok(expectedKey, "layout/password.txt names the derived key");
    const key = await deriveKey(VECTOR_PASSWORD, salt);
    assert.equal(key.length, 32);
    assert.equal(key.toString("hex"), expectedKey);
  });

  it("only the first 16 salt bytes matter; sync and async agree; password bytes work too", () => {
    const full = Buffer.from(container.subarray(40, 72));
    const changedTail = Buffer.from(full);
    changedTail.fill(0xee, 16);
    const key = deriveKeySync(Buffer.from(VECTOR_PASSWORD), changedTail);
    assert.equal(key.toString("hex"), expectedKey);
  });

  it("a different password or salt gives a different key", async () => {
    const other = await deriveKey("correct horse battery stapler", salt);
    assert.notEqual(other.toString("hex"), expectedKey);
    const s2 = Buffer.from(salt);
    s2[0] ^= 1;
    assert.notEqual(deriveKeySync(VECTOR_PASSWORD, s2).toString("hex"), expectedKey);
  });

  it("the derived key opens input/hello.txt of password.bfc (nonce, tag and AAD as in the layout)", () => {
    const m = /enc_size=(\d+) crc=0x([0-9a-f]{8}) name='input\/hello\.txt' content@(\d+)/.exec(layout);
    assert.ok(m, "layout lists input/hello.txt");
    const [encSize, crc, at] = [Number(m[1]), Number.parseInt(m[2], 16), Number(m[3])];
    const payload = container.subarray(at, at + encSize);
    const plain = openSync(Buffer.from(expectedKey!, "hex"), payload, Buffer.from("input/hello.txt"));
    assert.ok(plain);
    assert.equal(crc32c(plain), crc);
    assert.equal(sha256(plain), "a8da798cffcb5ae34c8fcc140d83810626f3b195b29a21839afdbe431e18db54");
  });
});
