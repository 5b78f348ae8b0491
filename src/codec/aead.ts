import type crypto from "node:crypto";
import { KEY_SIZE, NONCE_SIZE, TAG_SIZE } from "../format/constants.ts";
import { lazyCrypto } from "./builtins.ts";

/**
 * ChaCha20-Poly1305 (IETF, RFC 8439) as libsodium's crypto_aead_chacha20poly1305_ietf: payload is
 * nonce(12) ‖ ciphertext ‖ tag(16), associated data is the entry's stored path.
 */
export function newNonce(): Buffer {
  return lazyCrypto().randomBytes(NONCE_SIZE);
}

export function createEncryptor(
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
): crypto.CipherChaCha20Poly1305 {
  const c = lazyCrypto().createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: TAG_SIZE });
  c.setAAD(aad, { plaintextLength: 0 });
  return c;
}

export function createDecryptor(
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  tag: Uint8Array,
): crypto.DecipherChaCha20Poly1305 {
  const d = lazyCrypto().createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: TAG_SIZE });
  d.setAAD(aad, { plaintextLength: 0 });
  d.setAuthTag(tag);
  return d;
}

/** Encrypts a whole plaintext into the stored payload layout. */
export function sealSync(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const nonce = newNonce();
  const c = createEncryptor(key, nonce, aad);
  const out = Buffer.allocUnsafe(NONCE_SIZE + plaintext.length + TAG_SIZE);
  nonce.copy(out, 0);
  let n = NONCE_SIZE;
  n += c.update(plaintext).copy(out, n);
  n += c.final().copy(out, n);
  c.getAuthTag().copy(out, n);
  return out;
}

/** Authenticates and decrypts a whole payload; returns null when the tag does not verify. */
export function openSync(key: Uint8Array, payload: Uint8Array, aad: Uint8Array): Buffer | null {
  if (payload.length < NONCE_SIZE + TAG_SIZE) return null;
  const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const d = createDecryptor(key, buf.subarray(0, NONCE_SIZE), aad, buf.subarray(buf.length - TAG_SIZE));
  const body = d.update(buf.subarray(NONCE_SIZE, buf.length - TAG_SIZE));
  try {
    d.final();
  } catch {
    return null;
  }
  return body;
}

/**
 * Raw ChaCha20 keystream positioned at `offset` bytes into the plaintext, for random access into a
 * payload whose tag was already verified. Block 0 keys Poly1305, so plaintext byte 0 is block 1.
 */
export function createCtrDecryptor(key: Uint8Array, nonce: Uint8Array, offset: number): crypto.Decipheriv {
  const block = Math.floor(offset / 64) + 1;
  const iv = Buffer.alloc(16);
  iv.writeUInt32LE(block >>> 0, 0);
  Buffer.from(nonce).copy(iv, 4);
  const d = lazyCrypto().createDecipheriv("chacha20", key, iv);
  const skip = offset % 64;
  if (skip) d.update(Buffer.alloc(skip));
  return d;
}

export function isKey(key: Uint8Array): boolean {
  return key.length === KEY_SIZE;
}
