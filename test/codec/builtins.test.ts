import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Writer } from "../../src/container/writer.ts";
import { tempDir } from "../helpers.ts";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * Runs `body` (an ES module's text, with `bfc` bound to src/vfs/types/bfc.ts and `Reader` to the
 * reader) in a fresh Node process and returns what it printed as JSON.
 */
function inFreshProcess(body: string): unknown {
  const script = `
    const { Reader } = await import(${JSON.stringify(path.join(root, "src/container/reader.ts"))});
    await import(${JSON.stringify(path.join(root, "src/vfs/types/bfc.ts"))});
    const loaded = () => ({
      zlib: process.moduleLoadList.includes("NativeModule zlib"),
      crypto: process.moduleLoadList.includes("NativeModule crypto"),
    });
    ${body}`;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  return JSON.parse(out);
}

test("node:zlib and node:crypto load at first use, not with the reader", async (t) => {
  if (!Array.isArray((process as unknown as { moduleLoadList?: unknown }).moduleLoadList)) {
    t.skip("this Node has no process.moduleLoadList to tell which built-ins are loaded");
    return;
  }
  const dir = tempDir();
  try {
    const container = path.join(dir, "c.bfc");
    const w = await Writer.create(container, { compression: "zstd" });
    await w.addFile("a.txt", Buffer.from("hello ".repeat(1000)));
    await w.finish();
    const seen = inFreshProcess(`
      const atImport = loaded();
      const r = await Reader.open(${JSON.stringify(container)});
      const listed = [...r.list()].map((e) => e.path);
      const afterOpen = loaded();
      const text = r.readFileSync("a.txt").toString("utf8", 0, 12);
      const afterRead = loaded();
      r.close();
      console.log(JSON.stringify({ atImport, afterOpen, afterRead, listed, text }));
    `) as Record<string, unknown>;
    // Opening and listing an unencrypted container needs neither.
    assert.deepEqual(seen.atImport, { zlib: false, crypto: false });
    assert.deepEqual(seen.afterOpen, { zlib: false, crypto: false });
    assert.deepEqual(seen.listed, ["a.txt"]);
    // Decoding a zstd file loads zlib then, and gives the bytes.
    assert.deepEqual(seen.afterRead, { zlib: true, crypto: false });
    assert.equal(seen.text, "hello hello ");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
