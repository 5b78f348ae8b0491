/**
 * Reader.share / ReaderOptions.shared: Readers in other threads of the process attach to one
 * Reader's parsed index (FUSE serving threads) instead of reading, checking and parsing it again.
 * An attached Reader must behave exactly like one opened the normal way, in this thread and in a
 * worker thread, and still refuse a container that changed or whose header is damaged.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { IndexTable } from "../../src/format/index-table.ts";
import { Reader, Writer } from "../../src/index.ts";
import { content } from "../craft.ts";
import { tempDir } from "../helpers.ts";

const dir = tempDir("bfc-share-");

async function sample(file: string, options: { password?: string } = {}): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const w = await Writer.create(file, { compression: "zstd", ...options });
  await w.addDirectory("d");
  await w.addDirectory("d/sub");
  for (let k = 0; k < 300; k++) {
    const name = `d/${k % 3 === 0 ? "sub/" : ""}f${String(k).padStart(3, "0")}.bin`;
    const data = content("text", (k * 97) % 5000, k);
    files.set(name, data);
    await w.addFile(name, data);
  }
  await w.addSymlink("d/link", "sub/f000.bin");
  await w.finish();
  return files;
}

/** What a Reader shows: every entry's stat fields, listings and contents. */
function view(r: Reader): unknown {
  const out: unknown[] = [r.count, r.commit, r.readdir(""), r.readdir("d"), r.readdir("d/sub")];
  for (let i = 0; i < r.count; i++) {
    const e = r.entryAt(i);
    out.push([e.path, e.type, e.mode, e.size, String(e.mtimeNs)]);
    if (e.type === "file") out.push(r.readFileAtSync(i).toString("base64"));
    if (e.type === "symlink") out.push(r.readlinkAtSync(i));
  }
  return out;
}

describe("Reader.share: other Readers attach to a parsed index", () => {
  it("an attached Reader shows the same entries, listings and contents", async () => {
    const file = path.join(dir, "a.bfc");
    await sample(file);
    const fd = fs.openSync(file, "r");
    try {
      const first = await Reader.open(file, { fd });
      const shared = first.share();
      assert.ok(shared.index.blob instanceof SharedArrayBuffer);
      assert.ok(shared.index.starts instanceof SharedArrayBuffer);
      const attached = await Reader.open(file, { fd, shared });
      const again = Reader.openSync(file, { fd, shared });
      assert.deepEqual(view(attached), view(first));
      assert.deepEqual(view(again), view(first));
      assert.deepEqual(attached.index.blob, first.index.blob);
      assert.equal(attached.end, first.end);
      first.close();
      attached.close();
      again.close();
    } finally {
      fs.closeSync(fd);
    }
  });

  it("an index parsed from ordinary memory is copied into shared memory once", () => {
    const file = path.join(dir, "a.bfc");
    const r = Reader.openSync(file);
    try {
      const blob = Buffer.from(r.index.blob); // not shared
      const t = IndexTable.parse(blob, r.footer.indexOffset);
      const s = t.share();
      assert.ok(s.blob instanceof SharedArrayBuffer);
      const u = IndexTable.attach(s);
      assert.equal(u.count, t.count);
      for (let i = 0; i < t.count; i++) assert.equal(u.path(i), t.path(i));
      assert.equal(u.hasEntriesBelowNonDirectories(), false);
    } finally {
      r.close();
    }
  });

  it("a worker thread attaches and reads the same bytes, password-encrypted entries included", async () => {
    const file = path.join(dir, "enc.bfc");
    const files = await sample(file, { password: "pw" });
    const r = await Reader.open(file, { password: "pw" });
    const key = await r.knownKey();
    const shared = r.share();
    r.close();
    const module = new URL("../../src/container/reader.ts", import.meta.url).href;
    const w = new Worker(
      `const { workerData, parentPort } = require("node:worker_threads");
      import(workerData.module).then(({ Reader }) => {
        const r = Reader.openSync(workerData.file, { key: workerData.key, shared: workerData.shared });
        const out = {};
        for (let i = 0; i < r.count; i++) {
          const e = r.entryAt(i);
          if (e.type === "file") out[e.path] = r.readFileAtSync(i).toString("base64");
        }
        r.close();
        parentPort.postMessage(out);
      }, (e) => parentPort.postMessage({ error: String(e) }));`,
      { eval: true, workerData: { module, file, key, shared } },
    );
    const got = await new Promise<Record<string, string>>((resolve, reject) => {
      w.once("message", resolve);
      w.once("error", reject);
    });
    await w.terminate();
    assert.equal(got.error, undefined, got.error);
    assert.equal(Object.keys(got).length, files.size);
    for (const [name, data] of files) assert.equal(got[name], data.toString("base64"), name);
  });

  it("refuses a container whose size changed, or whose header is damaged", async () => {
    const file = path.join(dir, "b.bfc");
    await sample(file);
    const r = Reader.openSync(file);
    const shared = r.share();
    r.close();
    fs.appendFileSync(file, Buffer.alloc(16));
    assert.throws(() => Reader.openSync(file, { shared }), /changed size/);
    fs.truncateSync(file, shared.fileSize);
    Reader.openSync(file, { shared }).close();
    const fd = fs.openSync(file, "r+");
    fs.writeSync(fd, Buffer.from([0xff]), 0, 1, 20);
    fs.closeSync(fd);
    assert.throws(() => Reader.openSync(file, { shared }), {
      reason: "CRC_MISMATCH",
      message: /header checksum/,
    });
  });
});
