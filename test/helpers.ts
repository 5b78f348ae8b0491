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
