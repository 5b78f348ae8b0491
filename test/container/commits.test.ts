/**
 * Append-only commits: what a commit writes and keeps, the commit chain and older commits, torn
 * tails (the file cut at every byte of a commit's tail), the reference's view of a multi-commit
 * container, limits, locking, encryption, entry attributes, compaction and signatures.
 */
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { crc32c } from "../../src/codec/crc32c.ts";
import { FOOTER_SIZE, HEADER_SIZE } from "../../src/format/constants.ts";
import { decodeFooter } from "../../src/format/footer.ts";
import { IndexTable } from "../../src/format/index-table.ts";
import type { BfcError } from "../../src/index.ts";
import {
  Container,
  checkSignature,
  compact,
  generateSigningKey,
  Reader,
  rootDigest,
  signContainer,
  verify,
  Writer,
} from "../../src/index.ts";
import { randomBytes, rejected, tempDir } from "../helpers.ts";

async function rejectedBfc(run: () => Promise<unknown>): Promise<BfcError> {
  return (await rejected(run)) as unknown as BfcError;
}

const root = tempDir("bfc-commits-");
let seq = 0;
const KEY = Buffer.alloc(32, 7);

function place(): string {
  const dir = path.join(root, String(seq++));
  fs.mkdirSync(dir);
  return path.join(dir, "c.bfc");
}

async function base(file: string, opts: Parameters<typeof Writer.create>[1] = {}): Promise<void> {
  const w = await Writer.create(file, opts);
  await w.addDirectory("docs", { mode: 0o755, mtime: 1_000 });
  await w.addFile("docs/a.txt", Buffer.from("alpha ".repeat(50)), { mode: 0o644, mtime: 2_000 });
  await w.addFile("b.bin", randomBytes(5000, 1), { mode: 0o600, mtime: 3_000 });
  await w.addSymlink("link", "docs/a.txt", { mtime: 4_000 });
  await w.finish();
}

/** Path → [mode, size, mtimeNs, content sha or link target] for every entry. */
async function tree(r: Reader): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of r.entries()) {
    let what = "";
    if (e.type === "file")
      what = crypto
        .createHash("sha256")
        .update(await r.readFile(e.path))
        .digest("hex");
    else if (e.type === "symlink") what = await r.readlink(e.path);
    out.set(e.path, `${e.mode.toString(8)} ${e.size} ${e.mtimeNs} ${what}`);
  }
  return out;
}

/** The reference's open sequence (its §9) applied to the last 56 bytes. */
function referenceOpens(file: string): { count: number } {
  const buf = fs.readFileSync(file);
  const footer = decodeFooter(buf.subarray(buf.length - FOOTER_SIZE), buf.length);
  assert.ok(footer.indexOffset + footer.indexSize <= buf.length - FOOTER_SIZE);
  const blob = buf.subarray(footer.indexOffset, footer.indexOffset + footer.indexSize);
  assert.equal(crc32c(blob), footer.indexCrc);
  const ix = IndexTable.parse(Buffer.from(blob), footer.indexOffset);
  // Every object the index names lies in the file before the index, starting after the header.
  for (let i = 0; i < ix.count; i++) {
    assert.ok(ix.objOffset(i) >= HEADER_SIZE && ix.objOffset(i) + ix.objSize(i) <= footer.indexOffset);
  }
  return { count: ix.count };
}

describe("commits", () => {
  it("appends only what changed and keeps unchanged objects where they are", async () => {
    const file = place();
    await base(file);
    const before = fs.readFileSync(file);
    const r0 = await Reader.open(file);
    const aOffset = r0.stat("docs/a.txt").objectOffset;
    r0.close();
    const c = await Container.openForUpdate(file);
    await c.addFile("new.txt", Buffer.from("fresh"));
    c.chmod("b.bin", 0o640);
    c.utimes("docs/a.txt", 9_000);
    const res = await c.commit({ message: "one" });
    c.close();
    assert.equal(res.commit, 2);
    assert.equal(res.written, 1, "only new.txt is a new object");
    const after = fs.readFileSync(file);
    assert.ok(after.subarray(0, before.length).equals(before), "commit 1's bytes are untouched");
    const r = await Reader.open(file);
    assert.equal(r.commit, 2);
    assert.equal(r.stat("docs/a.txt").objectOffset, aOffset, "unchanged content is not rewritten");
    assert.equal(r.stat("b.bin").mode & 0o7777, 0o640);
    assert.equal(r.stat("docs/a.txt").mtimeNs, 9_000_000_000n);
    assert.equal((await r.readFile("new.txt")).toString(), "fresh");
    assert.equal(r.extension.commitInfo?.message, "one");
    assert.deepEqual(r.extension.previous, { footerEnd: before.length, commit: 2 });
    assert.equal((await verify(r, { deep: true })).ok, true);
    r.close();
    assert.equal(referenceOpens(file).count, 5);
  });

  it("reads every older commit exactly as it was", async () => {
    const file = place();
    await base(file);
    const trees: Map<string, string>[] = [];
    const snap = async () => {
      const r = await Reader.open(file);
      trees.push(await tree(r));
      r.close();
    };
    await snap();
    const c = await Container.openForUpdate(file, { compression: "zstd" });
    await c.addFile("docs/b.txt", Buffer.from("bee ".repeat(100)));
    await c.commit();
    await snap();
    c.rename("docs", "papers");
    await c.commit();
    await snap();
    c.remove("papers", { recursive: true });
    c.symlink("dangling", "nowhere");
    await c.commit();
    await snap();
    c.close();
    const r = await Reader.open(file);
    const log = r.commits();
    assert.deepEqual(
      log.map((x) => x.commit),
      [4, 3, 2, 1],
    );
    r.close();
    for (let n = 1; n <= 4; n++) {
      const old = await Reader.open(file, { commit: n });
      assert.equal(old.commit, n);
      assert.deepEqual(await tree(old), trees[n - 1], `commit ${n}`);
      assert.equal((await verify(old, { deep: true })).ok, true);
      old.close();
    }
    const e = await rejectedBfc(() => Reader.open(file, { commit: 9 }));
    assert.equal(e.code, "ENOENT");
  });

  it("writes nothing when nothing changed", async () => {
    const file = place();
    await base(file);
    const size = fs.statSync(file).size;
    const c = await Container.openForUpdate(file);
    const r = await c.commit();
    c.close();
    assert.equal(r.changed, false);
    assert.equal(fs.statSync(file).size, size);
  });

  it("a failed commit leaves the container at its previous commit, byte for byte", async () => {
    const file = place();
    await base(file);
    const before = fs.readFileSync(file);
    const c = await Container.openForUpdate(file);
    await c.addFile("big.bin", randomBytes(300_000, 2));
    const missing = path.join(path.dirname(file), "vanishes.txt");
    fs.writeFileSync(missing, "soon gone");
    await c.addFile("gone.txt", missing);
    fs.rmSync(missing);
    const e = await rejectedBfc(() => c.commit());
    assert.equal(e.code, "ENOENT");
    c.close();
    assert.ok(fs.readFileSync(file).equals(before));
  });

  it("opens the last complete commit when the file is cut anywhere in a commit's tail", async () => {
    const file = place();
    await base(file);
    const c = await Container.openForUpdate(file);
    await c.commit();
    await c.addFile("docs/more.txt", randomBytes(700, 3));
    c.rename("b.bin", "docs/b.bin");
    await c.commit();
    const goodEnd = fs.statSync(file).size;
    await c.addFile("tail.txt", randomBytes(900, 4));
    c.remove("link");
    await c.commit();
    c.close();
    const full = fs.readFileSync(file);
    const r2 = await Reader.open(file, { commit: 2 });
    const want = await tree(r2);
    r2.close();
    const cut = path.join(path.dirname(file), "cut.bfc");
    for (let len = goodEnd; len < full.length; len++) {
      fs.writeFileSync(cut, full.subarray(0, len));
      const r = await Reader.open(cut);
      assert.equal(r.commit, 2, `cut at ${len}`);
      assert.equal(r.tornTail, len - goodEnd);
      if (len === goodEnd || len % 97 === 0) {
        assert.deepEqual(await tree(r), want);
        assert.equal((await verify(r, { deep: true })).ok, true);
      }
      r.close();
    }
    // recover: no torn-tail fallback needed afterwards, and the reference's checks pass.
    fs.writeFileSync(cut, Buffer.concat([full.subarray(0, goodEnd), randomBytes(333, 5)]));
    const strict = await rejectedBfc(() => Reader.open(cut, { recover: false }));
    assert.equal(strict.reason, "TRUNCATED");
    const u = await Container.openForUpdate(cut);
    u.close();
    assert.equal(fs.statSync(cut).size, goodEnd, "an update cuts off the torn tail first");
    referenceOpens(cut);
  });

  it("a damaged last index is corruption, not a torn tail", async () => {
    const file = place();
    await base(file);
    const c = await Container.openForUpdate(file);
    await c.addFile("x", Buffer.from("x"));
    await c.commit();
    c.close();
    const buf = fs.readFileSync(file);
    const f = decodeFooter(buf.subarray(buf.length - FOOTER_SIZE), buf.length);
    buf[f.indexOffset + 10] ^= 1;
    fs.writeFileSync(file, buf);
    const e = await rejectedBfc(() => Reader.open(file));
    assert.equal(e.reason, "CRC_MISMATCH");
  });

  it("refuses a previous-commit chain that loops or points forwards", async () => {
    const file = place();
    await base(file);
    const c = await Container.openForUpdate(file);
    await c.addFile("x", Buffer.from("x"));
    await c.commit();
    c.close();
    // Rewrite the last index's previous-commit record to point at itself, with a valid CRC.
    const buf = fs.readFileSync(file);
    const f = decodeFooter(buf.subarray(buf.length - FOOTER_SIZE), buf.length);
    const blob = Buffer.from(buf.subarray(f.indexOffset, f.indexOffset + f.indexSize));
    const ix = IndexTable.parse(blob, f.indexOffset);
    const ext = blob.subarray(ix.entriesEnd);
    const at = ext.indexOf(Buffer.from([3, 0, 0, 0, 16, 0, 0, 0]));
    assert.ok(at > 0);
    ext.writeBigUInt64LE(BigInt(buf.length), at + 8);
    blob.copy(buf, f.indexOffset);
    buf.writeUInt32LE(crc32c(blob), buf.length - FOOTER_SIZE + 16);
    fs.writeFileSync(file, buf);
    const r = await Reader.open(file);
    assert.throws(() => r.commits(), /impossible previous commit/);
    r.close();
  });

  it("keeps POSIX rules for the staged tree", async () => {
    const file = place();
    await base(file);
    const c = await Container.openForUpdate(file);
    assert.throws(() => c.remove("docs"), { code: "ENOTEMPTY" });
    assert.throws(() => c.rename("docs", "docs/inner"), { code: "EINVAL" });
    assert.throws(() => c.rename("b.bin", "docs"), { code: "EISDIR" });
    assert.throws(() => c.rename("docs", "b.bin"), { code: "ENOTDIR" });
    assert.throws(() => c.mkdir("docs"), { code: "EEXIST" });
    assert.throws(() => c.mkdir("b.bin/x"), { code: "ENOTDIR" });
    assert.throws(() => c.remove("nope"), { code: "ENOENT" });
    await assert.rejects(() => c.addFile("docs", Buffer.from("x")), { code: "EISDIR" });
    c.rename("b.bin", "docs/a.txt");
    assert.equal(c.stat("docs/a.txt").size, 5000, "rename replaces a file");
    assert.deepEqual(c.readdir("docs"), ["a.txt"]);
    await c.commit();
    c.close();
    const r = await Reader.open(file);
    assert.equal(r.stat("docs/a.txt").size, 5000);
    assert.equal(r.tryStat("b.bin"), null);
    r.close();
  });

  it("an emptied implied directory keeps existing", async () => {
    const file = place();
    const w = await Writer.create(file);
    await w.addFile("implied/only.txt", Buffer.from("x"));
    await w.finish();
    const c = await Container.openForUpdate(file);
    c.remove("implied/only.txt");
    await c.commit();
    c.close();
    const r = await Reader.open(file);
    assert.equal(r.stat("implied").type, "directory");
    r.close();
  });

  it("locks out a second updater", async () => {
    const file = place();
    await base(file);
    const c = await Container.openForUpdate(file);
    const e = await rejectedBfc(() => Container.openForUpdate(file));
    assert.equal(e.code, "EBUSY");
    assert.equal(e.reason, "LOCKED");
    c.close();
    const d = await Container.openForUpdate(file);
    d.close();
    // A lock left by a process that no longer exists is taken over.
    fs.writeFileSync(path.join(path.dirname(file), ".c.bfc.bfc-lock"), "999999999\n");
    const e2 = await Container.openForUpdate(file);
    e2.close();
  });

  it("restores an older commit as a new commit", async () => {
    const file = place();
    await base(file);
    const c = await Container.openForUpdate(file);
    c.remove("docs", { recursive: true });
    await c.commit();
    c.close();
    const size = fs.statSync(file).size;
    const back = await Container.openForUpdate(file, { from: 1 });
    const res = await back.commit({ message: "restore 1" });
    back.close();
    assert.equal(res.commit, 3);
    assert.equal(res.written, 0, "commit 1's objects are reused");
    assert.ok(fs.statSync(file).size - size < 1024);
    const r1 = await Reader.open(file, { commit: 1 });
    const r3 = await Reader.open(file);
    assert.deepEqual(await tree(r3), await tree(r1));
    r1.close();
    r3.close();
  });
});

describe("commits of encrypted containers", () => {
  it("encrypts new entries with the container's key and re-encrypts moved ones", async () => {
    const file = place();
    await base(file, { password: "pw", compression: "zstd" });
    const c = await Container.openForUpdate(file, { password: "pw", compression: "zstd" });
    await c.addFile("secret.txt", Buffer.from("top secret ".repeat(20)));
    c.rename("docs/a.txt", "moved.txt");
    await c.commit();
    c.close();
    const r = await Reader.open(file, { password: "pw" });
    assert.equal(r.stat("secret.txt").encrypted, true);
    assert.equal((await r.readFile("moved.txt")).toString(), "alpha ".repeat(50));
    assert.equal((await verify(r, { deep: true })).ok, true);
    r.close();
  });

  it("refuses a wrong password before writing anything", async () => {
    const file = place();
    await base(file, { password: "pw" });
    const size = fs.statSync(file).size;
    const e = await rejectedBfc(() => Container.openForUpdate(file, { password: "nope" }));
    assert.equal(e.reason, "AUTH_FAILED");
    const k = await rejectedBfc(() => Container.openForUpdate(file));
    assert.equal(k.reason, "KEY_REQUIRED");
    assert.equal(fs.statSync(file).size, size);
    const plain = place();
    await base(plain);
    const p = await rejectedBfc(() => Container.openForUpdate(plain, { key: KEY }));
    assert.equal(p.reason, "BAD_KEY");
  });
});

describe("resource limits", () => {
  it("fails the operation with EDQUOT and leaves the container unchanged", async () => {
    const file = place();
    await base(file);
    const c = await Container.openForUpdate(file);
    c.setLimits({ maxFiles: 4, maxDirectories: 2, maxTotalBytes: 6000, maxFileSize: 5500 });
    await c.commit();
    const size = fs.statSync(file).size;
    await c.addFile("ok.txt", Buffer.from("fits"));
    await assert.rejects(() => c.addFile("one-too-many", Buffer.from("x")), {
      code: "EDQUOT",
      reason: "RESOURCE_LIMIT_EXCEEDED",
      field: "maxFiles",
    });
    c.remove("ok.txt");
    await assert.rejects(() => c.addFile("huge", Buffer.alloc(5600)), { field: "maxFileSize" });
    await assert.rejects(() => c.addFile("docs/a.txt", Buffer.alloc(1100)), { field: "maxTotalBytes" });
    c.mkdir("d1");
    assert.throws(() => c.mkdir("d2"), { field: "maxDirectories" });
    assert.throws(() => c.setLimits({ maxFiles: 1 }), { code: "EDQUOT" });
    c.remove("d1");
    // A stream of unknown length is counted as it flows: the commit fails and writes nothing.
    async function* big() {
      for (let k = 0; k < 10; k++) yield Buffer.alloc(1000);
    }
    c.remove("link");
    await c.addFile("stream", big());
    await assert.rejects(() => c.commit(), { code: "EDQUOT" });
    assert.equal(fs.statSync(file).size, size);
    c.close();
    const r = await Reader.open(file);
    assert.deepEqual(r.extension.limits, {
      maxFiles: 4,
      maxDirectories: 2,
      maxTotalBytes: 6000,
      maxFileSize: 5500,
    });
    r.close();
  });
});

describe("entry attributes", () => {
  it("round-trip through commits and follow renames", async () => {
    const file = place();
    await base(file);
    const c = await Container.openForUpdate(file);
    c.setAttributes("b.bin", {
      uid: 100000,
      gid: 200000,
      atimeNs: -5n,
      xattrs: new Map([["user.note", Buffer.from("hi")]]),
    });
    await c.commit();
    c.rename("b.bin", "docs/b.bin");
    await c.addFile("z", Buffer.from("z"));
    await c.commit();
    c.close();
    const r = await Reader.open(file);
    const a = r.attributesAt(r.find("docs/b.bin"));
    assert.equal(a?.uid, 100000);
    assert.equal(a?.gid, 200000);
    assert.equal(a?.atimeNs, -5n);
    assert.equal(a?.xattrs?.get("user.note")?.toString(), "hi");
    assert.equal(r.attributesAt(r.find("z")), undefined);
    r.close();
  });
});

describe("compaction", () => {
  it("drops dead objects, keeps the tree, digest, metadata and (optionally) every commit", async () => {
    const file = place();
    await base(file, { compression: "zstd", password: "pw", metadata: { creator: "test" } });
    const c = await Container.openForUpdate(file, { password: "pw" });
    for (let k = 0; k < 5; k++) {
      await c.addFile(`f${k}`, randomBytes(2000, k));
      if (k > 0) c.remove(`f${k - 1}`);
      await c.commit();
    }
    c.close();
    const r = await Reader.open(file, { password: "pw" });
    const digest = (await rootDigest(r)).digest;
    const commits = r.commits().length;
    r.close();
    const kept = path.join(path.dirname(file), "kept.bfc");
    const h = await compact(file, { output: kept, keepHistory: true });
    assert.equal(h.commits, commits);
    for (let n = 1; n <= commits; n++) {
      const a = await Reader.open(file, { commit: n, password: "pw" });
      const b = await Reader.open(kept, { commit: n, password: "pw" });
      assert.equal((await rootDigest(b)).digest, (await rootDigest(a)).digest);
      a.close();
      b.close();
    }
    const res = await compact(file);
    assert.ok(res.after < res.before);
    const after = await Reader.open(file, { password: "pw" });
    assert.equal((await rootDigest(after)).digest, digest);
    assert.equal(after.commit, 1);
    assert.equal(after.extension.metadata?.creator, "test");
    assert.equal((await verify(after, { deep: true })).ok, true);
    after.close();
    referenceOpens(file);
    assert.deepEqual(
      fs.readdirSync(path.dirname(file)).filter((n) => n.startsWith(".")),
      [],
      "no temporary or lock files left",
    );
  });
});

describe("signatures", () => {
  it("sign, verify, and detect a changed key, digest or content", async () => {
    const file = place();
    await base(file);
    const dir = path.dirname(file);
    generateSigningKey(path.join(dir, "k"), path.join(dir, "k.pub"));
    generateSigningKey(path.join(dir, "other"), path.join(dir, "other.pub"));
    const s = await signContainer(file, path.join(dir, "k"));
    assert.equal(s.commit, 2);
    let r = await Reader.open(file);
    assert.equal((await checkSignature(r, path.join(dir, "k.pub"))).ok, true);
    assert.match((await checkSignature(r, path.join(dir, "other.pub"))).problem ?? "", /different key/);
    r.close();
    // Compaction keeps it (the tree is the same).
    await compact(file);
    r = await Reader.open(file);
    assert.equal((await checkSignature(r, path.join(dir, "k.pub"))).ok, true);
    r.close();
    // Any later commit drops it.
    const c = await Container.openForUpdate(file);
    c.chmod("b.bin", 0o644);
    await c.commit();
    c.close();
    r = await Reader.open(file);
    assert.match((await checkSignature(r, path.join(dir, "k.pub"))).problem ?? "", /not signed/);
    r.close();
    // Content changed under a kept signature record: caught by the digest comparison.
    const file2 = place();
    await base(file2);
    await signContainer(file2, path.join(dir, "k"));
    const buf = fs.readFileSync(file2);
    const at = buf.indexOf(Buffer.from("alpha alpha"));
    buf[at] = "A".charCodeAt(0);
    fs.writeFileSync(file2, buf);
    r = await Reader.open(file2, { trustContent: true });
    const bad = await checkSignature(r, path.join(dir, "k.pub")).catch((e) => ({
      ok: false,
      problem: String(e),
    }));
    assert.equal(bad.ok, false);
    r.close();
  });
});

describe("hard links and special entries", () => {
  async function linked(file: string, opts: Parameters<typeof Writer.create>[1] = {}): Promise<void> {
    const w = await Writer.create(file, opts);
    await w.addFile("bin/tool", randomBytes(3000, 9), { mode: 0o755 });
    await w.addHardlink("bin/alias", "bin/tool");
    await w.addHardlink("zz-last", "bin/tool");
    w.addSpecial("dev/null", { mode: 0o020666, rdevMajor: 1, rdevMinor: 3, mtime: 5 });
    w.addSpecial("run/fifo", { mode: 0o010600, mtime: 6, attrs: { uid: 7, gid: 8 } });
    await w.finish();
  }

  for (const enc of [{}, { password: "pw" }]) {
    it(`share one object and read back under every name${enc.password ? " (encrypted)" : ""}`, async () => {
      const file = place();
      await linked(file, { compression: "zstd", ...enc });
      const r = await Reader.open(file, enc);
      const tool = await r.readFile("bin/tool");
      assert.ok((await r.readFile("bin/alias")).equals(tool));
      assert.ok((await r.readFile("zz-last")).equals(tool));
      assert.equal(r.stat("bin/alias").objectOffset, r.stat("bin/tool").objectOffset, "no second copy");
      assert.equal(r.hardlinkTarget(r.find("bin/alias")), r.find("bin/tool"));
      assert.equal((await verify(r, { deep: true })).ok, true);
      assert.deepEqual(
        r.specialEntries().map((e) => [e.path, e.mode, e.rdevMajor, e.rdevMinor, e.mtimeNs, e.attrs?.uid]),
        [
          ["dev/null", 0o020666, 1, 3, 5_000_000n, undefined],
          ["run/fifo", 0o010600, 0, 0, 6_000_000n, 7],
        ],
      );
      r.close();
      if (!enc.password) referenceOpens(file);
    });
  }

  it("survive compaction and unchanged commits; a changed target turns its links into copies", async () => {
    const file = place();
    await linked(file, { password: "pw" });
    const c = await Container.openForUpdate(file, { password: "pw" });
    await c.addFile("other", Buffer.from("x"));
    await c.commit();
    let r = await Reader.open(file, { password: "pw" });
    assert.equal(r.stat("bin/alias").objectOffset, r.stat("bin/tool").objectOffset);
    assert.equal(r.specialEntries().length, 2);
    r.close();
    c.close();
    await compact(file);
    r = await Reader.open(file, { password: "pw" });
    assert.equal(r.stat("zz-last").objectOffset, r.stat("bin/tool").objectOffset);
    assert.equal((await verify(r, { deep: true })).ok, true);
    const before = await r.readFile("bin/tool");
    r.close();
    const d = await Container.openForUpdate(file, { password: "pw" });
    await d.addFile("bin/tool", Buffer.from("new tool"));
    d.remove("run", { recursive: true });
    await d.commit();
    d.close();
    r = await Reader.open(file, { password: "pw" });
    assert.equal((await r.readFile("bin/tool")).toString(), "new tool");
    assert.ok((await r.readFile("bin/alias")).equals(before), "the other names keep the old content");
    assert.ok((await r.readFile("zz-last")).equals(before));
    assert.equal(r.hardlinkTarget(r.find("bin/alias")), -1);
    assert.deepEqual(
      r.specialEntries().map((e) => e.path),
      ["dev/null"],
      "a special entry goes with its removed directory",
    );
    assert.equal((await verify(r, { deep: true })).ok, true);
    r.close();
  });

  it("refuses hard links to anything but an earlier regular file", async () => {
    const w = await Writer.create(place());
    await w.addDirectory("d");
    await assert.rejects(() => w.addHardlink("x", "d"), { code: "EINVAL" });
    await assert.rejects(() => w.addHardlink("x", "nope"), { code: "EINVAL" });
    assert.throws(() => w.addSpecial("s", { mode: 0o100644 }), { code: "EINVAL" });
    await w.abort();
  });
});

describe("renamed files keep their objects", () => {
  /** Index position → payload offset, object offset and object name of every file. */
  function placement(r: Reader): Map<string, { payload: number; object: number; name: string }> {
    const out = new Map<string, { payload: number; object: number; name: string }>();
    for (const e of r.entries()) {
      if (e.type !== "file") continue;
      out.set(e.path, {
        payload: r.payloadRange(e.index).offset,
        object: e.objectOffset,
        name: r.objectName(e.index),
      });
    }
    return out;
  }

  async function checked(file: string, opts: { password?: string; commit?: number } = {}): Promise<Reader> {
    const r = await Reader.open(file, opts);
    for (const deep of [false, true]) {
      const rep = await verify(r, { deep });
      assert.deepEqual(rep.problems, [], `verify${deep ? " --deep" : ""}`);
    }
    return r;
  }

  for (const compression of ["none", "zstd"] as const) {
    it(`a renamed ${compression} file is carried: same object, its old name recorded`, async () => {
      const file = place();
      await base(file, { compression });
      const r0 = await Reader.open(file);
      const was = placement(r0);
      const content = await r0.readFile("docs/a.txt");
      r0.close();
      const size0 = fs.statSync(file).size;
      const c = await Container.openForUpdate(file);
      c.rename("docs/a.txt", "renamed.txt");
      const res = await c.commit();
      c.close();
      assert.equal(res.written, 0, "no object written");
      assert.equal(res.moved, 1);
      assert.equal(res.carried, 4);
      const r = await checked(file);
      const now = placement(r);
      assert.equal(now.get("renamed.txt")?.payload, was.get("docs/a.txt")?.payload, "the old payload offset");
      assert.equal(now.get("renamed.txt")?.name, "docs/a.txt");
      assert.equal(now.get("b.bin")?.name, "b.bin");
      assert.ok((await r.readFile("renamed.txt")).equals(content));
      assert.equal(r.stat("renamed.txt").storedSize, r.payloadRange(r.find("renamed.txt")).storedSize);
      assert.deepEqual(
        r.extension.objectNames?.map((o) => [o.entry, o.name.toString()]),
        [[r.find("renamed.txt"), "docs/a.txt"]],
      );
      assert.equal(res.bytesAdded, r.footer.indexSize + FOOTER_SIZE, "only an index and a footer appended");
      assert.equal(fs.statSync(file).size, size0 + res.bytesAdded);
      r.close();
      referenceOpens(file);
    });
  }

  it("a renamed directory tree: files carried, directories written anew", async () => {
    const file = place();
    const w = await Writer.create(file, { compression: "zstd" });
    await w.addDirectory("top", { mode: 0o750 });
    await w.addDirectory("top/sub");
    for (let k = 0; k < 6; k++) await w.addFile(`top/sub/f${k}`, randomBytes(700 + k, k));
    await w.addFile("top/x.txt", Buffer.from("x ".repeat(100)));
    await w.addSymlink("top/ln", "x.txt");
    await w.addFile("stay", Buffer.from("stays"));
    await w.finish();
    const r0 = await Reader.open(file);
    const was = placement(r0);
    const before = await tree(r0);
    r0.close();
    const c = await Container.openForUpdate(file);
    c.rename("top", "moved");
    c.mkdir("nest");
    c.rename("moved", "nest/moved");
    const res = await c.commit();
    c.close();
    assert.equal(res.moved, 7, "every file under the directory");
    assert.equal(res.written, 4, "two directories and a symlink moved, one directory made");
    const r = await checked(file);
    const now = placement(r);
    for (const [p, where] of was) {
      if (p === "stay") continue;
      const q = `nest/moved/${p.slice("top/".length)}`;
      assert.equal(now.get(q)?.payload, where.payload, `${q} kept its payload`);
      assert.equal(now.get(q)?.name, p, `${q} names its object '${p}'`);
    }
    const after = await tree(r);
    for (const [p, v] of before) {
      const q = p.startsWith("top") ? `nest/moved${p.slice(3)}` : p;
      assert.equal(after.get(q)?.split(" ").slice(1).join(" "), v.split(" ").slice(1).join(" "), q);
    }
    r.close();
    referenceOpens(file);
  });

  it("a file moved twice keeps its first name; moved back, it needs no name", async () => {
    const file = place();
    await base(file);
    const c = await Container.openForUpdate(file);
    c.rename("b.bin", "one.bin");
    c.rename("one.bin", "docs/two.bin");
    await c.commit();
    let r = await checked(file);
    assert.equal(r.objectName(r.find("docs/two.bin")), "b.bin");
    r.close();
    c.rename("docs/two.bin", "three.bin");
    assert.equal((await c.commit()).moved, 1);
    r = await checked(file);
    assert.equal(r.objectName(r.find("three.bin")), "b.bin", "the original name, not the previous one");
    r.close();
    c.chmod("three.bin", 0o600);
    await c.addFile("new.txt", Buffer.from("n"));
    await c.commit();
    r = await checked(file);
    assert.equal(r.objectName(r.find("three.bin")), "b.bin", "carried by commits that do not move it");
    r.close();
    c.rename("three.bin", "b.bin");
    await c.commit();
    c.close();
    r = await checked(file);
    assert.equal(r.extension.objectNames, undefined, "back under its object's name");
    assert.ok((await r.readFile("b.bin")).equals(randomBytes(5000, 1)));
    for (let n = 1; n <= r.commit; n++) {
      const old = await checked(file, { commit: n });
      old.close();
    }
    r.close();
  });

  it("a renamed file whose content then changes gets a new object and no recorded name", async () => {
    const file = place();
    await base(file);
    const c = await Container.openForUpdate(file);
    c.rename("b.bin", "c.bin");
    await c.addFile("c.bin", Buffer.from("changed"));
    const res = await c.commit();
    c.close();
    assert.equal(res.moved, 0);
    assert.equal(res.written, 1);
    const r = await checked(file);
    assert.equal(r.extension.objectNames, undefined);
    assert.equal(r.objectName(r.find("c.bin")), "c.bin");
    assert.equal((await r.readFile("c.bin")).toString(), "changed");
    r.close();
  });

  it("hard links: a renamed link or target becomes a file of its own", async () => {
    for (const moving of ["bin/alias", "bin/tool"]) {
      const file = place();
      const w = await Writer.create(file);
      const tool = randomBytes(3000, 9);
      await w.addFile("bin/tool", tool, { mode: 0o755 });
      await w.addHardlink("bin/alias", "bin/tool");
      await w.finish();
      const r0 = await Reader.open(file);
      const shared = r0.stat("bin/tool").objectOffset;
      r0.close();
      const c = await Container.openForUpdate(file);
      c.rename(moving, "moved");
      const res = await c.commit();
      c.close();
      assert.equal(res.moved, 0, `${moving}: a shared object is not carried under another name`);
      const r = await checked(file);
      const stay = moving === "bin/alias" ? "bin/tool" : "bin/alias";
      assert.ok((await r.readFile("moved")).equals(tool));
      assert.ok((await r.readFile(stay)).equals(tool));
      assert.equal(r.hardlinkTarget(r.find("moved")), -1);
      assert.equal(r.hardlinkTarget(r.find(stay)), -1);
      assert.equal(r.extension.objectNames, undefined);
      assert.notEqual(r.stat("moved").objectOffset, shared, "the moved name is a new object");
      if (moving === "bin/alias") assert.equal(r.stat("bin/tool").objectOffset, shared, "the target stays");
      r.close();
      referenceOpens(file);
    }
  });

  it("encrypted files are still re-encrypted under their new path", async () => {
    const file = place();
    await base(file, { password: "pw", compression: "zstd" });
    const r0 = await Reader.open(file, { password: "pw" });
    const was = r0.stat("docs/a.txt").objectOffset;
    r0.close();
    const c = await Container.openForUpdate(file, { password: "pw" });
    c.rename("docs", "papers");
    const res = await c.commit();
    c.close();
    assert.equal(res.moved, 0);
    assert.equal(res.written, 2);
    const r = await checked(file, { password: "pw" });
    assert.notEqual(r.stat("papers/a.txt").objectOffset, was);
    assert.equal(r.objectName(r.find("papers/a.txt")), "papers/a.txt");
    assert.equal(r.extension.objectNames, undefined);
    assert.equal((await r.readFile("papers/a.txt")).toString(), "alpha ".repeat(50));
    r.close();
  });

  it("compaction writes objects under their current names (with history: shared objects keep theirs)", async () => {
    const file = place();
    await base(file, { compression: "zstd" });
    const c = await Container.openForUpdate(file);
    c.rename("docs", "papers");
    await c.commit();
    c.rename("papers/a.txt", "a.txt");
    c.rename("b.bin", "papers/b.bin");
    await c.addFile("new.txt", Buffer.from("new"));
    await c.commit();
    c.close();
    const digests: string[] = [];
    for (let n = 1; n <= 3; n++) {
      const r = await checked(file, { commit: n });
      digests.push((await rootDigest(r)).digest);
      r.close();
    }
    const kept = path.join(path.dirname(file), "kept.bfc");
    await compact(file, { output: kept, keepHistory: true });
    for (let n = 1; n <= 3; n++) {
      const r = await checked(kept, { commit: n });
      assert.equal((await rootDigest(r)).digest, digests[n - 1], `commit ${n}`);
      if (n === 3) {
        assert.equal(r.objectName(r.find("a.txt")), "docs/a.txt", "written once, by commit 1");
        assert.equal(r.objectName(r.find("papers/b.bin")), "b.bin");
        assert.equal(r.objectName(r.find("new.txt")), "new.txt");
      }
      r.close();
    }
    referenceOpens(kept);
    await compact(file);
    const r = await checked(file);
    assert.equal(r.commit, 1);
    assert.equal((await rootDigest(r)).digest, digests[2]);
    assert.equal(r.extension.objectNames, undefined, "every object under its current name");
    for (const e of r.entries()) assert.equal(r.objectName(e.index), e.path);
    r.close();
    referenceOpens(file);
  });

  it("verify checks the object name: the recorded one, or the path when none is recorded", async () => {
    for (const recorded of [undefined, "docs/other.txt"]) {
      const file = place();
      await base(file);
      const r0 = await Reader.open(file);
      const fd = fs.openSync(file, "r+");
      // A commit that carries docs/a.txt under a new path with a wrong (or no) object name.
      const w = Writer.forCommit(file, { fd, start: r0.end, key: null });
      for (let i = 0; i < r0.count; i++) {
        const rec = r0.index.record(i);
        if (r0.index.path(i) === "docs/a.txt")
          w.addRecord({ ...rec, pathBytes: Buffer.from("z.txt") }, recorded);
        else w.addRecord(rec);
      }
      await w.finish();
      fs.closeSync(fd);
      r0.close();
      const r = await Reader.open(file);
      for (const deep of [false, true]) {
        const rep = await verify(r, { deep });
        assert.deepEqual(
          rep.problems.map((p) => [p.path, p.reason]),
          [["z.txt", "BAD_OBJECT"]],
          `${recorded ?? "no name"}, deep ${deep}`,
        );
      }
      await assert.rejects(() => r.readFile("z.txt"), { reason: "BAD_OBJECT" });
      r.close();
    }
  });

  it("an object-name record for an entry beyond the index or a hard link is corruption", async () => {
    const file = place();
    const w = await Writer.create(file);
    await w.addFile("a", Buffer.from("a"));
    await w.addHardlink("b", "a");
    w.setExtension({ objectNames: [{ entry: 0, name: Buffer.from("x") }] });
    await w.finish();
    // The writer recomputes the record from its entries: nothing was renamed, so there is none.
    let r = await Reader.open(file);
    assert.equal(r.extension.objectNames, undefined);
    r.close();
    for (const [entry, why] of [
      [5, "beyond the index"],
      [1, "a hard link"],
    ] as const) {
      const bytes = fs.readFileSync(file);
      const footer = decodeFooter(bytes.subarray(bytes.length - FOOTER_SIZE), bytes.length);
      const blob = bytes.subarray(footer.indexOffset, footer.indexOffset + footer.indexSize);
      const ix = IndexTable.parse(Buffer.from(blob), footer.indexOffset);
      const { decodeExtension, encodeExtension } = await import("../../src/format/extension.ts");
      const { encodeIndex } = await import("../../src/format/index-table.ts");
      const { encodeFooter } = await import("../../src/format/footer.ts");
      const ext = decodeExtension(ix.extension());
      ext.objectNames = [{ entry, name: Buffer.from("a") }];
      const records = Array.from({ length: ix.count }, (_, i) => ix.record(i));
      const nb = encodeIndex(records, encodeExtension(ext));
      const out = Buffer.concat([
        bytes.subarray(0, footer.indexOffset),
        nb,
        encodeFooter({ indexSize: nb.length, indexCrc: crc32c(nb), indexOffset: footer.indexOffset }),
      ]);
      const bad = path.join(path.dirname(file), `bad-${entry}.bfc`);
      fs.writeFileSync(bad, out);
      r = await Reader.open(bad);
      await assert.rejects(() => r.readFile("a"), { reason: "BAD_INDEX" }, why);
      r.close();
    }
  });
});
