import crypto from "node:crypto";
import fs from "node:fs";
import { BfcError, fromSystemError } from "../errors.ts";
import type { SignatureRecord } from "../format/extension.ts";
import { Container, type UpdateOptions } from "./container.ts";
import { rootDigest } from "./digest.ts";
import type { Reader } from "./reader.ts";

/**
 * Ed25519 signatures over the root digest (docs/format.md §13). Signing appends a commit that
 * changes no entry and carries the signature record; any later commit drops it (it would no
 * longer describe the container), so a signature always speaks for the commit that holds it.
 */

/** Reads an Ed25519 key from a PEM file (BAD_KEY when it is not one). */
export function readSigningKey(file: string, kind: "private" | "public"): crypto.KeyObject {
  let pem: Buffer;
  try {
    pem = fs.readFileSync(file);
  } catch (e) {
    throw fromSystemError(e, `cannot read ${kind} key '${file}'`, file);
  }
  let key: crypto.KeyObject;
  try {
    key = kind === "private" ? crypto.createPrivateKey(pem) : crypto.createPublicKey(pem);
  } catch (e) {
    throw new BfcError("EINVAL", "BAD_KEY", `'${file}' is not a PEM ${kind} key (${(e as Error).message})`, {
      path: file,
      cause: e,
    });
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new BfcError(
      "EINVAL",
      "BAD_KEY",
      `'${file}' is a ${key.asymmetricKeyType} key; an Ed25519 key is needed`,
      {
        path: file,
      },
    );
  }
  return key;
}

/** The raw 32 bytes of an Ed25519 public key. */
function rawPublic(key: crypto.KeyObject): Buffer {
  const der = key.export({ format: "der", type: "spki" });
  return Buffer.from(der.subarray(der.length - 32));
}

/** Writes a new Ed25519 key pair as PEM files (the private one readable by its owner only). */
export function generateSigningKey(privateFile: string, publicFile: string): void {
  const { privateKey, publicKey } = crypto.generateKeyPairSync("ed25519");
  try {
    fs.writeFileSync(privateFile, privateKey.export({ format: "pem", type: "pkcs8" }), {
      mode: 0o600,
      flag: "wx",
    });
  } catch (e) {
    throw fromSystemError(e, `cannot write the private key '${privateFile}'`, privateFile);
  }
  try {
    fs.writeFileSync(publicFile, publicKey.export({ format: "pem", type: "spki" }), {
      mode: 0o644,
      flag: "wx",
    });
  } catch (e) {
    // A private key without its public half would only be in the way of the next attempt.
    try {
      fs.unlinkSync(privateFile);
    } catch {}
    throw fromSystemError(e, `cannot write the public key '${publicFile}'`, publicFile);
  }
}

export interface SignResult {
  commit: number;
  digest: string;
  publicKey: string;
}

/** Signs the latest commit's root digest and records the signature as a new commit. */
export async function signContainer(
  file: string,
  privateKeyFile: string,
  options: UpdateOptions & { message?: string } = {},
): Promise<SignResult> {
  const key = readSigningKey(privateKeyFile, "private");
  const { message, ...update } = options;
  const c = await Container.openForUpdate(file, update);
  try {
    return await signOpen(c, key, message);
  } finally {
    c.close();
  }
}

/**
 * Signs the commit an open container is based on and commits the signature record. Nothing may be
 * staged: the signature must describe a tree that is on disk.
 */
export async function signOpen(
  c: Container,
  privateKey: crypto.KeyObject,
  message = "signature",
): Promise<SignResult> {
  if (c.hasChanges) {
    throw new BfcError(
      "EINVAL",
      "INVALID_ARGUMENT",
      "sign the latest commit, not an older one or staged changes",
    );
  }
  const d = await rootDigest(c.base);
  const digest = Buffer.from(d.digest, "hex");
  const publicKey = rawPublic(crypto.createPublicKey(privateKey));
  const signature = crypto.sign(null, digest, privateKey);
  c.setSignature({ publicKey, digest, signature });
  const r = await c.commit({ message });
  return { commit: r.commit, digest: d.digest, publicKey: publicKey.toString("hex") };
}

export interface SignatureCheck {
  ok: boolean;
  /** Why not, in one line. */
  problem?: string;
  signature?: SignatureRecord;
}

/**
 * Checks the signature recorded in the reader's commit: made by `publicKey` (a PEM file or a key),
 * valid over the recorded digest, and that digest equal to the container's actual root digest.
 */
export async function checkSignature(
  reader: Reader,
  publicKey: string | crypto.KeyObject,
): Promise<SignatureCheck> {
  const key = typeof publicKey === "string" ? readSigningKey(publicKey, "public") : publicKey;
  const sig = reader.extension.signature;
  if (!sig) return { ok: false, problem: `commit ${reader.commit} is not signed` };
  if (!sig.publicKey.equals(rawPublic(key))) {
    return { ok: false, problem: "the commit was signed with a different key", signature: sig };
  }
  if (!crypto.verify(null, sig.digest, key, sig.signature)) {
    return { ok: false, problem: "the signature does not match the recorded digest", signature: sig };
  }
  const actual = (await rootDigest(reader)).digest;
  if (actual !== sig.digest.toString("hex")) {
    return {
      ok: false,
      problem: `the content changed since it was signed (signed digest ${sig.digest.toString("hex")}, actual ${actual})`,
      signature: sig,
    };
  }
  return { ok: true, signature: sig };
}
