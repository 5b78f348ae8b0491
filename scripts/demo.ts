/**
 * The quick-start demo: builds a small example tree, packs it into a zstd-compressed container,
 * lists it, verifies every byte, extracts it again and checks the copy is identical.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { extract, Reader, verify, Writer } from "../src/index.ts";

const work = fs.mkdtempSync(path.join(os.tmpdir(), "bfc-demo-"));
const tree = path.join(work, "example");
const files: Record<string, string | Buffer> = {
  "README.md": "# Example project\n\nPacked into one BFC container by the bfcfs demo.\n",
  "src/main.ts": 'export function hello(name: string): string {\n  return "hello, " + name;\n}\n'.repeat(20),
  "src/util/strings.ts": "export const upper = (s: string) => s.toUpperCase();\n".repeat(40),
  "data/table.csv": Array.from({ length: 2000 }, (_, i) => `${i},item-${i},${(i * 7) % 13}`).join("\n"),
  "data/random.bin": Buffer.from(Array.from({ length: 65536 }, (_, i) => (i * 2654435761) >>> 24)),
  "docs/notes.txt": "Notes live here.\n",
};
for (const [rel, content] of Object.entries(files)) {
  fs.mkdirSync(path.dirname(path.join(tree, rel)), { recursive: true });
  fs.writeFileSync(path.join(tree, rel), content);
}
fs.mkdirSync(path.join(tree, "empty"));
fs.symlinkSync("README.md", path.join(tree, "readme-link"));

const container = path.join(work, "example.bfc");
const w = await Writer.create(container, { compression: "zstd" });
await w.addTree(tree, "example");
const summary = await w.finish();
console.log(
  `created ${container}: ${summary.entries} entries, ${summary.bytesIn} bytes in, ${summary.size} bytes on disk`,
);

const r = await Reader.open(container);
for (const e of r.entries()) {
  const kind = e.type === "directory" ? "dir " : e.type === "symlink" ? "link" : "file";
  console.log(`  ${kind} ${String(e.size).padStart(7)} ${e.compression.padEnd(4)} ${e.path}`);
}
const report = await verify(r, { deep: true });
console.log(
  `deep verify: ${report.ok ? "ok" : "FAILED"} (${report.checked} entries, ${report.bytes} bytes checked)`,
);

const out = path.join(work, "out");
const ex = await extract(r, out);
r.close();
let same = ex.failed.length === 0;
for (const [rel, content] of Object.entries(files)) {
  const a = createHash("sha256").update(content).digest("hex");
  const b = createHash("sha256")
    .update(fs.readFileSync(path.join(out, "example", rel)))
    .digest("hex");
  if (a !== b) same = false;
}
console.log(
  `extracted ${ex.extracted} entries to ${out}: ${same ? "identical to the original" : "DIFFERENT"}`,
);
if (!report.ok || !same) process.exit(1);
