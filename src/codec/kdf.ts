import type crypto from "node:crypto";
import { KDF_SALT_BYTES, KEY_SIZE } from "../format/constants.ts";
import { lazyCrypto } from "./builtins.ts";

/** libsodium crypto_pwhash (ALG_ARGON2ID13) parameters the reference uses: t=3, m=64 MiB, p=1. */
export const ARGON2_PASSES = 3;
export const ARGON2_MEMORY_KIB = 65536;
export const ARGON2_PARALLELISM = 1;

function params(password: string | Uint8Array, salt: Uint8Array): crypto.Argon2Parameters {
  return {
    message: password,
    nonce: salt.subarray(0, KDF_SALT_BYTES),
    parallelism: ARGON2_PARALLELISM,
    tagLength: KEY_SIZE,
    memory: ARGON2_MEMORY_KIB,
    passes: ARGON2_PASSES,
  };
}

/** Derives the 32-byte container key from a password and the header salt (first 16 bytes used). */
export function deriveKey(password: string | Uint8Array, salt: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    lazyCrypto().argon2("argon2id", params(password, salt), (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export function deriveKeySync(password: string | Uint8Array, salt: Uint8Array): Buffer {
  return lazyCrypto().argon2Sync("argon2id", params(password, salt));
}
