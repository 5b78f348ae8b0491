import { KDF_SALT_BYTES } from "./constants.ts";

/**
 * Whether a header's salt field is set: only a password-encrypted container's header carries its
 * key derivation salt; every other header has zeros there. (A module of its own, without the
 * header's checksum code: the CLI asks this before a mount, where loading the CRC addon cost ~18 ms.)
 */
export function saltIsSet(salt: Uint8Array): boolean {
  for (let i = 0; i < KDF_SALT_BYTES; i++) if (salt[i] !== 0) return true;
  return false;
}
