/**
 * The quick-start demo: builds a small example tree, then runs the `bfc` command on it as a user
 * would: create (zstd), list, info, verify --deep, cat, extract, and checks the copy is identical;
 * then updates the container in place (add, mv, rm as commits), shows its log and an older commit.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const built = path.join(root, "dist", "cli", "main.js");
// The built command when `npm install` has run `prepare`; the sources otherwise.
const cli = fs.existsSync(built) ? built : path.join(root, "src", "cli", "main.ts");

const work = fs.mkdtempSync(path.join(os.tmpdir(), "bfc-demo-"));
const tree = path.join(work, "example");
const files: Record<string, string | Buffer> = {
  "README.md": "# Example project\n\nPacked into one BFC container by the bfcfs demo.\n",
  "src/main.ts": 'export function hello(name: string): string {\n  return "hello, " + name;\n}\n'.repeat(20),
  "src/util/strings.ts": "export const upper = (s: string) => s.toUpperCase();\n".repeat(40),
  "data/table.csv": Array.from({ length: 2000 }, (_, i) => `${i},item-${i},${(i * 7) % 13}`).join("\n"),
  "data/noise.bin": Buffer.from(Array.from({ length: 65536 }, (_, i) => (i * 2654435761) >>> 24)),
  "docs/notes.txt": "Notes live here.\n",
};
for (const [rel, content] of Object.entries(files)) {
  fs.mkdirSync(path.dirname(path.join(tree, rel)), { recursive: true });
  fs.writeFileSync(path.join(tree, rel), content);
}
fs.mkdirSync(path.join(tree, "empty"));
fs.symlinkSync("README.md", path.join(tree, "readme-link"));

function bfc(...args: string[]): void {
  console.log(`\n$ bfc ${args.join(" ")}`);
  const out = execFileSync(process.execPath, [cli, ...args], { cwd: work, encoding: "utf8" });
  process.stdout.write(out);
}

bfc("create", "-c", "zstd", "example.bfc", "example");
bfc("list", "-l", "example.bfc");
bfc("info", "example.bfc");
bfc("verify", "--deep", "example.bfc");
bfc("cat", "example.bfc", "example/docs/notes.txt");
bfc("extract", "-k", "-C", "out", "example.bfc");

let same = true;
for (const [rel, content] of Object.entries(files)) {
  const a = createHash("sha256").update(content).digest("hex");
  const b = createHash("sha256")
    .update(fs.readFileSync(path.join(work, "out", "example", rel)))
    .digest("hex");
  if (a !== b) same = false;
}
console.log(
  `\nextracted copy in ${path.join(work, "out")}: ${same ? "identical to the original" : "DIFFERENT"}`,
);

// Updates are appended as commits; every earlier commit stays readable.
fs.writeFileSync(path.join(work, "CHANGELOG.md"), "- first release\n");
bfc("add", "-C", "example", "-m", "add the changelog", "example.bfc", "CHANGELOG.md");
bfc("mv", "-m", "rename the notes", "example.bfc", "example/docs/notes.txt", "example/docs/NOTES.txt");
bfc("rm", "-r", "-m", "drop the noise", "example.bfc", "example/data/noise.bin");
bfc("log", "example.bfc");
bfc("list", "--commit", "1", "example.bfc", "example/docs");
bfc("list", "example.bfc", "example/docs");
bfc("verify", "--deep", "example.bfc");
fs.rmSync(work, { recursive: true, force: true });
if (!same) process.exit(1);
