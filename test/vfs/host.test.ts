/**
 * The host filesystem type, driven directly (without the kernel): stats and listings match the OS,
 * nothing non-canonical or symlinked ever reaches the OS outside the root, read-only means read-only.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { BfcError } from "../../src/errors.ts";
import type { FileSystem } from "../../src/vfs/filesystem.ts";
import { hostType } from "../../src/vfs/types/host.ts";
import { tempDir, writeTree } from "../helpers.ts";

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT } = fs.constants;

const BASE = tempDir("bfc-host-");

/** A fresh root with a file, a directory, and links inside, outside and nowhere. */
function fixture(): { root: string; outside: string; vfs: FileSystem } {
  const base = fs.mkdtempSync(path.join(BASE, "f-"));
  const root = path.join(base, "root");
  const outside = path.join(base, "outside.txt");
  fs.writeFileSync(outside, "secret");
  writeTree(root, {
    "file.txt": "hello world",
    "dir/": "",
    "dir/inner.bin": Buffer.from([1, 2, 3]),
    "exec.sh": { mode: 0o755, data: "#!/bin/sh\n" },
    "link-rel": { link: "file.txt" },
    "link-abs": { link: "/etc/passwd" },
    "link-up": { link: "../outside.txt" },
    dangling: { link: "nowhere" },
  });
  return { root, outside, vfs: hostType.createSync!({ root }) };
}

const code = (c: string) => (e: unknown) => {
  assert.equal((e as NodeJS.ErrnoException).code, c, String(e));
  return true;
};

describe("host type: creation", () => {
  it("declares its name and capabilities; readonly is per instance", async () => {
    const { root } = fixture();
    assert.equal(hostType.name, "host");
    assert.deepEqual(hostType.capabilities, { readonly: false, symlinks: true, structuralLookup: false });
    const rw = await hostType.create({ root });
    assert.equal(rw.capabilities.readonly, false);
    assert.equal(rw.capabilities.structuralLookup, false);
    const ro = await hostType.create({ root, readonly: true });
    assert.equal(ro.capabilities.readonly, true);
  });

  it("refuses a missing root (ENOENT) and a file as root (ENOTDIR) with a BfcError", () => {
    const { root } = fixture();
    assert.throws(
      () => hostType.createSync!({ root: path.join(root, "missing") }),
      (e) => e instanceof BfcError && e.code === "ENOENT" && /does not exist/.test(e.message),
    );
    assert.throws(
      () => hostType.createSync!({ root: path.join(root, "file.txt") }),
      (e) => e instanceof BfcError && e.code === "ENOTDIR" && /not a directory/.test(e.message),
    );
    assert.throws(() => hostType.createSync!({ root: "" }), code("EINVAL"));
  });

  it("resolves a symlinked root once, at creation", () => {
    const { root } = fixture();
    const alias = path.join(path.dirname(root), "alias");
    fs.symlinkSync(root, alias);
    const vfs = hostType.createSync!({ root: alias });
    assert.equal(vfs.lstat("file.txt")?.size, 11);
    assert.equal(vfs.lstat("")?.ino, Number(fs.statSync(root, { bigint: true }).ino));
  });
});

describe("host type: metadata", () => {
  it("lstat matches fs.lstatSync for the root, files, directories and symlinks", () => {
    const { root, vfs } = fixture();
    for (const rel of [
      "",
      "file.txt",
      "dir",
      "dir/inner.bin",
      "exec.sh",
      "link-rel",
      "link-abs",
      "dangling",
    ]) {
      const st = vfs.lstat(rel)!;
      const os = fs.lstatSync(path.join(root, rel), { bigint: true });
      assert.equal(st.ino, Number(os.ino), rel);
      assert.equal(st.mode, Number(os.mode), rel);
      assert.equal(st.size, Number(os.size), rel);
      assert.equal(st.nlink, Number(os.nlink), rel);
      assert.equal(st.uid, Number(os.uid), rel);
      assert.equal(st.gid, Number(os.gid), rel);
      assert.equal(st.blocks, Number(os.blocks), rel);
      assert.equal(st.mtimeNs, os.mtimeNs, rel);
      assert.equal(st.atimeNs, os.atimeNs, rel);
      assert.equal(st.ctimeNs, os.ctimeNs, rel);
      assert.equal(st.birthtimeNs, os.birthtimeNs, rel);
      const plain = fs.lstatSync(path.join(root, rel));
      assert.ok(Math.abs(st.mtimeMs - plain.mtimeMs) < 1e-3, rel);
    }
    assert.equal(vfs.lstat("file.txt")!.type, "file");
    assert.equal(vfs.lstat("dir")!.type, "directory");
    assert.equal(vfs.lstat("link-rel")!.type, "symlink");
    assert.equal(vfs.lstat("exec.sh")!.mode & 0o777, 0o755);
  });

  it("lstat answers undefined for a missing entry and for a path beneath a file", () => {
    const { vfs } = fixture();
    assert.equal(vfs.lstat("missing"), undefined);
    assert.equal(vfs.lstat("dir/missing"), undefined);
    assert.equal(vfs.lstat("file.txt/x"), undefined);
  });

  it("readdir reports every kind", () => {
    const { vfs } = fixture();
    const entries = vfs.readdir("").sort((a, b) => (a.name < b.name ? -1 : 1));
    assert.deepEqual(entries, [
      { name: "dangling", type: "symlink" },
      { name: "dir", type: "directory" },
      { name: "exec.sh", type: "file" },
      { name: "file.txt", type: "file" },
      { name: "link-abs", type: "symlink" },
      { name: "link-rel", type: "symlink" },
      { name: "link-up", type: "symlink" },
    ]);
    assert.deepEqual(vfs.readdir("dir"), [{ name: "inner.bin", type: "file" }]);
  });

  it("readlink returns the raw target, never resolved on the host", () => {
    const { vfs } = fixture();
    assert.equal(vfs.readlink("link-rel"), "file.txt");
    assert.equal(vfs.readlink("link-abs"), "/etc/passwd");
    assert.equal(vfs.readlink("link-up"), "../outside.txt");
    assert.equal(vfs.readlink("dangling"), "nowhere");
  });

  it("statfs reports the host filesystem", () => {
    const { root, vfs } = fixture();
    const s = vfs.statfs!();
    const os = fs.statfsSync(root);
    assert.equal(s.type, os.type);
    assert.equal(s.bsize, os.bsize);
    assert.equal(s.blocks, os.blocks);
  });
});

describe("host type: confinement", () => {
  const bad = ["../x", "..", "/etc", "/etc/passwd", "a/../b", "a//b", ".", "./a", "a/.", "dir/", "a\0b"];

  it("rejects every non-canonical path with EINVAL before touching the OS", () => {
    const { vfs } = fixture();
    const calls: [string, (p: string) => unknown][] = [
      ["lstat", (p) => vfs.lstat(p)],
      ["readdir", (p) => vfs.readdir(p)],
      ["readlink", (p) => vfs.readlink(p)],
      ["open", (p) => vfs.open(p, O_RDONLY, 0)],
      ["readFile", (p) => vfs.readFile!(p)],
      ["mkdir", (p) => vfs.mkdir!(p, 0o755)],
      ["rmdir", (p) => vfs.rmdir!(p)],
      ["unlink", (p) => vfs.unlink!(p)],
      ["rename from", (p) => vfs.rename!(p, "renamed")],
      ["rename to", (p) => vfs.rename!("file.txt", p)],
      ["symlink", (p) => vfs.symlink!("file.txt", p)],
      ["chmod", (p) => vfs.chmod!(p, 0o600)],
      ["utimes", (p) => vfs.utimes!(p, 0n, 0n)],
      ["truncate", (p) => vfs.truncate!(p, 0)],
    ];
    for (const [name, call] of calls) {
      for (const p of bad) assert.throws(() => call(p), code("EINVAL"), `${name}(${JSON.stringify(p)})`);
    }
    assert.ok(fs.existsSync(path.join(fixture().root, "file.txt")));
  });

  it("rejects non-canonical paths in the async calls too", async () => {
    const { vfs } = fixture();
    for (const p of bad) {
      await assert.rejects(async () => vfs.openAsync!(p, O_RDONLY, 0), code("EINVAL"));
      await assert.rejects(async () => vfs.readFileAsync!(p), code("EINVAL"));
    }
  });

  it("open, readFile and truncate refuse a final symlink (ELOOP) instead of following it", async () => {
    const { root, outside, vfs } = fixture();
    for (const link of ["link-rel", "link-up", "link-abs"]) {
      assert.throws(() => vfs.open(link, O_RDONLY, 0), code("ELOOP"), link);
      assert.throws(() => vfs.open(link, O_RDWR, 0), code("ELOOP"), link);
      assert.throws(() => vfs.readFile!(link), code("ELOOP"), link);
      await assert.rejects(vfs.openAsync!(link, O_RDONLY, 0), code("ELOOP"));
      await assert.rejects(vfs.readFileAsync!(link), code("ELOOP"));
    }
    assert.throws(() => vfs.truncate!("link-up", 0), code("ELOOP"));
    assert.equal(fs.readFileSync(outside, "utf8"), "secret");
    // O_CREAT through a dangling link must not create its target either.
    assert.throws(() => vfs.open("dangling", O_CREAT | O_WRONLY, 0o644), code("ELOOP"));
    assert.equal(fs.existsSync(path.join(root, "nowhere")), false);
  });

  it("chmod refuses a symlink; utimes changes the link itself, not its target", () => {
    const { outside, vfs } = fixture();
    const before = fs.statSync(outside, { bigint: true });
    assert.throws(() => vfs.chmod!("link-up", 0o777), code("ENOTSUP"));
    vfs.utimes!("link-up", 1_000_000_000n, 2_000_000_000n);
    const after = fs.statSync(outside, { bigint: true });
    assert.equal(after.mode, before.mode);
    assert.equal(after.mtimeNs, before.mtimeNs);
    assert.equal(vfs.lstat("link-up")!.mtimeNs, 2_000_000_000n);
    assert.equal(vfs.lstat("link-up")!.atimeNs, 1_000_000_000n);
  });

  it("open refuses a directory (EISDIR)", async () => {
    const { vfs } = fixture();
    assert.throws(() => vfs.open("dir", O_RDONLY, 0), code("EISDIR"));
    assert.throws(() => vfs.open("", O_RDONLY, 0), code("EISDIR"));
    await assert.rejects(vfs.openAsync!("dir", O_RDONLY, 0), code("EISDIR"));
  });
});

describe("host type: read-only instances", () => {
  it("throw EROFS from every mutation and change nothing", () => {
    const { root } = fixture();
    const vfs = hostType.createSync!({ root, readonly: true });
    const snapshot = () =>
      fs
        .readdirSync(root, { recursive: true })
        .map(String)
        .sort()
        .map((p) => `${p}:${fs.lstatSync(path.join(root, p)).mode}:${fs.lstatSync(path.join(root, p)).size}`);
    const before = snapshot();
    const mutations: [string, () => unknown][] = [
      ["mkdir", () => vfs.mkdir!("new", 0o755)],
      ["rmdir", () => vfs.rmdir!("dir")],
      ["unlink", () => vfs.unlink!("file.txt")],
      ["rename", () => vfs.rename!("file.txt", "moved")],
      ["symlink", () => vfs.symlink!("file.txt", "newlink")],
      ["chmod", () => vfs.chmod!("file.txt", 0o600)],
      ["utimes", () => vfs.utimes!("file.txt", 0n, 0n)],
      ["truncate", () => vfs.truncate!("file.txt", 0)],
      ["open O_WRONLY", () => vfs.open("file.txt", O_WRONLY, 0)],
      ["open O_RDWR", () => vfs.open("file.txt", O_RDWR, 0)],
      ["open O_CREAT", () => vfs.open("created", O_CREAT | O_WRONLY, 0o644)],
    ];
    for (const [name, call] of mutations) assert.throws(call, code("EROFS"), name);
    const h = vfs.open("file.txt", O_RDONLY, 0);
    assert.throws(() => h.write!(Buffer.from("x"), 0, 1, 0), code("EROFS"));
    assert.throws(() => h.truncate!(0), code("EROFS"));
    assert.throws(() => h.chmod!(0o600), code("EROFS"));
    assert.throws(() => h.utimes!(0n, 0n), code("EROFS"));
    const buf = Buffer.alloc(5);
    assert.equal(h.read(buf, 0, 5, 6), 5);
    assert.equal(buf.toString(), "world");
    h.close();
    assert.deepEqual(snapshot(), before);
  });
});

describe("host type: data and mutations", () => {
  it("writes round-trip through positioned sync and async calls", async () => {
    const { root, vfs } = fixture();
    const h = vfs.open("new.bin", O_CREAT | O_RDWR, 0o640);
    assert.equal(h.write!(Buffer.from("abcdef"), 0, 6, 0), 6);
    assert.equal(await h.writeAsync!(Buffer.from("XYZ"), 1, 2, 10), 2);
    const buf = Buffer.alloc(12, 0xff);
    assert.equal(h.read(buf, 0, 12, 0), 12);
    assert.deepEqual(buf, Buffer.from("abcdef\0\0\0\0YZ", "latin1"));
    const part = Buffer.alloc(4);
    assert.equal(await h.readAsync!(part, 1, 3, 2), 3);
    assert.deepEqual(part, Buffer.from([0, 0x63, 0x64, 0x65]));
    assert.equal(h.read(part, 0, 4, 100), 0);
    assert.equal(h.stat().size, 12);
    h.truncate!(4);
    h.chmod!(0o600);
    h.utimes!(1_500_000_000_123_456_000n, 1_600_000_000_654_321_000n);
    h.sync!();
    const st = h.stat();
    assert.equal(st.size, 4);
    assert.equal(st.mode & 0o777, 0o600);
    // futimes takes float seconds: a fraction of a microsecond is all that may be lost.
    const near = (a: bigint, b: bigint) => assert.ok(a - b < 1000n && b - a < 1000n, `${a} vs ${b}`);
    near(st.mtimeNs, 1_600_000_000_654_321_000n);
    near(st.atimeNs!, 1_500_000_000_123_456_000n);
    h.close();
    assert.throws(() => h.read(buf, 0, 1, 0), code("EBADF"));
    assert.throws(() => h.close(), code("EBADF"));
    assert.equal(fs.readFileSync(path.join(root, "new.bin"), "latin1"), "abcd");
    assert.deepEqual(vfs.readFile!("new.bin"), Buffer.from("abcd"));
    assert.deepEqual(await vfs.readFileAsync!("new.bin"), Buffer.from("abcd"));

    const a = await vfs.openAsync!("file.txt", O_RDONLY, 0);
    const b = Buffer.alloc(11);
    assert.equal(await a.readAsync!(b, 0, 11, 0), 11);
    assert.equal(b.toString(), "hello world");
    await a.closeAsync!();
    await assert.rejects(a.closeAsync!(), code("EBADF"));
  });

  it("path mutations act on the host tree; OS errors keep their codes", () => {
    const { root, vfs } = fixture();
    vfs.mkdir!("made", 0o700);
    assert.equal(fs.statSync(path.join(root, "made")).mode & 0o777, 0o700 & ~process.umask());
    assert.throws(() => vfs.mkdir!("made", 0o700), code("EEXIST"));
    vfs.rename!("file.txt", "made/file.txt");
    assert.equal(fs.readFileSync(path.join(root, "made/file.txt"), "utf8"), "hello world");
    assert.throws(() => vfs.rmdir!("made"), code("ENOTEMPTY"));
    vfs.symlink!("/abs/target", "made/link");
    assert.equal(fs.readlinkSync(path.join(root, "made/link")), "/abs/target");
    vfs.chmod!("made/file.txt", 0o604);
    assert.equal(fs.statSync(path.join(root, "made/file.txt")).mode & 0o777, 0o604);
    vfs.utimes!("made/file.txt", 3_000_000_000n, 4_000_000_000n);
    assert.equal(fs.statSync(path.join(root, "made/file.txt"), { bigint: true }).mtimeNs, 4_000_000_000n);
    vfs.truncate!("made/file.txt", 5);
    assert.equal(fs.readFileSync(path.join(root, "made/file.txt"), "utf8"), "hello");
    assert.throws(() => vfs.unlink!("missing"), code("ENOENT"));
    vfs.unlink!("made/file.txt");
    vfs.unlink!("made/link");
    vfs.rmdir!("made");
    assert.equal(fs.existsSync(path.join(root, "made")), false);
    // unlink of a symlink removes the link, not what it points at.
    vfs.unlink!("link-up");
    assert.ok(fs.existsSync(path.join(path.dirname(root), "outside.txt")));
  });
});
