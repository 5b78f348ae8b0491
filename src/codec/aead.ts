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

/**
 * Cipher output goes through pieces of this size: Node returns each update()'s output in a new
 * buffer, and a small one comes from memory already in use where a payload-sized one is fresh
 * pages, whose first touch costs more here than the cipher (opening 720 MB of 360 KB payloads:
 * 440-770 ms in one piece each, 355 ms in 64 KiB pieces).
 */
const PIECE = 64 * 1024;

/** `src` through the cipher into `out` at `at` (they may be the same bytes); returns the length. */
export function cipherInto(
  c: { update(data: Uint8Array): Buffer },
  src: Uint8Array,
  out: Uint8Array,
  at: number,
): number {
  for (let o = 0; o < src.length; o += PIECE) {
    const input = src.subarray(o, Math.min(o + PIECE, src.length));
    const piece = c.update(input);
    // A stream cipher gives as many bytes as it takes, which is what lets `out` be `src`.
    if (piece.length !== input.length) throw new Error("the cipher changed the length of its input");
    out.set(piece, at + o);
  }
  return src.length;
}

/**
 * Deciphers `data` in place (a streaming decipher's next bytes, or a positioned keystream's) and
 * returns it.
 */
export function decipherInPlace<T extends Uint8Array>(d: { update(data: Uint8Array): Buffer }, data: T): T {
  cipherInto(d, data, data, 0);
  return data;
}

/**
 * Encrypts a whole plaintext into the stored payload layout at `out[at..]`, which must have room
 * for NONCE_SIZE + plaintext + TAG_SIZE bytes; returns that length.
 */
export function sealInto(
  key: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
  out: Uint8Array,
  at: number,
): number {
  const nonce = newNonce();
  const c = createEncryptor(key, nonce, aad);
  out.set(nonce, at);
  let n = at + NONCE_SIZE;
  n += cipherInto(c, plaintext, out, n);
  const rest = c.final();
  out.set(rest, n);
  n += rest.length;
  out.set(c.getAuthTag(), n);
  return n + TAG_SIZE - at;
}

/** Encrypts a whole plaintext into the stored payload layout. */
export function sealSync(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(NONCE_SIZE + plaintext.length + TAG_SIZE);
  sealInto(key, plaintext, aad, out, 0);
  return out;
}

/**
 * Authenticates and decrypts a whole payload where it lies: on success returns the plaintext, a
 * view of `payload` between nonce and tag; null when the tag does not verify (the payload's bytes
 * are then garbage, and nothing of them may be used).
 */
export function openInPlace(key: Uint8Array, payload: Uint8Array, aad: Uint8Array): Buffer | null {
  if (payload.length < NONCE_SIZE + TAG_SIZE) return null;
  const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const d = createDecryptor(key, buf.subarray(0, NONCE_SIZE), aad, buf.subarray(buf.length - TAG_SIZE));
  const body = buf.subarray(NONCE_SIZE, buf.length - TAG_SIZE);
  cipherInto(d, body, body, 0);
  try {
    d.final();
  } catch {
    return null;
  }
  return body;
}

/**
 * Authenticates and decrypts a whole payload into new memory of its own (not a slice of Node's
 * shared pool); returns null when the tag does not verify.
 */
export function openSync(key: Uint8Array, payload: Uint8Array, aad: Uint8Array): Buffer | null {
  const copy = Buffer.allocUnsafeSlow(payload.length);
  copy.set(payload);
  return openInPlace(key, copy, aad);
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
