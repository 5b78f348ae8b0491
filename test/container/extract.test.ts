/**
 * Hostile extraction: containers crafted byte by byte (what our Writer refuses to write) must
 * never make extract write outside its destination, write through symlinks, clobber files
 * without `overwrite`, or leave partial files behind.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { S_IFMT } from "../../src/format/constants.ts";
import {
  type BfcError,
  type ExtractOptions,
  extract as extractAll,
  Reader,
  verify,
  Writer,
} from "../../src/index.ts";
import { type CraftEntry, type CraftOptions, content, craft } from "../craft.ts";
import { sampleContent, tempDir } from "../helpers.ts";

/**
 * Every test here runs once as it is and once (extract-threads.test.ts) with small files written
 * by extraction threads, which must keep every rule.
 */
const THREADS = Number(process.env.BFC_TEST_EXTRACT_THREADS ?? 0);
const extract = (r: Reader, dest: string, o: ExtractOptions = {}) =>
  extractAll(r, dest, { threads: THREADS, ...o });

const base = tempDir("bfc-extract-");
let seq = 0;

/** A sandbox: the destination, and an outside directory that must stay empty. */
function sandbox(): { dest: string; outside: string; box: string } {
  const box = path.join(base, String(seq++));
  const dest = path.join(box, "dest");
  const outside = path.join(box, "outside");
  fs.mkdirSync(outside, { recursive: true });
  return { dest, outside, box };
}

async function open(entries: CraftEntry[], opts: CraftOptions = {}, key?: Buffer): Promise<Reader> {
  const file = path.join(base, `c${seq++}.bfc`);
  fs.writeFileSync(file, craft(entries, opts).file);
  return Reader.open(file, key ? { key } : {});
}

function tree(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

describe("unsafe index paths", () => {
  const hostile = ["../x", "/abs", "a/../../x", "a//b", "./a", "a/..", "a/./b"];

  it("Reader.open rejects each of them (BAD_INDEX, naming the path)", async () => {
    for (const p of hostile) {
      const file = path.join(base, `open-${seq++}.bfc`);
      fs.writeFileSync(
        file,
        craft([
          { path: "ok", type: "file", data: "fine" },
          { path: p, type: "file", data: "evil" },
        ]).file,
      );
      await assert.rejects(Reader.open(file), (e: BfcError) => {
        assert.equal(e.reason, "BAD_INDEX");
        assert.ok(e.message.includes(`'${p}'`), e.message);
        return true;
      });
      assert.throws(() => Reader.openSync(file), { reason: "BAD_INDEX" });
    }
  });

  for (const p of hostile) {
    it(`${JSON.stringify(p)} is refused before any path is exposed, and extract writes nothing`, async () => {
      const { dest, outside, box } = sandbox();
      const named = (e: BfcError) => {
        assert.equal(e.reason, "BAD_INDEX");
        assert.ok(e.message.includes(`'${p}'`), e.message);
        return true;
      };
      let r: Reader;
      try {
        r = await open([
          { path: "ok", type: "file", data: "fine" },
          { path: p, type: "file", data: "evil" },
          { path: "zz", type: "dir" },
        ]);
      } catch (e) {
        named(e as BfcError); // rejected at open: fine too
        return;
      }
      assert.throws(() => [...r.entries()], named);
      assert.throws(() => [...r.list()], named);
      assert.throws(() => r.readdir(), named);
      assert.throws(() => r.stat("ok"), named);
      const rep = await verify(r, { deep: true });
      assert.equal(rep.ok, false);
      assert.equal(rep.problems[0].reason, "BAD_INDEX");
      await assert.rejects(extract(r, dest), named);
      await assert.rejects(extract(r, dest, { paths: ["ok"] }), named);
      assert.deepEqual(tree(outside), []);
      assert.deepEqual(tree(dest), []);
      assert.deepEqual(fs.readdirSync(box).sort(), fs.existsSync(dest) ? ["dest", "outside"] : ["outside"]);
      r.close();
    });
  }
});

describe("symlinks never redirect writes", () => {
  it("symlink 'a' → absolute outside dir, then file 'a/x': nothing outside, per-entry failure", async () => {
    for (const overwrite of [false, true]) {
      const { dest, outside } = sandbox();
      const r = await open([
        { path: "a", type: "symlink", data: outside },
        { path: "a/x", type: "file", data: "escaped?" },
        { path: "a/sub/y", type: "file", data: "deeper" },
        { path: "b", type: "symlink", data: "../outside" },
        { path: "b/z", type: "file", data: "relative escape?" },
        { path: "c", type: "file", data: "innocent" },
      ]);
      const rep = await extract(r, dest, { overwrite });
      assert.deepEqual(tree(outside), [], `overwrite=${overwrite}`);
      // The symlinks could not be created over the real directories the files needed.
      assert.deepEqual(rep.failed.map((f) => f.path).sort(), ["a", "b"]);
      for (const f of rep.failed) {
        assert.equal(f.error.name, "BfcError");
        assert.ok(f.error.code === "EEXIST" || f.error.reason === "UNSAFE_PATH", f.error.message);
      }
      assert.ok(!fs.lstatSync(path.join(dest, "a")).isSymbolicLink());
      assert.equal(fs.readFileSync(path.join(dest, "c"), "utf8"), "innocent");
      r.close();
    }
  });

  it("a symlink deeper in the tree, and a directory entry under it", async () => {
    const { dest, outside } = sandbox();
    const r = await open([
      { path: "d", type: "dir" },
      { path: "d/l", type: "symlink", data: outside },
      { path: "d/l/sub", type: "dir" },
      { path: "d/l/sub/f", type: "file", data: "x" },
    ]);
    const rep = await extract(r, dest);
    assert.deepEqual(tree(outside), []);
    assert.ok(rep.failed.length >= 1);
    r.close();
  });

  it("a destination that already holds a symlinked subdirectory is not written through", async () => {
    for (const overwrite of [false, true]) {
      const { dest, outside } = sandbox();
      fs.mkdirSync(dest);
      fs.symlinkSync(outside, path.join(dest, "sub"));
      const r = await open([
        { path: "sub/x", type: "file", data: "through the link?" },
        { path: "sub/deeper/y", type: "file", data: "y" },
        { path: "top", type: "file", data: "top" },
      ]);
      const rep = await extract(r, dest, { overwrite });
      assert.deepEqual(tree(outside), []);
      assert.deepEqual(rep.failed.map((f) => [f.path, f.error.reason]).sort(), [
        ["sub/deeper/y", "UNSAFE_PATH"],
        ["sub/x", "UNSAFE_PATH"],
      ]);
      assert.ok(fs.lstatSync(path.join(dest, "sub")).isSymbolicLink(), "the user's symlink is left alone");
      assert.equal(fs.readFileSync(path.join(dest, "top"), "utf8"), "top");
      r.close();
    }
  });

  it("a directory entry over an existing symlink: EEXIST, or replaced by a real directory with overwrite", async () => {
    for (const overwrite of [false, true]) {
      const { dest, outside } = sandbox();
      fs.mkdirSync(dest);
      fs.symlinkSync(outside, path.join(dest, "sub"));
      const r = await open([
        { path: "sub", type: "dir" },
        { path: "sub/x", type: "file", data: "x" },
      ]);
      const rep = await extract(r, dest, { overwrite });
      assert.deepEqual(tree(outside), []);
      if (overwrite) {
        assert.deepEqual(rep.failed, []);
        assert.ok(fs.lstatSync(path.join(dest, "sub")).isDirectory());
        assert.equal(fs.readFileSync(path.join(dest, "sub", "x"), "utf8"), "x");
      } else {
        assert.equal(rep.failed.find((f) => f.path === "sub")?.error.code, "EEXIST");
        assert.ok(fs.lstatSync(path.join(dest, "sub")).isSymbolicLink());
      }
      r.close();
    }
  });

  it("a file entry over an existing symlink to an outside file never writes to that file", async () => {
    for (const overwrite of [false, true]) {
      const { dest, outside } = sandbox();
      fs.mkdirSync(dest);
      const victim = path.join(outside, "victim.txt");
      fs.writeFileSync(victim, "precious");
      fs.symlinkSync(victim, path.join(dest, "f"));
      const r = await open([{ path: "f", type: "file", data: "payload" }]);
      const rep = await extract(r, dest, { overwrite });
      assert.equal(fs.readFileSync(victim, "utf8"), "precious");
      if (overwrite) {
        assert.deepEqual(rep.failed, []);
        assert.ok(fs.lstatSync(path.join(dest, "f")).isFile());
        assert.equal(fs.readFileSync(path.join(dest, "f"), "utf8"), "payload");
      } else {
        assert.equal(rep.failed[0].error.code, "EEXIST");
        assert.ok(fs.lstatSync(path.join(dest, "f")).isSymbolicLink());
      }
      r.close();
    }
  });

  it("symlink targets are recreated verbatim (absolute and '..' targets are not followed)", async () => {
    const { dest, outside } = sandbox();
    const r = await open([
      { path: "abs", type: "symlink", data: outside },
      { path: "up", type: "symlink", data: "../../../etc" },
    ]);
    const rep = await extract(r, dest);
    assert.deepEqual(rep.failed, []);
    assert.equal(fs.readlinkSync(path.join(dest, "abs")), outside);
    assert.equal(fs.readlinkSync(path.join(dest, "up")), "../../../etc");
    assert.deepEqual(tree(outside), []);
    r.close();
  });
});

describe("existing files and failures", () => {
  it("existing files are kept without overwrite (EEXIST) and replaced with it", async () => {
    const { dest } = sandbox();
    fs.mkdirSync(path.join(dest, "d"), { recursive: true });
    fs.writeFileSync(path.join(dest, "f"), "old f");
    fs.writeFileSync(path.join(dest, "d", "g"), "old g");
    fs.symlinkSync("old-target", path.join(dest, "l"));
    const entries: CraftEntry[] = [
      { path: "d", type: "dir", perm: 0o750 },
      { path: "d/g", type: "file", data: "new g", perm: 0o600, mtimeNs: 1_000_000_000_000_000_000n },
      { path: "f", type: "file", data: "new f" },
      { path: "l", type: "symlink", data: "new-target" },
      { path: "n", type: "file", data: "fresh" },
    ];
    const r = await open(entries);
    const rep = await extract(r, dest);
    assert.deepEqual(rep.failed.map((f) => [f.path, f.error.code, f.error.reason]).sort(), [
      ["d/g", "EEXIST", "ALREADY_EXISTS"],
      ["f", "EEXIST", "ALREADY_EXISTS"],
      ["l", "EEXIST", "ALREADY_EXISTS"],
    ]);
    assert.equal(fs.readFileSync(path.join(dest, "f"), "utf8"), "old f");
    assert.equal(fs.readFileSync(path.join(dest, "d", "g"), "utf8"), "old g");
    assert.equal(fs.readlinkSync(path.join(dest, "l")), "old-target");
    assert.equal(fs.readFileSync(path.join(dest, "n"), "utf8"), "fresh");
    const rep2 = await extract(r, dest, { overwrite: true });
    assert.deepEqual(rep2.failed, []);
    assert.equal(fs.readFileSync(path.join(dest, "f"), "utf8"), "new f");
    assert.equal(fs.readFileSync(path.join(dest, "d", "g"), "utf8"), "new g");
    assert.equal(fs.statSync(path.join(dest, "d", "g")).mode & 0o7777, 0o600);
    assert.equal(
      fs.statSync(path.join(dest, "d", "g"), { bigint: true }).mtimeNs,
      1_000_000_000_000_000_000n,
    );
    assert.equal(fs.statSync(path.join(dest, "d")).mode & 0o7777, 0o750);
    assert.equal(fs.readlinkSync(path.join(dest, "l")), "new-target");
    assert.deepEqual(tree(dest), ["d", "d/g", "f", "l", "n"], "no temporary files");
    r.close();
  });

  it("a file and a directory never replace each other, even with overwrite", async () => {
    const { dest } = sandbox();
    fs.mkdirSync(path.join(dest, "isdir", "keep"), { recursive: true });
    fs.writeFileSync(path.join(dest, "isfile"), "file");
    const r = await open([
      { path: "isdir", type: "file", data: "x" },
      { path: "isfile/child", type: "file", data: "y" },
    ]);
    const rep = await extract(r, dest, { overwrite: true });
    assert.deepEqual(rep.failed.map((f) => f.path).sort(), ["isdir", "isfile/child"]);
    assert.ok(fs.existsSync(path.join(dest, "isdir", "keep")));
    assert.equal(fs.readFileSync(path.join(dest, "isfile"), "utf8"), "file");
    r.close();
  });

  it("a file that fails (corrupt content) leaves no partial file, small or streamed, new or replaced", async () => {
    const { dest } = sandbox();
    fs.mkdirSync(dest);
    fs.writeFileSync(path.join(dest, "replaced-bad"), "keep me");
    const big = content("text", 9 * 1024 * 1024, 7);
    const badBig = Buffer.from(big);
    badBig[badBig.length - 1] ^= 1;
    const entries: CraftEntry[] = [
      { path: "good", type: "file", data: "ok" },
      // Stored payloads that do not match the recorded checksum.
      { path: "bad", type: "file", data: "hello", payload: Buffer.from("hellp") },
      { path: "replaced-bad", type: "file", data: "hello", payload: Buffer.from("jello") },
      { path: "big-bad", type: "file", data: big, payload: badBig },
      {
        path: "zbad",
        type: "file",
        data: content("text", 5000, 8),
        compress: true,
        payload: Buffer.from("not zstd at all, really"),
      },
    ];
    const r = await open(entries);
    for (const overwrite of [false, true]) {
      const rep = await extract(r, dest, { overwrite });
      const failed = new Map(rep.failed.map((f) => [f.path, f.error.reason]));
      assert.equal(failed.get("bad"), "CRC_MISMATCH");
      assert.equal(failed.get("big-bad"), "CRC_MISMATCH");
      assert.ok(
        ["DECOMPRESS_FAILED", "SIZE_MISMATCH", "BAD_OBJECT"].includes(failed.get("zbad") ?? ""),
        failed.get("zbad"),
      );
      assert.equal(failed.get("replaced-bad"), overwrite ? "CRC_MISMATCH" : "ALREADY_EXISTS");
      assert.equal(fs.readFileSync(path.join(dest, "replaced-bad"), "utf8"), "keep me");
      assert.deepEqual(tree(dest), ["good", "replaced-bad"], "no partial or temporary files");
    }
    r.close();
  });

  it("encrypted files without a key fail per entry (KEY_REQUIRED) and leave nothing; with the key they extract", async () => {
    const key = Buffer.alloc(32, 0x77);
    const { dest } = sandbox();
    const entries: CraftEntry[] = [
      { path: "d", type: "dir" },
      { path: "d/secret", type: "file", data: "s3cret", encrypt: true },
      { path: "d/link", type: "symlink", data: "secret" },
    ];
    const r = await open(entries, { key });
    const rep = await extract(r, dest);
    assert.deepEqual(
      rep.failed.map((f) => [f.path, f.error.code, f.error.reason]),
      [["d/secret", "EACCES", "KEY_REQUIRED"]],
    );
    assert.deepEqual(tree(dest), ["d", "d/link"]);
    r.close();
    const file = path.join(base, `k${seq++}.bfc`);
    fs.writeFileSync(file, craft(entries, { key }).file);
    const r2 = await Reader.open(file, { key });
    const rep2 = await extract(r2, dest);
    assert.deepEqual(rep2.failed, []);
    assert.equal(fs.readFileSync(path.join(dest, "d", "secret"), "utf8"), "s3cret");
    r2.close();
  });

  it("entry types other than file, directory and symlink are reported, not created", async () => {
    const { dest } = sandbox();
    const r = await open([
      { path: "fifo", type: "dir", index: { mode: (0o010000 & S_IFMT) | 0o644 } /* S_IFIFO */ },
      { path: "ok", type: "file", data: "ok" },
    ]);
    const rep = await extract(r, dest);
    assert.deepEqual(
      rep.failed.map((f) => [f.path, f.error.reason]),
      [["fifo", "UNSUPPORTED"]],
    );
    assert.deepEqual(tree(dest), ["ok"]);
    r.close();
  });
});

describe("directories", () => {
  it("modes and mtimes are applied after the children: 0555 and 0500 trees extract fine", async () => {
    const { dest } = sandbox();
    const t = 1_111_111_111_000_000_000n;
    const r = await open([
      { path: "ro", type: "dir", perm: 0o555, mtimeNs: t },
      { path: "ro/a", type: "file", data: "a", perm: 0o444, mtimeNs: t + 1_000_000_000n },
      { path: "ro/inner", type: "dir", perm: 0o500, mtimeNs: t + 2_000_000_000n },
      { path: "ro/inner/b", type: "file", data: "b" },
      { path: "ro/inner/l", type: "symlink", data: "b" },
      { path: "sticky", type: "dir", perm: 0o1777, mtimeNs: t },
      { path: "sgid", type: "dir", perm: 0o2755, mtimeNs: t },
      { path: "sgid/x", type: "file", data: "x", perm: 0o4755 },
    ]);
    const rep = await extract(r, dest);
    assert.deepEqual(rep.failed, []);
    const st = (p: string) => fs.lstatSync(path.join(dest, p), { bigint: true });
    assert.equal(Number(st("ro").mode) & 0o7777, 0o555);
    assert.equal(Number(st("ro/inner").mode) & 0o7777, 0o500);
    assert.equal(Number(st("sticky").mode) & 0o7777, 0o1777);
    assert.equal(Number(st("sgid").mode) & 0o7777, 0o2755);
    if (process.getuid?.() === 0) assert.equal(Number(st("sgid/x").mode) & 0o7777, 0o4755);
    assert.equal(st("ro").mtimeNs, t, "directory mtime survives its children being written");
    assert.equal(st("ro/inner").mtimeNs, t + 2_000_000_000n);
    assert.equal(st("ro/a").mtimeNs, t + 1_000_000_000n);
    assert.equal(fs.readFileSync(path.join(dest, "ro/inner/b"), "utf8"), "b");
    assert.equal(fs.readlinkSync(path.join(dest, "ro/inner/l")), "b");
    r.close();
    for (const d of ["ro/inner", "ro"]) fs.chmodSync(path.join(dest, d), 0o755); // let cleanup remove it
  });

  it("implicit parent directories are created; the filter extracts a subtree only", async () => {
    const { dest } = sandbox();
    const r = await open([
      { path: "x/y/z", type: "file", data: "deep" },
      { path: "x/w", type: "file", data: "w" },
      { path: "other", type: "file", data: "o" },
    ]);
    const rep = await extract(r, dest, { paths: ["x/y"] });
    assert.deepEqual(rep.failed, []);
    assert.equal(rep.matched, 1);
    assert.deepEqual(tree(dest), ["x", "x/y", "x/y/z"]);
    r.close();
  });

  it("restores mtimes to within a microsecond (Node sets file times as doubles of seconds)", async () => {
    const { dest } = sandbox();
    const ns = 1_704_164_645_123_456_789n;
    const r = await open([
      { path: "f", type: "file", data: "x", mtimeNs: ns },
      { path: "d", type: "dir", mtimeNs: ns },
    ]);
    await extract(r, dest);
    for (const name of ["f", "d"]) {
      const got = fs.statSync(path.join(dest, name), { bigint: true }).mtimeNs;
      const diff = got > ns ? got - ns : ns - got;
      assert.ok(diff < 1000n, `${name}: ${got} vs ${ns}`);
    }
    r.close();
  });
});

describe("file permissions", () => {
  const perms = [0o644, 0o755, 0o600, 0o640, 0o444, 0o400, 0o000, 0o777, 0o666, 0o4755, 0o2750, 0o1644];
  const entries = (): CraftEntry[] =>
    perms.map((perm, k) => ({
      path: `f${perm.toString(8)}`,
      type: "file" as const,
      data: `content ${k}`,
      perm,
      mtimeNs: 1_500_000_000_000_000_000n + BigInt(k) * 1_000_000_000n,
    }));

  // Files are created with their permissions when the umask leaves them whole and chmod-ed
  // otherwise; either way the result is the recorded mode (setuid/setgid need root to keep).
  for (const umask of [0o022, 0o077, 0o000, 0o777]) {
    it(`every mode is restored exactly under umask ${umask.toString(8).padStart(3, "0")}`, async () => {
      const { dest } = sandbox();
      const r = await open(entries());
      const old = process.umask(umask);
      let rep: Awaited<ReturnType<typeof extract>>;
      try {
        rep = await extract(r, dest);
      } finally {
        process.umask(old);
      }
      assert.deepEqual(rep.failed, []);
      assert.equal(rep.extracted, perms.length);
      for (const [k, perm] of perms.entries()) {
        const name = `f${perm.toString(8)}`;
        const st = fs.lstatSync(path.join(dest, name), { bigint: true });
        if (process.getuid?.() === 0 || (perm & 0o6000) === 0)
          assert.equal(Number(st.mode) & 0o7777, perm, `${name} under umask ${umask.toString(8)}`);
        assert.equal(st.mtimeNs, 1_500_000_000_000_000_000n + BigInt(k) * 1_000_000_000n, name);
        assert.equal(st.size, BigInt(`content ${k}`.length), name);
      }
      // Root reads anything; others only what they may (0o000 and friends) once made readable.
      for (const perm of perms) fs.chmodSync(path.join(dest, `f${perm.toString(8)}`), 0o644);
      for (const [k, perm] of perms.entries())
        assert.equal(fs.readFileSync(path.join(dest, `f${perm.toString(8)}`), "utf8"), `content ${k}`);
      r.close();
    });
  }

  it("a replaced file (overwrite) gets the recorded mode, not the old file's", async () => {
    const { dest } = sandbox();
    fs.mkdirSync(dest, { recursive: true });
    fs.writeFileSync(path.join(dest, "f"), "old content that is longer", { mode: 0o666 });
    fs.chmodSync(path.join(dest, "f"), 0o666);
    const r = await open([{ path: "f", type: "file", data: "new", perm: 0o640 }]);
    const rep = await extract(r, dest, { overwrite: true });
    assert.deepEqual(rep.failed, []);
    assert.equal(fs.statSync(path.join(dest, "f")).mode & 0o7777, 0o640);
    assert.equal(fs.readFileSync(path.join(dest, "f"), "utf8"), "new");
    r.close();
  });
});

describe("pre-selected entries (ExtractOptions.entries)", () => {
  it("exactly the given entries are extracted, the filter paths then select special entries only", async () => {
    const { dest } = sandbox();
    const r = await open([
      { path: "keep", type: "dir" },
      { path: "keep/a", type: "file", data: "a" },
      { path: "keep/l", type: "symlink", data: "a" },
      { path: "skip", type: "dir" },
      { path: "skip/b", type: "file", data: "b" },
    ]);
    const chosen = [...r.list("keep")];
    const seen: string[] = [];
    const rep = await extract(r, dest, { entries: chosen, onEntry: (e) => seen.push(e.path) });
    assert.deepEqual(rep.failed, []);
    assert.equal(rep.matched, 3);
    assert.deepEqual(tree(dest), ["keep", "keep/a", "keep/l"]);
    assert.deepEqual(seen, ["keep", "keep/a", "keep/l"]);
    r.close();
  });
});

describe("batched small-file reads (Reader.readFilesSync)", () => {
  const text = (n: number) =>
    Buffer.from(`line ${n}: the quick brown fox jumps over the lazy dog\n`.repeat(20 + (n % 7)));

  it("objects written out of index order and a corrupted frame among many: exactly that file fails", async () => {
    const dir = tempDir();
    const file = path.join(dir, "many.bfc");
    const w = await Writer.create(file, { compression: "zstd" });
    // Reverse order: the index sorts them, so objects are not back to back in index order.
    for (let n = 299; n >= 0; n--) await w.addFile(`d/f${String(n).padStart(3, "0")}.txt`, text(n));
    await w.addFile("d/plain.bin", Buffer.from([1, 2, 3]));
    await w.finish();
    let r = await Reader.open(file);
    const victim = r.stat("d/f150.txt");
    assert.equal(victim.compression, "zstd");
    r.close();
    const bytes = fs.readFileSync(file);
    bytes[victim.objectOffset + victim.objectSize - 3] ^= 0x55;
    fs.writeFileSync(file, bytes);
    r = await Reader.open(file);
    const out = path.join(dir, "out");
    const rep = await extract(r, out);
    assert.deepEqual(
      rep.failed.map((f) => f.path),
      ["d/f150.txt"],
    );
    assert.ok(["CRC_MISMATCH", "DECOMPRESS_FAILED", "SIZE_MISMATCH"].includes(rep.failed[0].error.reason));
    for (let n = 0; n < 300; n++) {
      const p = path.join(out, "d", `f${String(n).padStart(3, "0")}.txt`);
      if (n === 150) assert.equal(fs.existsSync(p), false);
      else assert.deepEqual(fs.readFileSync(p), text(n), p);
    }
    assert.deepEqual(fs.readFileSync(path.join(out, "d", "plain.bin")), Buffer.from([1, 2, 3]));
    r.close();
  });

  it("contents land in the caller's buffers while they have room, fresh memory after; extraction of MiB files is exact", async () => {
    const dir = tempDir();
    const MiB = 1024 * 1024;
    const sizes = [3 * MiB, 300_000, 2 * MiB + 5, 1, 1024 * 1024, 7 * MiB, 2 * MiB];
    const files = sizes.map((n, k) => sampleContent(k % 3 === 2 ? "random" : "text", n, k));
    for (const compression of ["zstd", "none"] as const) {
      const file = path.join(dir, `${compression}.bfc`);
      const w = await Writer.create(file, { compression });
      for (const [k, data] of files.entries()) await w.addFile(`m/f${k}`, data);
      await w.finish();
      const r = await Reader.open(file);
      const ids = files.map((_, k) => r.find(`m/f${k}`));
      const scratch = Buffer.alloc(4 * MiB);
      const decoded = Buffer.alloc(4 * MiB);
      const got = r.readFilesSync(ids, scratch, decoded);
      let decodedUsed = 0;
      got.forEach((g, k) => {
        assert.ok(Buffer.isBuffer(g) && g.equals(files[k] as Buffer), `f${k}`);
        const e = r.stat(`m/f${k}`);
        const inDecoded = g.buffer === decoded.buffer;
        if (e.compression === "zstd") {
          // In order, while the rest of `decoded` holds it.
          const fits = decodedUsed + e.size <= decoded.length;
          assert.equal(inDecoded, fits, `f${k} in the decoded buffer`);
          if (fits) decodedUsed += e.size;
        } else assert.equal(inDecoded, false);
      });
      assert.ok(decodedUsed > 0 || compression === "none");
      const out = path.join(dir, `out-${compression}`);
      const rep = await extract(r, out, { preservePaths: true });
      assert.deepEqual(rep.failed, []);
      for (const [k, data] of files.entries()) {
        assert.ok(fs.readFileSync(path.join(out, "m", `f${k}`)).equals(data), `f${k}`);
      }
      r.close();
    }
  });
});
