/**
 * Kernel behaviour, mostly over the memory type: descriptors and offsets, the fd table's bound,
 * directory handles, Stats and Dirent objects, callback and promise forms, FileHandle, streams,
 * recursive mkdir/rm, custom filesystem types; then bfc specifics: passwords and corruption.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { Reader } from "../../src/container/reader.ts";
import { Writer } from "../../src/container/writer.ts";
import { BfcError } from "../../src/errors.ts";
import { fsError } from "../../src/vfs/errors.ts";
import type { DirEntry, FileHandle, FileSystem, FileSystemType, NodeStat } from "../../src/vfs/filesystem.ts";
import { createVfs } from "../../src/vfs/index.ts";
import type { Vfs } from "../../src/vfs/vfs.ts";
import { caught, prng, rejected, sha256, tempDir } from "../helpers.ts";

const BASE = tempDir("bfc-vfs-");

const code = (c: string) => (e: unknown) => {
  assert.equal((e as NodeJS.ErrnoException).code, c, String(e));
  return true;
};

/** A VFS with memory at / holding /d/f.txt ("0123456789"), /d/sub/ and /link → d/f.txt. */
function memVfs(options: { maxOpenFiles?: number } = {}): Vfs {
  const vfs = createVfs(options);
  vfs.mountSync("memory", "/");
  vfs.mkdirSync("/d/sub", { recursive: true });
  vfs.writeFileSync("/d/f.txt", "0123456789");
  vfs.symlinkSync("d/f.txt", "/link");
  return vfs;
}

function randomData(n: number, seed: number): Buffer {
  const next = prng(seed);
  const b = Buffer.alloc(n);
  for (let k = 0; k < n; k++) b[k] = Math.floor(next() * 256);
  return b;
}

// ───────────────────────────────────────────────────────────────── descriptors

describe("vfs: descriptors", () => {
  it("advances the offset on reads without a position, not on positioned reads", () => {
    const vfs = memVfs();
    const fd = vfs.openSync("/d/f.txt", "r");
    const b = Buffer.alloc(4);
    assert.equal(vfs.readSync(fd, b, 0, 4, null), 4);
    assert.equal(b.toString(), "0123");
    assert.equal(vfs.readSync(fd, b, 0, 2, 7), 2, "pread");
    assert.equal(b.subarray(0, 2).toString(), "78");
    assert.equal(vfs.readSync(fd, b, 0, 4, null), 4, "continues after the first read");
    assert.equal(b.toString(), "4567");
    assert.equal(vfs.readSync(fd, b, { position: 0n, length: 1 }), 1, "options form, bigint position");
    assert.equal(b[0], "0".charCodeAt(0));
    assert.equal(vfs.readSync(fd, b), 2, "the rest, whole-buffer form");
    assert.equal(b.subarray(0, 2).toString(), "89");
    assert.equal(vfs.readSync(fd, b, 0, 4, null), 0, "EOF");
    vfs.closeSync(fd);
  });

  it("seeks like lseek (set, cur, end) and refuses a negative offset", () => {
    const vfs = memVfs();
    const fd = vfs.openSync("/d/f.txt", "r+");
    const b = Buffer.alloc(3);
    assert.equal(vfs.seekSync(fd, 5), 5);
    vfs.readSync(fd, b, 0, 3, null);
    assert.equal(b.toString(), "567");
    assert.equal(vfs.seekSync(fd, -4, "cur"), 4);
    vfs.readSync(fd, b, 0, 3, null);
    assert.equal(b.toString(), "456");
    assert.equal(vfs.seekSync(fd, -2, "end"), 8);
    assert.equal(vfs.readSync(fd, b, 0, 3, null), 2);
    assert.equal(vfs.seekSync(fd, 2, 2), 12, "SEEK_END past the end");
    vfs.writeSync(fd, "AB");
    assert.equal(vfs.readFileSync("/d/f.txt", "latin1"), "0123456789\0\0AB", "the gap reads as zeros");
    assert.equal(vfs.seekSync(fd, 0, 1), 14, "SEEK_CUR after the write");
    assertThrowsCode(() => vfs.seekSync(fd, -1, "set"), "EINVAL");
    assertThrowsCode(() => vfs.seekSync(fd, -100, "end"), "EINVAL");
    assert.equal(vfs.seekSync(fd, 0, "cur"), 14, "a failed seek leaves the offset");
    vfs.closeSync(fd);
  });

  it("writes at the offset, and with O_APPEND always at the end", () => {
    const vfs = memVfs();
    const fd = vfs.openSync("/d/f.txt", "r+");
    assert.equal(vfs.writeSync(fd, "ab"), 2);
    assert.equal(vfs.writeSync(fd, Buffer.from("XY"), 0, 2, 8), 2, "pwrite");
    assert.equal(vfs.writeSync(fd, "cd"), 2, "continues after the first write");
    vfs.closeSync(fd);
    assert.equal(vfs.readFileSync("/d/f.txt", "utf8"), "abcd4567XY");

    const ap = vfs.openSync("/d/f.txt", "a+");
    vfs.writeSync(ap, "1");
    vfs.writeSync(ap, Buffer.from("2"), 0, 1, 0);
    assert.equal(vfs.seekSync(ap, 0), 0);
    vfs.writeSync(ap, "3");
    const b = Buffer.alloc(3);
    assert.equal(vfs.readSync(ap, b, 0, 3, 0), 3, "a+ reads anywhere");
    assert.equal(b.toString(), "abc");
    vfs.closeSync(ap);
    assert.equal(vfs.readFileSync("/d/f.txt", "utf8"), "abcd4567XY123");
    vfs.appendFileSync("/d/f.txt", "!");
    assert.equal(vfs.readFileSync("/d/f.txt", "utf8"), "abcd4567XY123!");
    assert.equal(vfs.statSync("/d/f.txt").size, 14);
  });

  it("fstats descriptors (files and directories) and follows renames", () => {
    const vfs = memVfs();
    const fd = vfs.openSync("/link", "r");
    const st = vfs.fstatSync(fd);
    assert.ok(st instanceof fs.Stats);
    assert.ok(st.isFile());
    assert.equal(st.size, 10);
    assert.equal(st.ino, vfs.statSync("/d/f.txt").ino);
    assert.equal(typeof vfs.fstatSync(fd, { bigint: true }).size, "bigint");
    vfs.renameSync("/d/f.txt", "/d/g.txt");
    assert.equal(vfs.fstatSync(fd).ino, st.ino, "the descriptor follows its file");
    vfs.closeSync(fd);
    const dfd = vfs.openSync("/d", "r");
    assert.ok(vfs.fstatSync(dfd).isDirectory());
    assertThrowsCode(() => vfs.readSync(dfd, Buffer.alloc(1), 0, 1, null), "EISDIR");
    vfs.closeSync(dfd);
  });

  it("answers EBADF after close, for unknown descriptors and for the wrong direction", () => {
    const vfs = memVfs();
    const fd = vfs.openSync("/d/f.txt", "r");
    vfs.closeSync(fd);
    for (const run of [
      () => vfs.readSync(fd, Buffer.alloc(1), 0, 1, null),
      () => vfs.fstatSync(fd),
      () => vfs.closeSync(fd),
      () => vfs.seekSync(fd, 0),
      () => vfs.writeSync(fd, "x"),
      () => vfs.fstatSync(12345),
    ]) {
      const e = caught(run);
      assert.equal(e.code, "EBADF");
      assert.equal(e.errno, -os.constants.errno.EBADF);
      assert.match(e.message, /^EBADF: bad file descriptor, \w+$/);
    }
    const ro = vfs.openSync("/d/f.txt", "r");
    assertThrowsCode(() => vfs.writeSync(ro, "x"), "EBADF");
    vfs.closeSync(ro);
    const wo = vfs.openSync("/d/f.txt", "w");
    assertThrowsCode(() => vfs.readSync(wo, Buffer.alloc(1), 0, 1, null), "EBADF");
    vfs.closeSync(wo);
  });

  it("bounds open descriptors (EMFILE) and reuses the lowest free number", async () => {
    const vfs = memVfs({ maxOpenFiles: 4 });
    const fds = [0, 1, 2, 3].map(() => vfs.openSync("/d/f.txt", "r"));
    assert.equal(new Set(fds).size, 4);
    const e = caught(() => vfs.openSync("/d/f.txt", "r"));
    assert.equal(e.code, "EMFILE");
    assert.equal(e.message, "EMFILE: too many open files, open '/d/f.txt'");
    assert.equal(caught(() => vfs.openSync("/d", "r")).code, "EMFILE", "directories count too");
    await assert.rejects(vfs.promises.open("/d/f.txt"), code("EMFILE"));
    assert.equal(
      caught(() => vfs.writeFileSync("/d/new.txt", "x")).code,
      "EMFILE",
      "writeFile needs a descriptor",
    );
    vfs.closeSync(fds[1] as number);
    assert.equal(vfs.openSync("/d", "r"), fds[1], "lowest free descriptor first");
    for (const fd of [fds[0], fds[1], fds[2], fds[3]] as number[]) vfs.closeSync(fd);
    const again = vfs.openSync("/d/f.txt", "r");
    assert.equal(again, Math.min(...fds));
    vfs.closeSync(again);
  });

  it("opens with the flags' semantics (wx EEXIST, w truncates, r on a missing file ENOENT)", () => {
    const vfs = memVfs();
    assertThrowsCode(() => vfs.openSync("/d/f.txt", "wx"), "EEXIST");
    assertThrowsCode(() => vfs.openSync("/d/missing", "r"), "ENOENT");
    assertThrowsCode(() => vfs.openSync("/d/f.txt", "bogus"), "EINVAL");
    vfs.closeSync(vfs.openSync("/link", "w"));
    assert.equal(vfs.statSync("/d/f.txt").size, 0, "w through a link truncates the target");
    vfs.symlinkSync("created-by-open", "/d/dangling");
    vfs.writeFileSync("/d/dangling", "made");
    assert.equal(vfs.readFileSync("/d/created-by-open", "utf8"), "made", "O_CREAT through a dangling link");
    assertThrowsCode(() => vfs.openSync("/link", fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW), "ELOOP");
    assertThrowsCode(
      () => vfs.openSync("/d/f.txt", fs.constants.O_RDONLY | fs.constants.O_DIRECTORY),
      "ENOTDIR",
    );
  });
});

function assertThrowsCode(run: () => unknown, c: string): void {
  assert.throws(run, code(c));
}

// ───────────────────────────────────────────────────────────────── directories, stats, dirents

describe("vfs: directories, Stats and Dirents", () => {
  it("reads a directory handle, rewinds, closes and iterates asynchronously", async () => {
    const vfs = memVfs();
    vfs.writeFileSync("/d/a.txt", "a");
    const dir = vfs.opendirSync("/d");
    assert.equal(dir.path, "/d");
    const first: string[] = [];
    for (let e = dir.readSync(); e !== null; e = dir.readSync()) {
      assert.ok(e instanceof fs.Dirent);
      first.push(`${e.name}:${e.isDirectory() ? "d" : e.isFile() ? "f" : "?"}`);
    }
    assert.deepEqual(first.sort(), ["a.txt:f", "f.txt:f", "sub:d"]);
    assert.equal(dir.readSync(), null, "stays at the end");
    dir.rewind();
    const again = await dir.read();
    assert.ok(again !== null);
    const viaCallback = await new Promise<fs.Dirent | null>((resolve, reject) =>
      dir.read((err, d) => (err ? reject(err) : resolve(d))),
    );
    assert.ok(viaCallback !== null && viaCallback.name !== again.name);
    await dir.close();
    assert.throws(() => dir.readSync(), code("EBADF"));
    assert.throws(() => dir.closeSync(), code("EBADF"));

    const names: string[] = [];
    for await (const e of await vfs.promises.opendir("/d")) names.push(e.name);
    assert.deepEqual(names.sort(), ["a.txt", "f.txt", "sub"]);
    const viaCb = await new Promise<string[]>((resolve, reject) =>
      vfs.opendir("/d", (err: Error | null, d?: { readSync(): fs.Dirent | null; closeSync(): void }) => {
        if (err || !d) return reject(err);
        const out: string[] = [];
        for (let e = d.readSync(); e !== null; e = d.readSync()) out.push(e.name);
        d.closeSync();
        resolve(out);
      }),
    );
    assert.deepEqual(viaCb.sort(), ["a.txt", "f.txt", "sub"]);
    assert.throws(() => vfs.opendirSync("/d/f.txt"), code("ENOTDIR"));
    assert.throws(() => vfs.opendirSync("/nope"), code("ENOENT"));
  });

  it("lists names as Buffers with encoding 'buffer' (and as Dirents with Buffer names)", () => {
    const vfs = memVfs();
    vfs.writeFileSync("/d/é.txt", "x");
    const names = vfs.readdirSync("/d", { encoding: "buffer" }) as Buffer[];
    assert.ok(names.every((n) => Buffer.isBuffer(n)));
    assert.deepEqual(names.map((n) => n.toString()).sort(), ["f.txt", "sub", "é.txt"]);
    assert.ok((vfs.readdirSync("/d", "buffer") as Buffer[]).some((n) => n.equals(Buffer.from("é.txt"))));
    const dirents = vfs.readdirSync("/d", { encoding: "buffer", withFileTypes: true }) as fs.Dirent[];
    assert.ok(dirents.every((d) => Buffer.isBuffer(d.name)));
    const deep = vfs.readdirSync("/", { encoding: "buffer", recursive: true }) as Buffer[];
    assert.ok(deep.some((n) => n.toString() === "d/sub"));
    assert.deepEqual(vfs.readlinkSync("/link", { encoding: "buffer" }), Buffer.from("d/f.txt"));
    assert.deepEqual(vfs.realpathSync("/link", "buffer"), Buffer.from("/d/f.txt"));
  });

  it("returns real fs.Stats and fs.BigIntStats (with nanosecond fields)", () => {
    const vfs = memVfs();
    vfs.utimesSync("/d/f.txt", 1_700_000_000.25, 1_700_000_001.123456);
    const st = vfs.statSync("/link");
    assert.ok(st instanceof fs.Stats);
    assert.ok(st.isFile() && !st.isDirectory() && !st.isSymbolicLink());
    assert.ok(!st.isFIFO() && !st.isSocket() && !st.isBlockDevice() && !st.isCharacterDevice());
    assert.equal(st.size, 10);
    assert.ok(st.mtime instanceof Date);
    assert.equal(st.mtime.getTime(), Math.floor(st.mtimeMs));
    assert.equal(st.atime.getTime(), 1_700_000_000_250);
    const big = vfs.statSync("/link", { bigint: true });
    assert.equal(typeof big.size, "bigint");
    assert.equal(big.size, 10n);
    assert.equal(typeof big.mtimeNs, "bigint");
    assert.equal(big.atimeNs, 1_700_000_000_250_000_000n);
    assert.equal(big.mtimeNs / 1000n, 1_700_000_001_123_456n, "microseconds survive a double");
    assert.equal(big.mtimeMs, big.mtimeNs / 1_000_000n);
    assert.equal(big.ino, BigInt(st.ino));
    assert.equal(big.dev, BigInt(st.dev));
    assert.ok(big.isFile());
    assert.equal(typeof big.ctimeNs, "bigint");
    assert.equal(typeof big.birthtimeNs, "bigint");
    const lst = vfs.lstatSync("/link");
    assert.ok(lst.isSymbolicLink());
    assert.equal(lst.size, "d/f.txt".length);
    assert.equal(lst.mode & fs.constants.S_IFMT, fs.constants.S_IFLNK);
    const dst = vfs.statSync("/d");
    assert.ok(dst.isDirectory());
    assert.equal(dst.nlink, 3, "2 + one subdirectory");
  });

  it("returns undefined with throwIfNoEntry: false for missing paths only", () => {
    const vfs = memVfs();
    assert.equal(vfs.statSync("/nope", { throwIfNoEntry: false }), undefined);
    assert.equal(vfs.lstatSync("/d/nope/x", { throwIfNoEntry: false }), undefined);
    assert.equal(
      vfs.statSync("/d/f.txt/x", { throwIfNoEntry: false }),
      undefined,
      "ENOTDIR counts as missing",
    );
    assert.ok(vfs.statSync("/d", { throwIfNoEntry: false })?.isDirectory());
    vfs.symlinkSync("loop", "/loop");
    assert.throws(() => vfs.statSync("/loop", { throwIfNoEntry: false }), code("ELOOP"));
  });

  it("makes real Dirents with parentPath, for plain and recursive listings", () => {
    const vfs = memVfs();
    const list = vfs.readdirSync("/", { withFileTypes: true }) as fs.Dirent[];
    const byName = new Map(list.map((d) => [d.name, d]));
    assert.ok(byName.get("d")?.isDirectory());
    assert.ok(byName.get("link")?.isSymbolicLink());
    assert.ok(!byName.get("link")?.isFile());
    for (const d of list) {
      assert.ok(d instanceof fs.Dirent);
      assert.equal(d.parentPath, "/");
    }
    const deep = vfs.readdirSync("/d", { withFileTypes: true, recursive: true }) as fs.Dirent[];
    assert.deepEqual(deep.map((d) => `${d.parentPath}|${d.name}`).sort(), ["/d|f.txt", "/d|sub"]);
    assert.deepEqual(vfs.readdirSync("/", { recursive: true }), ["d", "link", "d/f.txt", "d/sub"]);
  });
});

// ───────────────────────────────────────────────────────────────── async forms

describe("vfs: callbacks, promises and FileHandle", () => {
  it("calls callbacks asynchronously with (err, value)", async () => {
    const vfs = memVfs();
    let sync = true;
    const result = await new Promise<[Error | null, Buffer | undefined]>((resolve) => {
      vfs.readFile("/link", (err: Error | null, data?: Buffer) => resolve([err, data]));
      sync = false;
    });
    assert.equal(sync, false, "never called before readFile returns");
    assert.equal(result[0], null);
    assert.equal(result[1]?.toString(), "0123456789");

    let sync2 = true;
    const failed = await new Promise<[Error | null, unknown]>((resolve) => {
      vfs.stat("/nope", (err: Error | null, st?: unknown) => resolve([err, st]));
      sync2 = false;
    });
    assert.equal(sync2, false);
    assert.equal((failed[0] as NodeJS.ErrnoException).code, "ENOENT");
    assert.equal(failed[1], undefined);

    const st = await new Promise<fs.BigIntStats>((resolve, reject) =>
      vfs.stat("/d", { bigint: true }, (err: Error | null, s?: fs.BigIntStats) =>
        err ? reject(err) : resolve(s!),
      ),
    );
    assert.equal(typeof st.ino, "bigint");

    const fd = await new Promise<number>((resolve, reject) =>
      vfs.open("/d/f.txt", "r", (err: Error | null, f?: number) => (err ? reject(err) : resolve(f!))),
    );
    const [n, buf] = await new Promise<[number, Buffer]>((resolve, reject) =>
      vfs.read(fd, Buffer.alloc(4), 0, 4, 3, (err: Error | null, bytes?: number, b?: Buffer) =>
        err ? reject(err) : resolve([bytes!, b!]),
      ),
    );
    assert.equal(n, 4);
    assert.equal(buf.toString(), "3456");
    await new Promise<void>((resolve, reject) => vfs.close(fd, (err) => (err ? reject(err) : resolve())));

    await new Promise<void>((resolve, reject) =>
      vfs.writeFile("/d/cb.txt", "by callback", (err: Error | null) => (err ? reject(err) : resolve())),
    );
    await new Promise<void>((resolve, reject) =>
      vfs.mkdir("/d/cbdir", (err: Error | null) => (err ? reject(err) : resolve())),
    );
    assert.equal(vfs.readFileSync("/d/cb.txt", "utf8"), "by callback");
    assert.ok(vfs.statSync("/d/cbdir").isDirectory());
    const exists = await new Promise<boolean>((resolve) => vfs.exists("/d/cb.txt", resolve));
    assert.equal(exists, true);
    assert.throws(() => vfs.stat("/d"), code("ERR_INVALID_ARG_TYPE"), "a callback is required");
  });

  it("reads, writes, stats and closes through promises.open's FileHandle", async () => {
    const vfs = memVfs();
    const fh = await vfs.promises.open("/d/h.bin", "w+");
    assert.equal(typeof fh.fd, "number");
    const w1 = await fh.write(Buffer.from("hello world"));
    assert.equal(w1.bytesWritten, 11);
    const w2 = await fh.write("HELLO", 0);
    assert.equal(w2.bytesWritten, 5);
    const w3 = await fh.write(Buffer.from("!!"), 0, 2, null);
    assert.equal(w3.bytesWritten, 2);
    assert.equal((await fh.stat()).size, 13);
    const r = await fh.read(Buffer.alloc(20), 0, 20, 0);
    assert.equal(r.bytesRead, 13);
    assert.equal(Buffer.from(r.buffer.subarray(0, 13)).toString(), "HELLO world!!");
    const r2 = await fh.read({ buffer: Buffer.alloc(5), position: 6 });
    assert.equal(Buffer.from(r2.buffer).toString(), "world");
    await fh.truncate(5);
    assert.equal(((await fh.stat({ bigint: true })) as fs.BigIntStats).size, 5n);
    await fh.chmod(0o600);
    await fh.utimes(1_000, 2_000);
    const st = (await fh.stat()) as fs.Stats;
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.mtimeMs, 2_000_000);
    await fh.close();
    await fh.close();
    assert.throws(() => vfs.fstatSync(fh.fd), code("EBADF"));
    assert.equal(await vfs.promises.readFile("/d/h.bin", "utf8"), "HELLO");

    const rd = await vfs.promises.open("/d/h.bin");
    assert.equal(((await rd.readFile()) as Buffer).toString(), "HELLO");
    await assert.rejects(rd.write("x"), code("EBADF"));
    await rd.close();
    await assert.rejects(vfs.promises.open("/d/nope"), code("ENOENT"));
  });

  it("round-trips 1 MiB through createWriteStream and createReadStream", async () => {
    const vfs = memVfs();
    const data = randomData(1024 * 1024, 7);
    const ws = vfs.createWriteStream("/d/stream.bin", { highWaterMark: 64 * 1024 });
    let opened = -1;
    ws.on("open", (fd: number) => {
      opened = fd;
    });
    await new Promise<void>((resolve, reject) => {
      ws.on("error", reject);
      ws.on("close", resolve);
      for (let off = 0; off < data.length; off += 100_000) ws.write(data.subarray(off, off + 100_000));
      ws.end();
    });
    assert.ok(opened >= 0);
    assert.equal(ws.bytesWritten, data.length);
    assert.equal(vfs.statSync("/d/stream.bin").size, data.length);

    const rs = vfs.createReadStream("/d/stream.bin", { highWaterMark: 50_000 });
    const chunks: Buffer[] = [];
    for await (const c of rs) chunks.push(c as Buffer);
    assert.ok(chunks.length > 1);
    assert.ok(chunks.every((c) => c.length <= 50_000));
    assert.equal(sha256(Buffer.concat(chunks)), sha256(data));
    assert.equal(rs.bytesRead, data.length);

    const part = Buffer.concat(
      (await vfs.createReadStream("/d/stream.bin", { start: 1000, end: 1999 }).toArray()) as Buffer[],
    );
    assert.ok(part.equals(data.subarray(1000, 2000)));

    // A write stream at an offset into an existing file (r+), then pipeline into another file.
    const patch = vfs.createWriteStream("/d/stream.bin", { flags: "r+", start: 10 });
    await new Promise<void>((resolve, reject) => patch.on("error", reject).end("PATCH", resolve));
    await new Promise((resolve) => patch.on("close", resolve));
    const head = Buffer.alloc(15);
    const fd = vfs.openSync("/d/stream.bin", "r");
    vfs.readSync(fd, head, 0, 15, 0);
    vfs.closeSync(fd);
    assert.ok(head.subarray(10).equals(Buffer.from("PATCH")));
    assert.ok(head.subarray(0, 10).equals(data.subarray(0, 10)));

    const err = await new Promise<NodeJS.ErrnoException>((resolve) =>
      vfs.createReadStream("/d/nope").on("error", (e: NodeJS.ErrnoException) => resolve(e)),
    );
    assert.equal(err.code, "ENOENT");
    assert.equal(err.syscall, "open");
  });
});

// ───────────────────────────────────────────────────────────────── mkdir / rm

describe("vfs: recursive mkdir and rm", () => {
  it("mkdir recursive returns the first directory it created (undefined when none)", () => {
    const vfs = memVfs();
    assert.equal(vfs.mkdirSync("/d/x/y/z", { recursive: true }), "/d/x");
    assert.ok(vfs.statSync("/d/x/y/z").isDirectory());
    assert.equal(vfs.mkdirSync("/d/x/y/z", { recursive: true }), undefined);
    assert.equal(vfs.mkdirSync("/d/x/y/w", { recursive: true }), "/d/x/y/w");
    // As node: ".." is taken after the directory before it exists, and the path is returned as given.
    assert.equal(vfs.mkdirSync("/d/n1/../n2/z", { recursive: true }), "/d/n1");
    assert.deepEqual(vfs.readdirSync("/d").sort(), ["f.txt", "n1", "n2", "sub", "x"]);
    assert.throws(() => vfs.mkdirSync("/d/f.txt/a", { recursive: true }), code("ENOTDIR"));
    assert.throws(() => vfs.mkdirSync("/d/f.txt", { recursive: true }), code("EEXIST"));
    assert.throws(() => vfs.mkdirSync("/d/x"), code("EEXIST"));
    vfs.mkdirSync("/d/m", { mode: 0o700 });
    assert.equal(vfs.statSync("/d/m").mode & 0o777, 0o700);
  });

  it("rm removes trees with recursive, ignores missing paths with force, never follows links", async () => {
    const vfs = memVfs();
    vfs.mkdirSync("/t/a/b", { recursive: true });
    vfs.writeFileSync("/t/a/b/f", "x");
    vfs.writeFileSync("/t/g", "y");
    vfs.symlinkSync("/d", "/t/to-d");
    assert.throws(() => vfs.rmSync("/t"), code("EISDIR"));
    assert.throws(() => vfs.rmSync("/t/missing"), code("ENOENT"));
    vfs.rmSync("/t/missing", { force: true });
    vfs.rmSync("/t/missing/deeper", { force: true });
    vfs.rmSync("/t", { recursive: true });
    assert.equal(vfs.existsSync("/t"), false);
    assert.ok(vfs.existsSync("/d/f.txt"), "the link's target survives");
    vfs.rmSync("/link");
    assert.equal(vfs.lstatSync("/link", { throwIfNoEntry: false }), undefined);
    assert.ok(vfs.existsSync("/d/f.txt"));
    vfs.mkdirSync("/u/v", { recursive: true });
    await vfs.promises.rm("/u", { recursive: true, force: true });
    assert.equal(vfs.existsSync("/u"), false);
    vfs.mkdirSync("/w/x", { recursive: true });
    vfs.rmdirSync("/w", { recursive: true });
    assert.equal(vfs.existsSync("/w"), false);
  });
});

// ───────────────────────────────────────────────────────────────── custom types

/** A tiny read-only type over a map of path → contents (directories implied by the paths). */
interface StaticOptions {
  files: Record<string, string>;
}

class StaticFs implements FileSystem {
  readonly capabilities = { readonly: true, symlinks: false, structuralLookup: true };
  private readonly files: Map<string, Buffer>;
  private readonly dirs = new Set<string>([""]);
  closed = false;

  constructor(options: StaticOptions) {
    this.files = new Map(Object.entries(options.files).map(([k, v]) => [k, Buffer.from(v)]));
    for (const k of this.files.keys()) {
      const parts = k.split("/");
      for (let i = 1; i < parts.length; i++) this.dirs.add(parts.slice(0, i).join("/"));
    }
  }

  private inoOf(p: string): number {
    return [...this.dirs, ...this.files.keys()].indexOf(p) + 1;
  }

  lstat(p: string): NodeStat | undefined {
    const base = {
      ino: this.inoOf(p),
      uid: 0,
      gid: 0,
      rdev: 0,
      blocks: 0,
      mtimeMs: 86_400_000,
      mtimeNs: 86_400_000_000_000n,
    };
    if (this.dirs.has(p))
      return { ...base, type: "directory", mode: fs.constants.S_IFDIR | 0o555, size: 0, nlink: 2 };
    const data = this.files.get(p);
    if (!data) return undefined;
    return { ...base, type: "file", mode: fs.constants.S_IFREG | 0o444, size: data.length, nlink: 1 };
  }

  readdir(p: string): DirEntry[] {
    const prefix = p === "" ? "" : `${p}/`;
    const out: DirEntry[] = [];
    for (const d of this.dirs) {
      if (d !== "" && d.startsWith(prefix) && !d.slice(prefix.length).includes("/")) {
        out.push({ name: d.slice(prefix.length), type: "directory" });
      }
    }
    for (const f of this.files.keys()) {
      if (f.startsWith(prefix) && !f.slice(prefix.length).includes("/"))
        out.push({ name: f.slice(prefix.length), type: "file" });
    }
    return out;
  }

  readlink(): string {
    throw fsError("EINVAL");
  }

  open(p: string): FileHandle {
    const data = this.files.get(p);
    if (!data) throw fsError(this.dirs.has(p) ? "EISDIR" : "ENOENT");
    const st = this.lstat(p) as NodeStat;
    return {
      stat: () => st,
      read: (buffer, offset, length, position) => {
        const n = Math.max(0, Math.min(length, data.length - position));
        data.copy(buffer, offset, position, position + n);
        return n;
      },
      close: () => {},
    };
  }

  close(): void {
    this.closed = true;
  }
}

const created: StaticFs[] = [];
const staticType: FileSystemType<StaticOptions> = {
  name: "static",
  capabilities: { readonly: true, symlinks: false, structuralLookup: true },
  async create(options) {
    if (!options || typeof options.files !== "object")
      throw new BfcError("EINVAL", "INVALID_ARGUMENT", "static: needs {files}");
    const f = new StaticFs(options);
    created.push(f);
    return f;
  },
  createSync(options) {
    const f = new StaticFs(options);
    created.push(f);
    return f;
  },
};

describe("vfs: filesystem types", () => {
  it("mounts a registered custom type and serves it through the whole API", async () => {
    const vfs = createVfs();
    vfs.registerType(staticType);
    assert.ok(vfs.typeNames().includes("static"));
    assert.ok(["bfc", "zip", "host", "memory"].every((t) => vfs.typeNames().includes(t)));
    const info = await vfs.mount("static", "/s", { files: { "a.txt": "alpha", "dir/b.txt": "beta" } });
    assert.equal(info.type, "static");
    assert.equal(info.readonly, true);
    assert.equal(info.target, "/s");
    // The type's natural order (here directories first), as node keeps the OS order.
    assert.deepEqual(vfs.readdirSync("/s"), ["dir", "a.txt"]);
    assert.deepEqual(vfs.readdirSync("/s", { recursive: true }), ["dir", "a.txt", "dir/b.txt"]);
    assert.equal(vfs.readFileSync("/s/dir/b.txt", "utf8"), "beta");
    assert.equal(await vfs.promises.readFile("/s/a.txt", "utf8"), "alpha");
    assert.equal(
      Buffer.concat((await vfs.createReadStream("/s/a.txt", { start: 1 }).toArray()) as Buffer[]).toString(),
      "lpha",
    );
    const st = vfs.statSync("/s/a.txt");
    assert.ok(st.isFile());
    assert.equal(st.size, 5);
    assert.equal(st.mode, fs.constants.S_IFREG | 0o444);
    assert.equal(st.mtime.getTime(), 86_400_000);
    assert.equal(st.dev, info.dev);
    assert.throws(() => vfs.statSync("/s/nope"), code("ENOENT"));
    assert.throws(() => vfs.statSync("/s/a.txt/x"), code("ENOTDIR"));
    assert.throws(() => vfs.readFileSync("/s/dir"), code("EISDIR"));
    assert.throws(() => vfs.readlinkSync("/s/a.txt"), code("EINVAL"));
    assert.throws(() => vfs.writeFileSync("/s/new", "x"), code("EROFS"));
    assert.throws(() => vfs.mkdirSync("/s/new"), code("EROFS"));

    // A type object can also be passed directly, and mounted synchronously through createSync.
    vfs.mountSync(staticType, "/t", { files: { x: "ex" } });
    assert.equal(vfs.readFileSync("/t/x", "utf8"), "ex");
    assert.deepEqual(vfs.readdirSync("/"), ["s", "t"]);

    const fsys = created.at(-1) as StaticFs;
    await vfs.unmount("/t");
    assert.equal(fsys.closed, true, "unmount closes the filesystem");
    await assert.rejects(
      vfs.mount("static", "/u", {}),
      (e: unknown) => e instanceof BfcError && e.code === "EINVAL",
    );
    await vfs.unmountAll();
  });

  it("refuses an unknown type (and a type without create)", async () => {
    const vfs = createVfs();
    await assert.rejects(
      vfs.mount("nosuchtype", "/x"),
      (e: unknown) =>
        e instanceof BfcError &&
        e.code === "EINVAL" &&
        /unknown filesystem type 'nosuchtype'/.test(e.message),
    );
    assert.throws(() => vfs.mountSync("nosuchtype", "/x"), code("EINVAL"));
    assert.throws(
      () => vfs.registerType({ name: "broken" } as unknown as FileSystemType),
      code("ERR_INVALID_ARG_TYPE"),
    );
    assert.deepEqual(vfs.mounts(), []);
    // Types that can only open asynchronously refuse mountSync.
    const asyncOnly: FileSystemType<StaticOptions> = {
      ...staticType,
      name: "async-only",
      createSync: undefined,
    };
    vfs.registerType(asyncOnly);
    assert.throws(() => vfs.mountSync("async-only", "/x", { files: {} }), code("ENOTSUP"));
    await vfs.mount("async-only", "/x", { files: { f: "1" } });
    assert.equal(vfs.readFileSync("/x/f", "utf8"), "1");
    // The types given to createVfs are registered too.
    const v2 = createVfs({ types: [staticType as unknown as FileSystemType<never>] });
    v2.mountSync("static", "/", { files: { r: "root" } });
    assert.equal(v2.readFileSync("/r", "utf8"), "root");
  });
});

// ───────────────────────────────────────────────────────────────── bfc: passwords and corruption

describe("vfs: bfc containers", () => {
  const payload = randomData(300_000, 11);
  const text = Buffer.from(
    "A distinctive plain payload that appears once in the container file.\n".repeat(20),
  );

  async function container(
    file: string,
    options: { password?: string; compression?: "zstd" | "none" },
  ): Promise<void> {
    const w = await Writer.create(file, {
      compression: options.compression ?? "zstd",
      password: options.password,
    });
    await w.addDirectory("docs");
    await w.addFile("docs/plain.txt", text);
    await w.addFile("random.bin", payload);
    await w.finish();
  }

  it("reads a password-protected container with the right password, refuses a wrong one (EACCES)", async () => {
    const file = path.join(BASE, "secret.bfc");
    await container(file, { password: "right horse" });

    const vfs = createVfs();
    await vfs.mount("bfc", "/ok", { path: file, password: "right horse" });
    assert.equal(sha256(vfs.readFileSync("/ok/random.bin") as Buffer), sha256(payload));
    assert.ok((vfs.readFileSync("/ok/docs/plain.txt") as Buffer).equals(text));

    // The mount proves the password on the smallest encrypted file, so a wrong one fails there.
    const failure = await rejected(() => vfs.mount("bfc", "/bad", { path: file, password: "wrong horse" }));
    assert.equal(failure.code, "EACCES", String(failure));
    assert.equal(vfs.mounts().filter((m) => m.target === "/bad").length, 0);
    const syncFailure = caught(() => vfs.mountSync("bfc", "/bad", { path: file, password: "wrong horse" }));
    assert.equal(syncFailure.code, "EACCES");
    assert.ok(failure instanceof BfcError);
    assert.ok(["AUTH_FAILED", "BAD_KEY"].includes(failure.reason), failure.reason);
    assert.equal(failure.errno, -13);

    // Without any credentials, the listing still works but contents are refused.
    await vfs.mount("bfc", "/none", { path: file });
    assert.deepEqual(vfs.readdirSync("/none"), ["docs", "random.bin"]);
    assert.equal(vfs.statSync("/none/random.bin").size, payload.length);
    const keyless = caught(() => vfs.readFileSync("/none/random.bin"));
    assert.equal(keyless.code, "EACCES");
    assert.equal((keyless as BfcError).reason, "KEY_REQUIRED");
    await vfs.unmountAll();
  });

  it("reports a corrupted payload byte as EIO, never as wrong bytes", async () => {
    for (const compression of ["none", "zstd"] as const) {
      const file = path.join(BASE, `corrupt-${compression}.bfc`);
      await container(file, { compression });
      const bytes = fs.readFileSync(file);
      // Flip one byte in the middle of random.bin's stored payload.
      const reader = Reader.openSync(file);
      const entry = reader.entryAt(reader.find("random.bin"));
      reader.close();
      const at =
        entry.objectOffset + (entry.objectSize - entry.storedSize) + Math.floor(entry.storedSize / 2);
      bytes[at] = (bytes[at] as number) ^ 0x40;
      // And one in the plain text (stored as is without compression).
      if (compression === "none") {
        const t = bytes.indexOf(text.subarray(0, 40));
        assert.ok(t > 0);
        bytes[t + 5] = (bytes[t + 5] as number) ^ 0x01;
      }
      fs.writeFileSync(file, bytes);

      const vfs = createVfs();
      await vfs.mount("bfc", "/c", { path: file });
      assert.equal(vfs.statSync("/c/random.bin").size, payload.length, "metadata is intact");
      const checks: [string, () => Promise<unknown>][] = [
        ["readFileSync", async () => vfs.readFileSync("/c/random.bin")],
        ["promises.readFile", () => vfs.promises.readFile("/c/random.bin")],
        [
          "readSync at 0",
          async () => {
            const fd = vfs.openSync("/c/random.bin", "r");
            try {
              return vfs.readSync(fd, Buffer.alloc(100), 0, 100, 0);
            } finally {
              vfs.closeSync(fd);
            }
          },
        ],
        [
          "FileHandle.read far from the flipped byte",
          async () => {
            const fh = await vfs.promises.open("/c/random.bin");
            try {
              return await fh.read(Buffer.alloc(10), 0, 10, payload.length - 10);
            } finally {
              await fh.close();
            }
          },
        ],
        ["createReadStream", async () => vfs.createReadStream("/c/random.bin").toArray()],
      ];
      if (compression === "none")
        checks.push(["readFileSync (plain text)", async () => vfs.readFileSync("/c/docs/plain.txt")]);
      for (const [label, run] of checks) {
        const e = await rejected(run);
        assert.equal(e.code, "EIO", `${compression} ${label}: ${String(e)}`);
        assert.ok(e instanceof BfcError, label);
        assert.ok(
          ["CRC_MISMATCH", "DECOMPRESS_FAILED", "SIZE_MISMATCH", "BAD_OBJECT"].includes(e.reason),
          e.reason,
        );
        assert.match(e.message, /^EIO: i\/o error, (read|open)/);
      }
      await vfs.unmountAll();
    }
  });
});

describe("vfs: kept listings", () => {
  async function bfcWith(file: string, names: string[]): Promise<void> {
    const w = await Writer.create(file, { compression: "none" });
    await w.addDirectory("docs");
    for (const n of names) await w.addFile(`docs/${n}`, Buffer.from(n));
    await w.finish();
  }

  it("readdirSync of an immutable mount hands out a fresh array each time, and follows remounts", async () => {
    const a = path.join(BASE, "list-a.bfc");
    const b = path.join(BASE, "list-b.bfc");
    await bfcWith(a, ["x", "y"]);
    await bfcWith(b, ["z"]);
    const vfs = createVfs();
    try {
      await vfs.mount("bfc", "/c", { path: a });
      for (const p of ["/c/docs", "c/docs", "/c/./docs", "/c/docs/"]) {
        const first = vfs.readdirSync(p) as string[];
        assert.deepEqual(first, ["x", "y"], p);
        first.push("mine");
        first.reverse();
        assert.deepEqual(vfs.readdirSync(p), ["x", "y"], `${p} again, after the caller changed its copy`);
      }
      assert.throws(() => vfs.readdirSync("/c/docs/x"), code("ENOTDIR"));
      await vfs.unmount("/c");
      await vfs.mount("bfc", "/c", { path: b });
      assert.deepEqual(vfs.readdirSync("/c/docs"), ["z"]);
      assert.deepEqual(vfs.readdirSync("c/docs"), ["z"]);
    } finally {
      await vfs.unmountAll();
    }
  });

  it("a read-only host folder is listed afresh: others may change it", async () => {
    const root = fs.mkdtempSync(path.join(BASE, "ro-host-"));
    fs.writeFileSync(path.join(root, "a"), "1");
    const vfs = createVfs();
    try {
      await vfs.mount("host", "/h", { root, readonly: true });
      assert.deepEqual(vfs.readdirSync("/h"), ["a"]);
      fs.writeFileSync(path.join(root, "b"), "2");
      assert.deepEqual(vfs.readdirSync("/h"), ["a", "b"]);
      fs.rmSync(path.join(root, "a"));
      assert.deepEqual(vfs.readdirSync("/h"), ["b"]);
    } finally {
      await vfs.unmountAll();
    }
  });
});
