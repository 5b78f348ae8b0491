import fs from "node:fs";
import { deriveKey, deriveKeySync } from "../codec/kdf.ts";
import { BfcError, fromSystemError } from "../errors.ts";
import { KEY_SIZE } from "../format/constants.ts";

/** How a caller unlocks an encrypted container: a password (Argon2id) or a raw 32-byte key. */
export interface Credentials {
  password?: string | Uint8Array;
  key?: Uint8Array;
}

/** Reads a key file: its first 32 bytes are the key, as the reference's -k/-K. */
export function readKeyFile(path: string): Buffer {
  let data: Buffer;
  try {
    data = fs.readFileSync(path);
  } catch (e) {
    throw fromSystemError(e, `cannot read key file '${path}'`, path);
  }
  if (data.length < KEY_SIZE) {
    throw new BfcError(
      "EINVAL",
      "BAD_KEY",
      `key file '${path}' must hold at least ${KEY_SIZE} bytes, got ${data.length}`,
      { path },
    );
  }
  return Buffer.from(data.subarray(0, KEY_SIZE));
}

export function checkCredentials(c: Credentials): void {
  if (c.password !== undefined && c.key !== undefined) {
    throw new BfcError("EINVAL", "INVALID_ARGUMENT", "give either a password or a key, not both");
  }
  if (c.key !== undefined && c.key.length !== KEY_SIZE) {
    throw new BfcError("EINVAL", "BAD_KEY", `a key must be ${KEY_SIZE} bytes, got ${c.key.length}`);
  }
  if (c.password !== undefined && c.password.length === 0) {
    throw new BfcError("EINVAL", "BAD_KEY", "the password is empty");
  }
}

/**
 * Turns credentials into the container key once, lazily: Argon2id costs ~150 ms and 64 MiB, which
 * listing or reading unencrypted entries should never pay.
 */
export class KeyResolver {
  private readonly creds: Credentials;
  private readonly salt: Buffer;
  private readonly passwordContainer: boolean;
  private key: Buffer | null = null;
  private pending: Promise<Buffer> | null = null;

  constructor(creds: Credentials, salt: Buffer, passwordContainer: boolean) {
    checkCredentials(creds);
    this.creds = creds;
    this.salt = salt;
    this.passwordContainer = passwordContainer;
  }

  get available(): boolean {
    return this.creds.password !== undefined || this.creds.key !== undefined;
  }

  private precheck(path: string): void {
    if (!this.available) {
      throw new BfcError("EACCES", "KEY_REQUIRED", `'${path}' is encrypted: a password or key is required`, {
        path,
      });
    }
    if (this.creds.password !== undefined && !this.passwordContainer) {
      throw new BfcError(
        "EACCES",
        "BAD_KEY",
        "this container was encrypted with a key file, not a password (its salt is empty)",
        { path },
      );
    }
  }

  async get(path: string): Promise<Buffer> {
    if (this.key) return this.key;
    this.precheck(path);
    if (this.creds.key) {
      this.key = Buffer.from(this.creds.key);
      return this.key;
    }
    this.pending ??= deriveKey(this.creds.password!, this.salt);
    this.key = await this.pending;
    return this.key;
  }

  getSync(path: string): Buffer {
    if (this.key) return this.key;
    this.precheck(path);
    this.key = this.creds.key ? Buffer.from(this.creds.key) : deriveKeySync(this.creds.password!, this.salt);
    return this.key;
  }
}
