/**
 * The memory filesystem type, driven directly (without the kernel): the POSIX errors it raises
 * itself, file contents against a plain Buffer model, timestamps, link counts, unlinked-but-open
 * files, and the umask.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { FileHandle, FileSystem, NodeStat } from "../../src/vfs/filesystem.ts";
import { MEMORY_MAX_FILE_SIZE, type MemoryOptions, memoryType } from "../../src/vfs/types/memory.ts";

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC } = fs.constants;

const mem = (options: MemoryOptions = {}): FileSystem => memoryType.createSync!(options);

const code = (c: string) => (e: unknown) => {
  assert.equal((e as NodeJS.ErrnoException).code, c, String(e));
  return true;
};

function writeFile(vfs: FileSystem, path: string, data: string | Buffer, mode = 0o666): void {
  const h = vfs.open(path, O_CREAT | O_WRONLY | O_TRUNC, mode);
  const b = Buffer.from(data);
  h.write!(b, 0, b.length, 0);
  h.close();
}

function readAll(h: FileHandle): Buffer {
  const out = Buffer.alloc(h.stat().size);
  assert.equal(h.read(out, 0, out.length, 0), out.length);
  return out;
}

/** A tree with a directory, a file and a symlink. */
function sample(): FileSystem {
  const vfs = mem();
  vfs.mkdir!("d", 0o755);
  vfs.mkdir!("d/sub", 0o755);
  writeFile(vfs, "d/f.txt", "data");
  writeFile(vfs, "top.txt", "top");
  vfs.mkdir!("empty", 0o755);
  vfs.symlink!("d/f.txt", "ln");
  return vfs;
}

describe("memory type: creation", () => {
  it("declares its name and capabilities and starts with a root of ino 1", async () => {
    assert.equal(memoryType.name, "memory");
    assert.deepEqual(memoryType.capabilities, { readonly: false, symlinks: true, structuralLookup: true });
    const vfs = await memoryType.create({});
    assert.deepEqual(vfs.capabilities, memoryType.capabilities);
    const root = vfs.lstat("")!;
    assert.equal(root.type, "directory");
    assert.equal(root.ino, 1);
    assert.equal(root.nlink, 2);
    assert.equal(root.mode, 0o040755);
    assert.equal(root.uid, process.getuid!());
    assert.equal(root.gid, process.getgid!());
    assert.deepEqual(vfs.readdir(""), []);
  });

  it("rejects bad options", () => {
    assert.throws(() => mem({ uid: -1 }), code("EINVAL"));
    assert.throws(() => mem({ gid: 1.5 }), code("EINVAL"));
    assert.throws(() => mem({ umask: 0o1000 }), code("EINVAL"));
    assert.throws(() => mem({ umask: "022" as unknown as number }), code("EINVAL"));
  });

  it("stamps new entries with the configured owner", () => {
    const vfs = mem({ uid: 1234, gid: 5678 });
    vfs.mkdir!("d", 0o777);
    writeFile(vfs, "f", "x");
    vfs.symlink!("f", "l");
    for (const p of ["", "d", "f", "l"]) {
      assert.equal(vfs.lstat(p)!.uid, 1234, p);
      assert.equal(vfs.lstat(p)!.gid, 5678, p);
    }
  });
});

describe("memory type: lookups", () => {
  it("lstat answers undefined for missing paths and paths beneath a file or symlink", () => {
    const vfs = sample();
    assert.equal(vfs.lstat("nope"), undefined);
    assert.equal(vfs.lstat("d/nope"), undefined);
    assert.equal(vfs.lstat("nope/deeper"), undefined);
    assert.equal(vfs.lstat("top.txt/x"), undefined);
    assert.equal(vfs.lstat("ln/x"), undefined);
  });

  it("stats each kind of node", () => {
    const vfs = sample();
    const f = vfs.lstat("d/f.txt")!;
    assert.equal(f.type, "file");
    assert.equal(f.mode, 0o100644);
    assert.equal(f.size, 4);
    assert.equal(f.blocks, 1);
    assert.equal(f.nlink, 1);
    const l = vfs.lstat("ln")!;
    assert.equal(l.type, "symlink");
    assert.equal(l.mode, 0o120777);
    assert.equal(l.size, Buffer.byteLength("d/f.txt"));
    assert.equal(vfs.readlink("ln"), "d/f.txt");
    assert.throws(() => vfs.readlink("top.txt"), code("EINVAL"));
    const inos = ["", "d", "d/sub", "d/f.txt", "top.txt", "empty", "ln"].map((p) => vfs.lstat(p)!.ino);
    assert.equal(new Set(inos).size, inos.length);
    for (const p of ["", "d", "d/f.txt", "ln"]) {
      const s = vfs.lstat(p)!;
      for (const k of ["atime", "mtime", "ctime", "birthtime"] as const) {
        const ns = s[`${k}Ns`]!;
        assert.equal(s[`${k}Ms`], Number(ns / 1_000_000n) + Number(ns % 1_000_000n) / 1e6, `${p} ${k}`);
      }
    }
    const nowMs = Date.now();
    assert.ok(Math.abs(f.mtimeMs - nowMs) < 5000);
  });

  it("readdir lists names in UTF-8 byte order with their types", () => {
    const vfs = mem();
    const names = ["b", "a", "Z", "é", "\u{1F600}", "\uFFFD", "\uE000", "aa", "_"];
    for (const n of names) writeFile(vfs, n, "");
    vfs.mkdir!("dir", 0o755);
    vfs.symlink!("a", "link");
    const expected = [...names, "dir", "link"].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    const got = vfs.readdir("");
    assert.deepEqual(
      got.map((e) => e.name),
      expected,
    );
    assert.equal(got.find((e) => e.name === "dir")!.type, "directory");
    assert.equal(got.find((e) => e.name === "link")!.type, "symlink");
    assert.equal(got.find((e) => e.name === "a")!.type, "file");
    assert.throws(() => vfs.readdir("a"), code("ENOTDIR"));
    assert.throws(() => vfs.readdir("missing"), code("ENOENT"));
  });

  it("rejects non-canonical paths with EINVAL", () => {
    const vfs = sample();
    for (const p of ["..", "../x", "/d", "d/../top.txt", "d//f.txt", ".", "d/.", "d/", "a\0b"]) {
      assert.throws(() => vfs.lstat(p), code("EINVAL"), JSON.stringify(p));
      assert.throws(() => vfs.mkdir!(p, 0o755), code("EINVAL"), JSON.stringify(p));
      assert.throws(() => vfs.open(p, O_CREAT | O_RDWR, 0o644), code("EINVAL"), JSON.stringify(p));
      assert.throws(() => vfs.symlink!("top.txt", p), code("EINVAL"), JSON.stringify(p));
      assert.throws(() => vfs.rename!("top.txt", p), code("EINVAL"), JSON.stringify(p));
      assert.throws(() => vfs.rename!(p, "moved"), code("EINVAL"), JSON.stringify(p));
      assert.throws(() => vfs.unlink!(p), code("EINVAL"), JSON.stringify(p));
      assert.throws(() => vfs.rmdir!(p), code("EINVAL"), JSON.stringify(p));
    }
    assert.deepEqual(
      vfs.readdir("").map((e) => e.name),
      ["d", "empty", "ln", "top.txt"],
    );
  });
});

describe("memory type: POSIX errors", () => {
  it("mkdir: EEXIST on any existing entry", () => {
    const vfs = sample();
    for (const p of ["", "d", "top.txt", "ln"]) assert.throws(() => vfs.mkdir!(p, 0o755), code("EEXIST"), p);
    assert.throws(() => vfs.mkdir!("nope/x", 0o755), code("ENOENT"));
    assert.throws(() => vfs.mkdir!("top.txt/x", 0o755), code("ENOTDIR"));
    assert.throws(() => vfs.mkdir!("x".repeat(256), 0o755), code("ENAMETOOLONG"));
  });

  it("rmdir: ENOTEMPTY, ENOTDIR, ENOENT", () => {
    const vfs = sample();
    assert.throws(() => vfs.rmdir!("d"), code("ENOTEMPTY"));
    assert.throws(() => vfs.rmdir!("top.txt"), code("ENOTDIR"));
    assert.throws(() => vfs.rmdir!("ln"), code("ENOTDIR"));
    assert.throws(() => vfs.rmdir!("nope"), code("ENOENT"));
    assert.throws(() => vfs.rmdir!(""), code("EPERM"));
    vfs.rmdir!("empty");
    assert.equal(vfs.lstat("empty"), undefined);
  });

  it("unlink: EISDIR for a directory, ENOENT when missing; removes files and links", () => {
    const vfs = sample();
    assert.throws(() => vfs.unlink!("d"), code("EISDIR"));
    assert.throws(() => vfs.unlink!("empty"), code("EISDIR"));
    assert.throws(() => vfs.unlink!("nope"), code("ENOENT"));
    vfs.unlink!("ln");
    assert.equal(vfs.lstat("ln"), undefined);
    assert.ok(vfs.lstat("d/f.txt"));
    vfs.unlink!("d/f.txt");
    assert.equal(vfs.lstat("d/f.txt"), undefined);
  });

  it("open: EISDIR, ENOENT without O_CREAT, EEXIST with O_CREAT|O_EXCL, ELOOP on a symlink", () => {
    const vfs = sample();
    assert.throws(() => vfs.open("d", O_RDONLY, 0), code("EISDIR"));
    assert.throws(() => vfs.open("", O_RDONLY, 0), code("EISDIR"));
    assert.throws(() => vfs.open("d", O_CREAT | O_RDWR, 0o644), code("EISDIR"));
    assert.throws(() => vfs.open("nope", O_RDONLY, 0), code("ENOENT"));
    assert.throws(() => vfs.open("nope/x", O_CREAT | O_RDWR, 0o644), code("ENOENT"));
    assert.throws(() => vfs.open("top.txt", O_CREAT | O_EXCL | O_RDWR, 0o644), code("EEXIST"));
    assert.throws(() => vfs.open("ln", O_RDONLY, 0), code("ELOOP"));
    assert.throws(() => vfs.readFile!("d"), code("EISDIR"));
    assert.throws(() => vfs.readFile!("nope"), code("ENOENT"));
  });

  it("symlink: EEXIST over any existing entry", () => {
    const vfs = sample();
    for (const p of ["", "d", "top.txt", "ln", "empty"]) {
      assert.throws(() => vfs.symlink!("x", p), code("EEXIST"), p);
    }
    assert.throws(() => vfs.symlink!("", "new"), code("ENOENT"));
  });

  it("rename: ENOENT, ENOTDIR, EISDIR, ENOTEMPTY, EINVAL, and same-node no-op", () => {
    const vfs = sample();
    assert.throws(() => vfs.rename!("nope", "x"), code("ENOENT"));
    assert.throws(() => vfs.rename!("top.txt", "nope/x"), code("ENOENT"));
    assert.throws(() => vfs.rename!("empty", "top.txt"), code("ENOTDIR"));
    assert.throws(() => vfs.rename!("empty", "ln"), code("ENOTDIR"));
    assert.throws(() => vfs.rename!("top.txt", "empty"), code("EISDIR"));
    assert.throws(() => vfs.rename!("ln", "d"), code("EISDIR"));
    assert.throws(() => vfs.rename!("empty", "d"), code("ENOTEMPTY"));
    assert.throws(() => vfs.rename!("d", "d/sub"), code("EINVAL"));
    assert.throws(() => vfs.rename!("d", "d/sub/deeper"), code("EINVAL"));
    assert.throws(() => vfs.rename!("d", "d/new"), code("EINVAL"));
    assert.throws(() => vfs.rename!("", "x"), code("EINVAL"));
    assert.throws(() => vfs.rename!("d/sub", "d"), code("ENOTEMPTY"));
    const before = vfs.lstat("top.txt")!;
    vfs.rename!("top.txt", "top.txt");
    vfs.rename!("d", "d");
    assert.deepEqual(vfs.lstat("top.txt"), before);
    // A name that merely starts with the directory's name is not inside it.
    vfs.rename!("d", "d2");
    assert.ok(vfs.lstat("d2/sub"));
  });

  it("rename moves and replaces as rename(2) does", () => {
    const vfs = sample();
    const ino = vfs.lstat("top.txt")!.ino;
    vfs.rename!("top.txt", "d/f.txt");
    assert.equal(vfs.lstat("top.txt"), undefined);
    assert.equal(vfs.lstat("d/f.txt")!.ino, ino);
    assert.deepEqual(vfs.readFile!("d/f.txt"), Buffer.from("top"));
    vfs.rename!("ln", "d/ln2");
    assert.equal(vfs.readlink("d/ln2"), "d/f.txt");
    // Directory over an empty directory.
    const sub = vfs.lstat("d/sub")!.ino;
    vfs.rename!("d/sub", "empty");
    assert.equal(vfs.lstat("empty")!.ino, sub);
    assert.equal(vfs.lstat("d/sub"), undefined);
  });

  it("EFBIG past 2 GiB; EBADF for the wrong access mode or a closed handle", () => {
    const vfs = mem();
    const h = vfs.open("f", O_CREAT | O_RDWR, 0o644);
    assert.throws(() => h.write!(Buffer.from("x"), 0, 1, MEMORY_MAX_FILE_SIZE), code("EFBIG"));
    assert.throws(() => h.truncate!(MEMORY_MAX_FILE_SIZE + 1), code("EFBIG"));
    assert.throws(() => vfs.truncate!("f", MEMORY_MAX_FILE_SIZE + 1), code("EFBIG"));
    assert.throws(() => h.truncate!(-1), code("EINVAL"));
    assert.throws(() => h.write!(Buffer.from("x"), 0, 2, 0), code("EINVAL"));
    assert.equal(h.stat().size, 0);
    h.close();
    assert.throws(() => h.read(Buffer.alloc(1), 0, 1, 0), code("EBADF"));
    assert.throws(() => h.stat(), code("EBADF"));
    assert.throws(() => h.close(), code("EBADF"));
    const r = vfs.open("f", O_RDONLY, 0);
    assert.throws(() => r.write!(Buffer.from("x"), 0, 1, 0), code("EBADF"));
    assert.throws(() => r.truncate!(0), code("EINVAL"));
    r.close();
    const w = vfs.open("f", O_WRONLY, 0);
    assert.throws(() => w.read(Buffer.alloc(1), 0, 1, 0), code("EBADF"));
    w.close();
    assert.throws(() => vfs.truncate!("", 0), code("EISDIR"));
  });
});

describe("memory type: contents", () => {
  it("positioned writes extend with zeros; truncate shrinks and extends with zeros", async () => {
    const vfs = mem();
    const h = vfs.open("f", O_CREAT | O_RDWR, 0o644);
    assert.equal(h.write!(Buffer.from("hello"), 0, 5, 10), 5);
    assert.deepEqual(readAll(h), Buffer.concat([Buffer.alloc(10), Buffer.from("hello")]));
    h.truncate!(12);
    h.truncate!(20);
    assert.deepEqual(readAll(h), Buffer.concat([Buffer.alloc(10), Buffer.from("he"), Buffer.alloc(8)]));
    assert.equal(await h.writeAsync!(Buffer.from("__AB__"), 2, 2, 0), 2);
    const out = Buffer.alloc(4, 0xee);
    assert.equal(await h.readAsync!(out, 1, 3, 0), 3);
    assert.deepEqual(out, Buffer.from([0xee, 0x41, 0x42, 0]));
    assert.equal(h.read(out, 0, 4, 20), 0);
    assert.equal(h.read(out, 0, 4, 1000), 0);
    h.sync!();
    h.close();
    assert.equal(vfs.lstat("f")!.size, 20);
    assert.equal((await vfs.readFileAsync!("f")).length, 20);
    // O_TRUNC on a writable open empties the file.
    vfs.open("f", O_RDWR | O_TRUNC, 0).close();
    assert.equal(vfs.lstat("f")!.size, 0);
  });

  it("readFile returns a copy, not a view of the file", () => {
    const vfs = mem();
    writeFile(vfs, "f", "abc");
    const a = vfs.readFile!("f");
    a[0] = 0x7a;
    assert.deepEqual(vfs.readFile!("f"), Buffer.from("abc"));
  });

  it("a file matches a Buffer model under random writes, truncates and reads", () => {
    type Op =
      | { op: "write"; pos: number; data: Uint8Array }
      | { op: "truncate"; len: number }
      | { op: "read"; pos: number; len: number };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        op: fc.constant("write" as const),
        pos: fc.nat(6000),
        data: fc.uint8Array({ minLength: 0, maxLength: 700 }),
      }),
      fc.record({ op: fc.constant("truncate" as const), len: fc.nat(7000) }),
      fc.record({ op: fc.constant("read" as const), pos: fc.nat(7000), len: fc.nat(1000) }),
    );
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
        const vfs = mem();
        const h = vfs.open("f", O_CREAT | O_RDWR, 0o644);
        let model = Buffer.alloc(0);
        for (const o of ops) {
          if (o.op === "write") {
            const end = o.pos + o.data.length;
            if (o.data.length > 0 && end > model.length) {
              model = Buffer.concat([model, Buffer.alloc(end - model.length)]);
            }
            if (o.data.length > 0) model.set(o.data, o.pos);
            assert.equal(h.write!(o.data, 0, o.data.length, o.pos), o.data.length);
          } else if (o.op === "truncate") {
            model =
              o.len <= model.length
                ? Buffer.from(model.subarray(0, o.len))
                : Buffer.concat([model, Buffer.alloc(o.len - model.length)]);
            h.truncate!(o.len);
          } else {
            const got = Buffer.alloc(o.len + 3, 0xaa);
            const n = h.read(got, 3, o.len, o.pos);
            const want = model.subarray(Math.min(o.pos, model.length), Math.min(o.pos + o.len, model.length));
            assert.equal(n, want.length);
            assert.deepEqual(got.subarray(3, 3 + n), want);
            assert.ok(got.subarray(3 + n).every((b) => b === 0xaa));
          }
          assert.equal(h.stat().size, model.length);
        }
        assert.deepEqual(vfs.readFile!("f"), model);
        h.close();
      }),
      { numRuns: 200 },
    );
  });

  it("statfs reports the bytes held", () => {
    const vfs = mem();
    const empty = vfs.statfs!();
    assert.equal(empty.type, 0x01021994);
    assert.equal(empty.blocks - empty.bfree, 0);
    writeFile(vfs, "a", Buffer.alloc(10_000));
    writeFile(vfs, "b", Buffer.alloc(5_000));
    const s = vfs.statfs!();
    assert.equal(s.blocks - s.bfree, Math.ceil(15_000 / s.bsize));
    assert.equal(s.files - s.ffree, 3);
    vfs.unlink!("a");
    const t = vfs.statfs!();
    assert.equal(t.blocks - t.bfree, Math.ceil(5_000 / t.bsize));
    assert.equal(t.files - t.ffree, 2);
  });
});

describe("memory type: POSIX semantics", () => {
  it("an open handle keeps an unlinked file alive", () => {
    const vfs = mem();
    writeFile(vfs, "f", "before");
    const h = vfs.open("f", O_RDWR, 0);
    const ino = h.stat().ino;
    vfs.unlink!("f");
    assert.equal(vfs.lstat("f"), undefined);
    assert.equal(h.stat().nlink, 0);
    assert.equal(h.stat().ino, ino);
    assert.deepEqual(readAll(h), Buffer.from("before"));
    h.write!(Buffer.from("-after"), 0, 6, 6);
    assert.deepEqual(readAll(h), Buffer.from("before-after"));
    // A new file at the same name is a different file.
    writeFile(vfs, "f", "new");
    assert.notEqual(vfs.lstat("f")!.ino, ino);
    assert.deepEqual(readAll(h), Buffer.from("before-after"));
    // Until the last close, the unlinked file still counts against the filesystem.
    const held = vfs.statfs!();
    assert.equal(held.files - held.ffree, 3);
    h.close();
    assert.deepEqual(vfs.readFile!("f"), Buffer.from("new"));
    const after = vfs.statfs!();
    assert.equal(after.files - after.ffree, 2);
  });

  it("a file replaced by rename lives on in its open handle", () => {
    const vfs = mem();
    writeFile(vfs, "old", "old contents");
    writeFile(vfs, "new", "new contents");
    const h = vfs.open("old", O_RDONLY, 0);
    vfs.rename!("new", "old");
    assert.equal(h.stat().nlink, 0);
    assert.deepEqual(readAll(h), Buffer.from("old contents"));
    assert.deepEqual(vfs.readFile!("old"), Buffer.from("new contents"));
    h.close();
  });

  it("keeps directory link counts: 2 + subdirectories", () => {
    const vfs = mem();
    const nlink = (p: string) => vfs.lstat(p)!.nlink;
    assert.equal(nlink(""), 2);
    vfs.mkdir!("a", 0o755);
    vfs.mkdir!("b", 0o755);
    assert.equal(nlink(""), 4);
    vfs.mkdir!("a/x", 0o755);
    vfs.mkdir!("a/y", 0o755);
    writeFile(vfs, "a/file", "");
    vfs.symlink!("x", "a/link");
    assert.equal(nlink("a"), 4);
    assert.equal(nlink("a/file"), 1);
    assert.equal(nlink("a/link"), 1);
    vfs.rename!("a/x", "b/x");
    assert.equal(nlink("a"), 3);
    assert.equal(nlink("b"), 3);
    vfs.rename!("a/y", "a/y2");
    assert.equal(nlink("a"), 3);
    // A directory over an empty directory: the parent loses one subdirectory.
    vfs.mkdir!("a/z", 0o755);
    assert.equal(nlink("a"), 4);
    vfs.rename!("a/z", "a/y2");
    assert.equal(nlink("a"), 3);
    // Across parents over an empty directory.
    vfs.mkdir!("b/w", 0o755);
    vfs.rename!("a/y2", "b/w");
    assert.equal(nlink("a"), 2);
    assert.equal(nlink("b"), 4);
    vfs.rmdir!("b/w");
    assert.equal(nlink("b"), 3);
    vfs.rename!("b", "c");
    assert.equal(nlink(""), 4);
    // Files do not count.
    vfs.rename!("a/file", "c/file");
    assert.equal(nlink("a"), 2);
    assert.equal(nlink("c"), 3);
  });

  it("applies the umask to new files and directories; symlinks are 0777", () => {
    const def = mem();
    def.mkdir!("d", 0o777);
    writeFile(def, "f", "", 0o666);
    def.symlink!("f", "l");
    assert.equal(def.lstat("d")!.mode, 0o040755);
    assert.equal(def.lstat("f")!.mode, 0o100644);
    assert.equal(def.lstat("l")!.mode, 0o120777);
    const strict = mem({ umask: 0o077 });
    strict.mkdir!("d", 0o1777);
    writeFile(strict, "f", "", 0o4766);
    strict.symlink!("f", "l");
    assert.equal(strict.lstat("d")!.mode, 0o041700);
    assert.equal(strict.lstat("f")!.mode, 0o104700);
    assert.equal(strict.lstat("l")!.mode, 0o120777);
    const none = mem({ umask: 0 });
    writeFile(none, "f", "", 0o666);
    assert.equal(none.lstat("f")!.mode, 0o100666);
    // chmod sets the permission bits and keeps the type, without the umask.
    def.chmod!("f", 0o7777);
    assert.equal(def.lstat("f")!.mode, 0o107777);
    const h = def.open("f", O_RDONLY, 0);
    h.chmod!(0o100400);
    assert.equal(h.stat().mode, 0o100400);
    h.close();
  });
});

describe("memory type: timestamps", () => {
  const times = (s: NodeStat) => ({ a: s.atimeNs!, m: s.mtimeNs, c: s.ctimeNs!, b: s.birthtimeNs! });

  it("creation sets all four times and touches the parent's mtime and ctime", () => {
    const vfs = mem();
    vfs.mkdir!("d", 0o755);
    const d0 = times(vfs.lstat("d")!);
    assert.equal(d0.a, d0.b);
    assert.equal(d0.m, d0.b);
    assert.equal(d0.c, d0.b);
    writeFile(vfs, "d/f", "");
    const f = times(vfs.lstat("d/f")!);
    const d1 = times(vfs.lstat("d")!);
    assert.ok(d1.m > d0.m && d1.c > d0.c);
    assert.equal(d1.a, d0.a);
    assert.ok(d1.m >= f.b);
    for (const step of [
      () => vfs.mkdir!("d/sub", 0o755),
      () => vfs.symlink!("f", "d/l"),
      () => vfs.rmdir!("d/sub"),
      () => vfs.unlink!("d/l"),
    ]) {
      const before = times(vfs.lstat("d")!);
      step();
      const after = times(vfs.lstat("d")!);
      assert.ok(after.m > before.m && after.c > before.c);
      assert.equal(after.a, before.a);
    }
  });

  it("write and truncate change the file's mtime and ctime, not atime nor the parent's", () => {
    const vfs = mem();
    vfs.mkdir!("d", 0o755);
    writeFile(vfs, "d/f", "x");
    const h = vfs.open("d/f", O_RDWR, 0);
    const dir = times(vfs.lstat("d")!);
    let prev = times(h.stat());
    for (const step of [
      () => h.write!(Buffer.from("abc"), 0, 3, 0),
      () => h.truncate!(1),
      () => vfs.truncate!("d/f", 10),
    ]) {
      step();
      const now = times(h.stat());
      assert.ok(now.m > prev.m && now.c > prev.c);
      assert.equal(now.a, prev.a);
      assert.equal(now.b, prev.b);
      prev = now;
    }
    // An empty write changes nothing, and reads do not either.
    h.write!(Buffer.alloc(0), 0, 0, 0);
    h.read(Buffer.alloc(4), 0, 4, 0);
    assert.deepEqual(times(h.stat()), prev);
    assert.deepEqual(times(vfs.lstat("d")!), dir);
    h.close();
  });

  it("chmod changes only ctime; utimes sets atime and mtime and ctime to now", () => {
    const vfs = mem();
    writeFile(vfs, "f", "x");
    const t0 = times(vfs.lstat("f")!);
    vfs.chmod!("f", 0o600);
    const t1 = times(vfs.lstat("f")!);
    assert.ok(t1.c > t0.c);
    assert.equal(t1.m, t0.m);
    assert.equal(t1.a, t0.a);
    vfs.utimes!("f", 1_000_000_123n, 2_000_000_456n);
    const s = vfs.lstat("f")!;
    assert.equal(s.atimeNs, 1_000_000_123n);
    assert.equal(s.mtimeNs, 2_000_000_456n);
    assert.equal(s.atimeMs, 1000.000123);
    assert.equal(s.mtimeMs, 2000.000456);
    assert.ok(s.ctimeNs! > t1.c);
    assert.equal(s.birthtimeNs, t0.b);
    const h = vfs.open("f", O_RDONLY, 0);
    h.utimes!(5n, 6n);
    assert.equal(h.stat().atimeNs, 5n);
    assert.equal(h.stat().mtimeNs, 6n);
    h.close();
    // Links have their own times.
    vfs.symlink!("f", "l");
    vfs.utimes!("l", 7n, 8n);
    assert.equal(vfs.lstat("l")!.mtimeNs, 8n);
    assert.equal(vfs.lstat("f")!.mtimeNs, 6n);
  });

  it("rename touches both parents and the moved node's ctime, keeping its mtime", () => {
    const vfs = mem();
    vfs.mkdir!("a", 0o755);
    vfs.mkdir!("b", 0o755);
    writeFile(vfs, "a/f", "x");
    const a0 = times(vfs.lstat("a")!);
    const b0 = times(vfs.lstat("b")!);
    const f0 = times(vfs.lstat("a/f")!);
    vfs.rename!("a/f", "b/g");
    const a1 = times(vfs.lstat("a")!);
    const b1 = times(vfs.lstat("b")!);
    const f1 = times(vfs.lstat("b/g")!);
    assert.ok(a1.m > a0.m && a1.c > a0.c);
    assert.ok(b1.m > b0.m && b1.c > b0.c);
    assert.ok(f1.c > f0.c);
    assert.equal(f1.m, f0.m);
  });
});
