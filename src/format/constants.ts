/** Sizes and magic values of BFC v1 (docs/format.md). */
export const HEADER_SIZE = 4096;
export const OBJECT_HEADER_SIZE = 40;
export const FOOTER_SIZE = 56;
export const INDEX_HEADER_SIZE = 8;
/** Fixed bytes of an index entry after its path. */
export const INDEX_ENTRY_TAIL = 48;
export const INDEX_VERSION = 1;

export const HEADER_MAGIC = Buffer.from("BFCFv1\0\0", "latin1");
export const FOOTER_START_TAG = Buffer.from("BFCFIDX\0", "latin1");
export const FOOTER_END_TAG = Buffer.from("BFCFEND\0", "latin1");

export const OBJ_FILE = 1;
export const OBJ_DIR = 2;
export const OBJ_SYMLINK = 3;

export const COMP_NONE = 0;
export const COMP_ZSTD = 1;
export const ENC_NONE = 0;
export const ENC_CHACHA20_POLY1305 = 1;

export const FEATURE_ZSTD = 0x1;
export const FEATURE_AEAD = 0x2;

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
/** Permission bits including setuid, setgid and sticky. */
export const PERM_MASK = 0o7777;

/** name_len is a u16. */
export const MAX_PATH_BYTES = 65535;
export const DEFAULT_BLOCK_SIZE = 4096;
export const MAX_BLOCK_SIZE = 1 << 20;

/** AEAD framing: nonce before the ciphertext, tag after it. */
export const NONCE_SIZE = 12;
export const TAG_SIZE = 16;
export const AEAD_OVERHEAD = NONCE_SIZE + TAG_SIZE;
export const KEY_SIZE = 32;
export const SALT_OFFSET = 40;
export const SALT_SIZE = 32;
/** Only the first 16 salt bytes feed Argon2id (libsodium's salt length). */
export const KDF_SALT_BYTES = 16;

/** Rounds up to a multiple of 16 (safe for any size below 2^53, unlike bitwise operators). */
export function align16(n: number): number {
  const r = n % 16;
  return r === 0 ? n : n + 16 - r;
}
