import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const ROOT = path.resolve(import.meta.dirname, "..");
/** The shared folder beside the project (reference docs and golden vectors). */
export const SHARED = path.resolve(ROOT, "..", "shared");
export const VECTORS = path.join(SHARED, "vectors");
export const VECTOR_PASSWORD = "correct horse battery staple";

/** A fresh temporary directory, removed when the test process exits. */
export function tempDir(prefix = "bfc-test-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Writes a tree described as relative path → content (string/Buffer), "dir/" → directory, {link} → symlink. */
export type TreeSpec = Record<
  string,
  string | Buffer | { link: string } | { mode: number; data: string | Buffer }
>;

export function writeTree(root: string, spec: TreeSpec): void {
  for (const [rel, v] of Object.entries(spec)) {
    const full = path.join(root, rel);
    if (rel.endsWith("/")) {
      fs.mkdirSync(full, { recursive: true });
      continue;
    }
    fs.mkdirSync(path.dirname(full), { recursive: true });
    if (typeof v === "string" || Buffer.isBuffer(v)) fs.writeFileSync(full, v);
    else if ("link" in v) fs.symlinkSync(v.link, full);
    else {
      fs.writeFileSync(full, v.data);
      fs.chmodSync(full, v.mode);
    }
  }
}

/** A small seeded PRNG (mulberry32): deterministic fixtures without committed binaries. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` deterministic incompressible bytes. */
export function randomBytes(n: number, seed: number): Buffer {
  const next = prng(seed);
  const b = Buffer.alloc(n);
  for (let k = 0; k + 4 <= n; k += 4) b.writeUInt32LE(Math.floor(next() * 4294967296), k);
  for (let k = n - (n % 4); k < n; k++) b[k] = Math.floor(next() * 256);
  return b;
}

/** The error `run` throws (the test fails if it returns). */
export function caught(run: () => unknown): NodeJS.ErrnoException {
  try {
    run();
  } catch (e) {
    return e as NodeJS.ErrnoException;
  }
  throw new Error("expected an error");
}

/** The error `run` rejects with (the test fails if it resolves). */
export async function rejected(run: () => Promise<unknown>): Promise<NodeJS.ErrnoException> {
  try {
    await run();
  } catch (e) {
    return e as NodeJS.ErrnoException;
  }
  throw new Error("expected a rejection");
}

export type ContentKind = "random" | "text" | "zeros";

/** `size` deterministic bytes: incompressible, text lines with numbers, or zeros. */
export function sampleContent(kind: ContentKind, size: number, seed: number): Buffer {
  if (kind === "random") return randomBytes(size, seed);
  if (kind === "zeros") return Buffer.alloc(size);
  const next = prng(seed);
  const out = Buffer.alloc(size);
  let o = 0;
  while (o < size) o += out.write(`${Math.floor(next() * 1e9)} lorem ipsum ${o}\n`, o);
  return out;
}
