/**
 * The zip filesystem type, tested directly (not through the kernel). Archives are made at test time:
 * by the `zip` CLI from a temp tree (deflated, stored, forced Zip64), and byte by byte for the
 * hostile and broken cases the CLI cannot produce.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import zlib from "node:zlib";
import { Inflater } from "../../src/codec/inflate.ts";
import { BfcError, type ErrnoCode, type Reason } from "../../src/errors.ts";
import type { FileSystem, NodeStat } from "../../src/vfs/filesystem.ts";
import { type ZipFileSystem, type ZipOptions, zipType } from "../../src/vfs/types/zip.ts";
import { prng, randomBytes, sha256, tempDir, writeTree } from "../helpers.ts";

const { O_RDONLY, O_RDWR, S_IFMT, S_IFDIR, S_IFREG, S_IFLNK } = fs.constants;

const hasZip = (() => {
  try {
    execFileSync("zip", ["-v"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

function compressible(n: number): Buffer {
  const parts: string[] = [];
  let len = 0;
  for (let k = 0; len < n; k++) {
    const line = `${k}: the quick brown fox jumps over the lazy dog ${"#".repeat(k % 13)} ${(k * 7919) % 1000}\n`;
    parts.push(line);
    len += line.length;
  }
  return Buffer.from(parts.join("")).subarray(0, n);
}

function isFsError(code: ErrnoCode, reasons: Reason[]) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof BfcError, `expected a BfcError, got ${(e as Error)?.stack ?? String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.ok(reasons.includes(e.reason), `unexpected reason ${e.reason}: ${e.message}`);
    return true;
  };
}

const CORRUPT_READ: Reason[] = ["CRC_MISMATCH", "DECOMPRESS_FAILED", "SIZE_MISMATCH"];

const mounted: FileSystem[] = [];
async function mount(options: ZipOptions): Promise<ZipFileSystem> {
  const zfs = (await zipType.create(options)) as ZipFileSystem;
  mounted.push(zfs);
  return zfs;
}
after(async () => {
  for (const m of mounted) await m.close?.();
});

// ---------------------------------------------------------------------------------------------
// The source tree and the CLI-made archives

const work = tempDir("bfc-zip-");
const src = path.join(work, "src");
const BIG = compressible(3 * 1024 * 1024);
const RANDOM = randomBytes(1024 * 1024, 7);

interface SourceNode {
  type: "file" | "directory" | "symlink";
  mode: number;
  size: number;
  mtimeMs: number;
  data?: Buffer;
  target?: string;
}

function walkSource(root: string, rel = "", out = new Map<string, SourceNode>()): Map<string, SourceNode> {
  for (const name of fs.readdirSync(path.join(root, rel))) {
    const p = rel ? `${rel}/${name}` : name;
    const full = path.join(root, p);
    const st = fs.lstatSync(full);
    const type = st.isDirectory() ? "directory" : st.isSymbolicLink() ? "symlink" : "file";
    const node: SourceNode = { type, mode: st.mode, size: st.size, mtimeMs: st.mtimeMs };
    if (type === "file") node.data = fs.readFileSync(full);
    if (type === "symlink") node.target = fs.readlinkSync(full);
    out.set(p, node);
    if (type === "directory") walkSource(root, p, out);
  }
  return out;
}

function walkZip(zfs: FileSystem, dir = "", out = new Map<string, NodeStat>()): Map<string, NodeStat> {
  const entries = zfs.readdir(dir);
  const names = entries.map((e) => e.name);
  const sorted = [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  assert.deepEqual(names, sorted, `readdir(${dir}) is sorted by UTF-8 bytes`);
  for (const e of entries) {
    const p = dir ? `${dir}/${e.name}` : e.name;
    const st = zfs.lstat(p);
    assert.ok(st, `lstat(${p})`);
    assert.equal(st.type, e.type, `${p}: readdir type matches lstat`);
    out.set(p, st);
    if (e.type === "directory") walkZip(zfs, p, out);
  }
  return out;
}

let source: Map<string, SourceNode>;
const zips = { deflated: "", stored: "", zip64: "" };

before(() => {
  if (!hasZip) return;
  writeTree(src, {
    "dir/sub/deep/file.txt": "three levels down\n",
    "dir/other.txt": "other\n",
    "dir/sub/sibling/": "",
    "emptydir/": "",
    "empty.txt": "",
    "big.txt": BIG,
    "random.bin": RANDOM,
    "ünï cødé.txt": "unicode name\n",
    "日本/日本.txt": "japanese\n",
    link: { link: "dir/sub/deep/file.txt" },
    dirlink: { link: "dir" },
    "script.sh": { mode: 0o755, data: "#!/bin/sh\necho hi\n" },
  });
  // Fixed times with a fractional part, set deepest first so that directory times stick.
  const all = [...walkSource(src).entries()].sort((a, b) => b[0].split("/").length - a[0].split("/").length);
  all.forEach(([p, node], k) => {
    const t = 1_600_000_000 + 3 * k + 0.5;
    if (node.type === "symlink") fs.lutimesSync(path.join(src, p), t, t);
    else fs.utimesSync(path.join(src, p), t, t);
  });
  source = walkSource(src);
  const zip = (name: string, flags: string[]): string => {
    const out = path.join(work, name);
    // A UTF-8 locale so that zip takes the names' bytes as they are.
    execFileSync("zip", ["-q", "-r", "-y", ...flags, out, "."], {
      cwd: src,
      env: { ...process.env, LC_ALL: "C.UTF-8" },
    });
    return out;
  };
  zips.deflated = zip("deflated.zip", []);
  zips.stored = zip("stored.zip", ["-0", "-X"]);
  zips.zip64 = zip("zip64.zip", ["-fz"]);
});

/** Offset of a member's data, from its local header. */
function dataOffset(file: string, zfs: ZipFileSystem, name: string): { start: number; size: number } {
  const m = zfs.members.find((x) => x.name === name)!;
  const header = Buffer.alloc(30);
  const fd = fs.openSync(file, "r");
  fs.readSync(fd, header, 0, 30, m.localHeaderOffset);
  fs.closeSync(fd);
  return {
    start: m.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28),
    size: m.compressedSize,
  };
}

describe("zip type: archives made by the zip CLI", { skip: !hasZip && "no zip CLI" }, () => {
  for (const variant of ["deflated", "stored", "zip64"] as const) {
    describe(variant, () => {
      let zfs: ZipFileSystem;
      before(async () => {
        zfs = await mount({ path: zips[variant] });
      });

      it("lists exactly the source tree", () => {
        assert.equal(zfs.skipped.length, 0, JSON.stringify(zfs.skipped));
        const tree = walkZip(zfs);
        assert.deepEqual([...tree.keys()].sort(), [...source.keys()].sort());
        for (const [p, want] of source) assert.equal(tree.get(p)!.type, want.type, p);
      });

      it("stats: mode, size, times, ino, nlink, blocks, owner", () => {
        const owner = fs.statSync(zips[variant]);
        const root = zfs.lstat("")!;
        assert.equal(root.type, "directory");
        assert.equal(root.ino, 1);
        assert.equal(root.mode, S_IFDIR | 0o755);
        const inos = new Set<number>([root.ino]);
        for (const [p, want] of source) {
          const st = zfs.lstat(p)!;
          assert.equal(st.mode, want.mode, `${p}: mode ${st.mode.toString(8)}`);
          if (want.type !== "directory") assert.equal(st.size, want.size, `${p}: size`);
          assert.equal(st.uid, owner.uid);
          assert.equal(st.gid, owner.gid);
          assert.equal(st.rdev, 0);
          assert.equal(st.mtimeNs / 1_000_000n, BigInt(Math.floor(st.mtimeMs)), `${p}: ms and ns agree`);
          if (variant === "stored") {
            // -X drops the extended timestamp: DOS time, rounded to even seconds.
            assert.ok(Math.abs(st.mtimeMs - want.mtimeMs) <= 1000, `${p}: ${st.mtimeMs} vs ${want.mtimeMs}`);
          } else {
            assert.equal(st.mtimeMs, Math.floor(want.mtimeMs / 1000) * 1000, `${p}: UT mtime`);
          }
          const member = zfs.members.find((m) => m.name.replace(/\/$/, "") === p)!;
          assert.equal(st.ino, member.index + 2, `${p}: ino`);
          assert.equal(st.blocks, Math.ceil(member.compressedSize / 512));
          assert.ok(!inos.has(st.ino));
          inos.add(st.ino);
          if (want.type === "directory") {
            const subdirs = [...source].filter(
              ([q, n]) => n.type === "directory" && path.posix.dirname(q) === p,
            );
            assert.equal(st.nlink, 2 + subdirs.length, `${p}: nlink`);
          } else {
            assert.equal(st.nlink, 1);
          }
          assert.deepEqual(zfs.lstat(p), st, "stable");
        }
        assert.equal(zfs.lstat("script.sh")!.mode, S_IFREG | 0o755);
        assert.equal(zfs.lstat("link")!.mode & S_IFMT, S_IFLNK);
        assert.equal(zfs.lstat("nope"), undefined);
        assert.equal(zfs.lstat("dir/nope/deeper"), undefined);
      });

      it("readFile, readFileAsync and readlink return the source bytes", async () => {
        for (const [p, want] of source) {
          if (want.type === "symlink") assert.equal(zfs.readlink(p), want.target);
          if (want.type !== "file") continue;
          assert.equal(sha256(zfs.readFile!(p)), sha256(want.data!), `${p} (sync)`);
          assert.equal(sha256(await zfs.readFileAsync!(p)), sha256(want.data!), `${p} (async)`);
        }
      });

      it("positioned reads through open() match the source", async () => {
        const next = prng(42);
        for (const p of ["big.txt", "random.bin", "ünï cødé.txt", "empty.txt"]) {
          const want = source.get(p)!.data!;
          const h = variant === "zip64" ? await zfs.openAsync(p, O_RDONLY, 0) : zfs.open(p, O_RDONLY, 0);
          assert.equal(h.stat().size, want.length);
          for (let k = 0; k < 25; k++) {
            const pos = Math.floor(next() * (want.length + 10));
            const len = Math.floor(next() * 70_000);
            const buf = Buffer.alloc(len + 3);
            const n = k % 2 ? h.read(buf, 3, len, pos) : await h.readAsync!(buf, 3, len, pos);
            const expect = want.subarray(pos, pos + len);
            assert.equal(n, expect.length, `${p} @${pos}+${len}`);
            assert.ok(buf.subarray(3, 3 + n).equals(expect), `${p} @${pos}+${len}`);
          }
          assert.equal(h.read(Buffer.alloc(4), 0, 4, want.length), 0, "EOF");
          h.close();
          assert.throws(() => h.read(Buffer.alloc(4), 0, 4, 0), isFsError("EBADF", ["CLOSED"]));
        }
      });
    });
  }

  it("-fz really wrote Zip64 records", () => {
    const bytes = fs.readFileSync(zips.zip64);
    const eocd64 = Buffer.alloc(4);
    eocd64.writeUInt32LE(0x06064b50);
    assert.ok(bytes.includes(eocd64), "zip64 end of central directory record");
  });

  it("members bigger than the cache stream with bounded memory, sequentially and at random", async () => {
    const zfs = await mount({ path: zips.deflated, cacheBytes: 64 * 1024 });
    const member = zfs.members.find((m) => m.name === "big.txt")!;
    assert.equal(member.method, 8);
    const h = zfs.open("big.txt", O_RDONLY, 0);
    // Sequential, in odd-sized chunks, sync and async alternating.
    const out = Buffer.alloc(BIG.length);
    for (let pos = 0, k = 0; pos < BIG.length; k++) {
      const n = k % 2 ? h.read(out, pos, 40_000, pos) : await h.readAsync!(out, pos, 40_000, pos);
      assert.ok(n > 0);
      pos += n;
    }
    assert.equal(sha256(out), sha256(BIG));
    // Random: forward skips, backward seeks (restart from 0), seeks within the kept window.
    const next = prng(9);
    for (let k = 0; k < 30; k++) {
      const pos =
        k % 3 === 2 ? Math.max(0, Math.floor(next() * BIG.length) - 1) : Math.floor(next() * BIG.length);
      const len = 1 + Math.floor(next() * 100_000);
      const buf = Buffer.alloc(len);
      const n = k % 2 ? h.read(buf, 0, len, pos) : await h.readAsync!(buf, 0, len, pos);
      assert.ok(buf.subarray(0, n).equals(BIG.subarray(pos, pos + len)), `@${pos}+${len}`);
      const back = Buffer.alloc(100);
      const m = h.read(back, 0, 100, Math.max(0, pos - 1000));
      assert.ok(
        back.subarray(0, m).equals(BIG.subarray(Math.max(0, pos - 1000), Math.max(0, pos - 1000) + 100)),
      );
    }
    // Concurrent async reads on one handle, and a sync read while they run.
    const reads = Array.from({ length: 12 }, (_, k) => {
      const pos = Math.floor(next() * (BIG.length - 5000));
      const buf = Buffer.alloc(5000);
      return h.readAsync!(buf, 0, 5000, pos).then((n) => ({ n, pos, buf, k }));
    });
    const syncBuf = Buffer.alloc(1000);
    assert.equal(h.read(syncBuf, 0, 1000, 123_456), 1000);
    assert.ok(syncBuf.equals(BIG.subarray(123_456, 124_456)));
    for (const { n, pos, buf } of await Promise.all(reads)) {
      assert.equal(n, 5000);
      assert.ok(buf.equals(BIG.subarray(pos, pos + 5000)));
    }
    h.close();
    // Whole-file reads do not go through the cache, but work.
    assert.equal(sha256(zfs.readFile!("big.txt")), sha256(BIG));
    assert.equal(sha256(await zfs.readFileAsync!("big.txt")), sha256(BIG));
  });

  it("a small cache still serves everything (LRU eviction), concurrent loads share one decode", async () => {
    const zfs = await mount({ path: zips.deflated, cacheBytes: 3.5 * 1024 * 1024 });
    const all = await Promise.all(Array.from({ length: 8 }, () => zfs.readFileAsync!("big.txt")));
    for (const b of all) assert.equal(sha256(b), sha256(BIG));
    all[0].fill(0); // callers own their buffers: the cached copy is untouched
    assert.equal(sha256(zfs.readFile!("big.txt")), sha256(BIG));
    for (const [p, want] of source) {
      if (want.type === "file") assert.ok(zfs.readFile!(p).equals(want.data!), p);
    }
    const h = zfs.open("big.txt", O_RDONLY, 0);
    const buf = Buffer.alloc(10);
    assert.equal(h.read(buf, 0, 10, BIG.length - 10), 10);
    assert.ok(buf.equals(BIG.subarray(BIG.length - 10)));
  });

  it("options: uid/gid override, validation, missing file", async () => {
    const zfs = await mount({ path: zips.deflated, uid: 1234, gid: 5678 });
    assert.equal(zfs.lstat("big.txt")!.uid, 1234);
    assert.equal(zfs.lstat("")!.gid, 5678);
    await assert.rejects(zipType.create({ path: "" }), isFsError("EINVAL", ["INVALID_ARGUMENT"]));
    await assert.rejects(
      zipType.create({ path: zips.deflated, cacheBytes: -1 }),
      isFsError("EINVAL", ["INVALID_ARGUMENT"]),
    );
    await assert.rejects(
      zipType.create({ path: path.join(work, "missing.zip") }),
      isFsError("ENOENT", ["IO_ERROR"]),
    );
    await assert.rejects(zipType.create({ path: work }), isFsError("EINVAL", ["INVALID_ARGUMENT"]));
  });

  it("read-only: writes are refused at open, directories cannot be opened, statfs", async () => {
    const zfs = await mount({ path: zips.deflated });
    assert.throws(() => zfs.open("big.txt", O_RDWR, 0), isFsError("EROFS", ["UNSUPPORTED"]));
    assert.throws(() => zfs.open("dir", O_RDONLY, 0), isFsError("EISDIR", ["IS_A_DIRECTORY"]));
    assert.equal(zipType.capabilities.readonly, true);
    assert.equal((zfs as FileSystem).mkdir, undefined);
    const sf = zfs.statfs!();
    assert.equal(sf.files, source.size + 1);
    assert.equal(sf.bfree, 0);
    assert.ok(sf.blocks * sf.bsize >= fs.statSync(zips.deflated).size);
  });

  it("close releases the archive; later reads fail with EBADF", async () => {
    const zfs = (await zipType.create({ path: zips.deflated })) as ZipFileSystem;
    const h = zfs.open("dir/other.txt", O_RDONLY, 0);
    const pending = zfs.readFileAsync!("random.bin").then(
      (data) => assert.ok(data.equals(RANDOM)),
      (e: unknown) => isFsError("EBADF", ["CLOSED"])(e),
    );
    await zfs.close();
    await pending; // a read in flight at close completes or fails cleanly, never reads a reused fd
    assert.throws(() => h.read(Buffer.alloc(4), 0, 4, 0), isFsError("EBADF", ["CLOSED"]));
    assert.throws(() => zfs.readFile!("big.txt"), isFsError("EBADF", ["CLOSED"]));
    assert.ok(zfs.lstat("big.txt"), "metadata stays readable");
    await zfs.close();
  });

  describe("corruption", () => {
    it("a flipped byte in a deflated member: EIO, never wrong bytes", async () => {
      const probe = await mount({ path: zips.deflated });
      const { start, size } = dataOffset(zips.deflated, probe, "big.txt");
      for (const [k, where] of [0.5, 0.01, 0.99].entries()) {
        const bytes = fs.readFileSync(zips.deflated);
        bytes[start + Math.floor(size * where)] ^= 1 << (k + 2);
        const file = path.join(work, `corrupt-${k}.zip`);
        fs.writeFileSync(file, bytes);
        for (const cacheBytes of [undefined, 64 * 1024]) {
          const zfs = await mount({ path: file, cacheBytes });
          assert.throws(() => zfs.readFile!("big.txt"), isFsError("EIO", CORRUPT_READ));
          await assert.rejects(zfs.readFileAsync!("big.txt"), isFsError("EIO", CORRUPT_READ));
          // Read through a handle until the end: some read must fail.
          const h = zfs.open("big.txt", O_RDONLY, 0);
          const buf = Buffer.alloc(256 * 1024);
          let failure: unknown;
          for (let pos = 0; pos < BIG.length; ) {
            try {
              pos += h.read(buf, 0, buf.length, pos);
            } catch (e) {
              failure = e;
              break;
            }
          }
          assert.ok(failure, `cacheBytes ${cacheBytes}: a corrupt member read to its end must fail`);
          isFsError("EIO", CORRUPT_READ)(failure);
          if (cacheBytes === undefined) {
            // Decoded whole before any byte is returned: the very first read fails.
            assert.throws(() => h.read(buf, 0, 10, 0), isFsError("EIO", CORRUPT_READ));
          }
          // Other members are unaffected.
          assert.ok(zfs.readFile!("random.bin").equals(RANDOM));
        }
      }
    });

    it("a flipped byte in a stored member: CRC_MISMATCH on whole and sequential reads", async () => {
      const probe = await mount({ path: zips.stored });
      const { start, size } = dataOffset(zips.stored, probe, "big.txt");
      const bytes = fs.readFileSync(zips.stored);
      bytes[start + Math.floor(size / 3)] ^= 0x10;
      const file = path.join(work, "corrupt-stored.zip");
      fs.writeFileSync(file, bytes);
      const zfs = await mount({ path: file });
      assert.throws(() => zfs.readFile!("big.txt"), isFsError("EIO", ["CRC_MISMATCH"]));
      await assert.rejects(zfs.readFileAsync!("big.txt"), isFsError("EIO", ["CRC_MISMATCH"]));
      const h = zfs.open("big.txt", O_RDONLY, 0);
      const buf = Buffer.alloc(1024 * 1024);
      assert.equal(h.read(buf, 0, buf.length, 0), buf.length);
      assert.equal(await h.readAsync!(buf, 0, buf.length, buf.length), buf.length);
      // The read that reaches the end completes the CRC.
      assert.throws(() => h.read(buf, 0, buf.length, 2 * buf.length), isFsError("EIO", ["CRC_MISMATCH"]));
      // Random access cannot check: it returns the (damaged) bytes as stored.
      assert.equal(h.read(buf, 0, 100, 1000), 100);
    });

    it("a broken local header: BAD_OBJECT at open", async () => {
      const probe = await mount({ path: zips.deflated });
      const m = probe.members.find((x) => x.name === "dir/other.txt")!;
      const bytes = fs.readFileSync(zips.deflated);
      bytes[m.localHeaderOffset] ^= 0xff;
      const file = path.join(work, "bad-local.zip");
      fs.writeFileSync(file, bytes);
      const zfs = await mount({ path: file });
      assert.throws(() => zfs.open("dir/other.txt", O_RDONLY, 0), isFsError("EIO", ["BAD_OBJECT"]));
      await assert.rejects(zfs.readFileAsync!("dir/other.txt"), isFsError("EIO", ["BAD_OBJECT"]));
      assert.equal(zfs.readFile!("dir/sub/deep/file.txt").toString(), "three levels down\n");
    });

    it("truncated or non-zip files fail to mount with a BfcError (BAD_HEADER)", async () => {
      const bytes = fs.readFileSync(zips.deflated);
      for (const [name, data] of [
        ["half.zip", bytes.subarray(0, bytes.length >> 1)],
        ["tail-cut.zip", bytes.subarray(0, bytes.length - 10)],
        ["empty.zip", Buffer.alloc(0)],
        ["text.zip", Buffer.from("definitely not a zip archive\n".repeat(10))],
      ] as const) {
        const file = path.join(work, name);
        fs.writeFileSync(file, data);
        await assert.rejects(zipType.create({ path: file }), isFsError("EIO", ["BAD_HEADER"]), name);
      }
      // A bad record in the middle of the central directory: yauzl errors mid-listing, no crash.
      const probe = await mount({ path: zips.deflated });
      const eocd = bytes.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
      const cdStart = bytes.readUInt32LE(eocd + 16);
      const second = bytes.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), cdStart + 4);
      const broken = Buffer.from(bytes);
      broken[second] = 0;
      const file = path.join(work, "bad-cd.zip");
      fs.writeFileSync(file, broken);
      await assert.rejects(zipType.create({ path: file }), (e: unknown) => {
        isFsError("EIO", ["BAD_HEADER"])(e);
        assert.match((e as Error).message, /central directory file header signature/);
        return true;
      });
      assert.ok(probe.members.length > 2);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Archives built byte by byte

interface Crafted {
  name: string | Buffer;
  data?: Buffer | string;
  method?: number;
  /** st_mode for a Unix-made entry; omitted: made on MS-DOS (host 0). */
  unixMode?: number;
  flags?: number;
  extra?: Buffer;
  dosDate?: number;
  dosTime?: number;
  crc?: number;
  /** Recorded uncompressed size, when it should lie. */
  size?: number;
  compressedSize?: number;
  localHeaderOffset?: number;
}

function extraField(id: number, data: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16LE(id, 0);
  head.writeUInt16LE(data.length, 2);
  return Buffer.concat([head, data]);
}

function craftZip(entries: Crafted[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.isBuffer(e.name) ? e.name : Buffer.from(e.name);
    const raw = Buffer.from(e.data ?? "");
    const method = e.method ?? 0;
    const body = method === 8 && e.data !== undefined ? zlib.deflateRawSync(raw) : raw;
    const extra = e.extra ?? Buffer.alloc(0);
    const crc = e.crc ?? zlib.crc32(raw);
    const csize = e.compressedSize ?? body.length;
    const date = e.dosDate ?? ((2020 - 1980) << 9) | (6 << 5) | 15;
    const time = e.dosTime ?? (10 << 11) | (20 << 5) | 15;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(e.flags ?? 0, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(time, 10);
    local.writeUInt16LE(date, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(csize, 18);
    local.writeUInt32LE(e.size ?? raw.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(extra.length, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(e.unixMode === undefined ? 20 : (3 << 8) | 30, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(e.flags ?? 0, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(time, 12);
    central.writeUInt16LE(date, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(csize, 20);
    central.writeUInt32LE(e.size ?? raw.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt16LE(extra.length, 30);
    central.writeUInt32LE(e.unixMode === undefined ? 0 : (e.unixMode << 16) >>> 0, 38);
    central.writeUInt32LE(e.localHeaderOffset ?? offset, 42);
    const record = Buffer.concat([local, name, extra, body]);
    locals.push(record);
    centrals.push(Buffer.concat([central, name, extra]));
    offset += record.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

describe("zip type: crafted archives", () => {
  const dir = tempDir("bfc-zip-crafted-");
  const UT_SECONDS = 1_500_000_000;
  const NTFS_NS = 1_600_000_000_123_456_700n;
  const ut = Buffer.alloc(5);
  ut[0] = 1;
  ut.writeUInt32LE(UT_SECONDS, 1);
  const ntfs = Buffer.alloc(32);
  ntfs.writeUInt16LE(1, 4);
  ntfs.writeUInt16LE(24, 6);
  ntfs.writeBigUInt64LE(NTFS_NS / 100n + 116444736000000000n, 8);

  const oldUnix = Buffer.alloc(8);
  oldUnix.writeUInt32LE(1_400_000_000, 4);

  const entries: Crafted[] = [
    { name: "../evil", data: "escaped" },
    { name: "/abs", data: "absolute" },
    { name: "ok/../../x", data: "dotdot" },
    { name: "win\\evil.txt", data: "backslash" },
    { name: "C:/drive.txt", data: "drive" },
    { name: Buffer.from("nul\0name.txt"), data: "nul" },
    { name: "", data: "empty" },
    { name: "./", data: "" },
    { name: "good.txt", data: "good", unixMode: 0o100640, extra: extraField(0x5455, ut) },
    { name: "a//b/", unixMode: 0o40700 },
    { name: "a//b//c.txt", data: "c", method: 8 },
    { name: "./dot/x.txt", data: "x", extra: extraField(0x000a, ntfs) },
    { name: "implicit/deeper/leaf.txt", data: "leaf", unixMode: 0o600 },
    { name: "file", data: "a file" },
    { name: "file/child", data: "under a file" },
    { name: "dup.txt", data: "first" },
    { name: "dup.txt", data: "second", method: 8 },
    { name: "link", data: "good.txt", unixMode: 0o120777 },
    { name: "escape-link", data: "../../etc/passwd", unixMode: 0o120777, method: 8 },
    { name: "long-link", data: "x".repeat(5000), unixMode: 0o120777 },
    { name: "link", data: "", unixMode: 0o120777 }, // a later duplicate, itself invalid
    { name: "linkdir", data: "a/b", unixMode: 0o120777 },
    { name: "linkdir/below.txt", data: "beneath a symlink" },
    { name: "encrypted.bin", data: "secret", method: 8, flags: 1 },
    { name: "bzip2.bin", data: "BZh9...", method: 12 },
    { name: "trunc.bin", data: "short", method: 8, compressedSize: 1_000_000 },
    { name: "badlocal.txt", data: "x", localHeaderOffset: 3 },
    { name: "badcrc.txt", data: "stored with a wrong CRC", crc: 0x12345678 },
    { name: "badcrc-deflate.txt", data: "deflated with a wrong CRC ".repeat(20), method: 8, crc: 1 },
    { name: Buffer.from([0x80, 0x41, 0x2e, 0x74]), data: "cp437" },
    { name: "flagged é.txt", data: "utf8 flag", flags: 0x800 },
    { name: "fifo", data: "", unixMode: 0o010644 },
    { name: "nomode.txt", data: "bits only", unixMode: 0o604 },
    { name: "slashfile/", unixMode: 0o100644 },
    { name: "slashfile/inside.txt", data: "kept" },
    { name: "B", data: "" },
    { name: "Z", data: "" },
    { name: "é", data: "" },
    { name: "short.txt", data: "x".repeat(100), method: 8, size: 200 },
    { name: "bomb.txt", data: "y".repeat(100_000), method: 8, size: 1000 },
    { name: "old-unix-time.txt", data: "", extra: extraField(0x5855, oldUnix) },
    { name: "n".repeat(256), data: "long component" },
    { name: `${"d/".repeat(2048)}f`, data: "too deep" },
    { name: `${"d/".repeat(100)}leaf`, data: "deep enough" },
  ];
  const file = path.join(dir, "crafted.zip");
  fs.writeFileSync(file, craftZip(entries));
  const archiveMtime = new Date("2019-03-04T05:06:07Z");
  fs.utimesSync(file, archiveMtime, archiveMtime);
  const dosMs = new Date(2020, 5, 15, 10, 20, 30).getTime();

  let zfs: ZipFileSystem;
  before(async () => {
    zfs = await mount({ path: file });
  });

  it("hostile names are skipped and recorded, nothing lands outside the root", () => {
    const skipped = new Map(zfs.skipped.map((s) => [s.index, s.reason]));
    const expectSkipped: [number, RegExp][] = [
      [0, /'\.\.'/],
      [1, /absolute/],
      [2, /'\.\.'/],
      [3, /backslash/],
      [4, /drive/],
      [5, /NUL/],
      [6, /empty/],
      [7, /root/],
      [14, /beneath file/],
      [15, /duplicate/],
      [17, /duplicate/],
      [19, /symlink target: longer/],
      [20, /symlink target: empty/],
      [22, /beneath symlink/],
      [41, /component longer than 255/],
      [42, /path of 4096 bytes or more/],
    ];
    for (const [index, reason] of expectSkipped) {
      assert.match(
        skipped.get(index) ?? "(not skipped)",
        reason,
        `entry ${index} (${zfs.members[index].name})`,
      );
    }
    assert.equal(zfs.skipped.length, expectSkipped.length, JSON.stringify(zfs.skipped, null, 1));
    const tree = walkZip(zfs);
    for (const p of tree.keys()) {
      assert.ok(!p.split("/").some((c) => c === ".." || c === "." || c === ""), p);
      assert.ok(!p.includes("\\") && !p.includes("\0"), p);
    }
    assert.deepEqual(
      zfs.readdir("").map((e) => e.name),
      [
        "B",
        "Z",
        "a",
        "badcrc-deflate.txt",
        "badcrc.txt",
        "badlocal.txt",
        "bomb.txt",
        "bzip2.bin",
        "d",
        "dot",
        "dup.txt",
        "encrypted.bin",
        "escape-link",
        "fifo",
        "file",
        "flagged é.txt",
        "good.txt",
        "implicit",
        "linkdir",
        "nomode.txt",
        "old-unix-time.txt",
        "short.txt",
        "slashfile",
        "trunc.bin",
        "ÇA.t",
        "é",
      ],
    );
    assert.equal(zfs.readFile!("dup.txt").toString(), "second", "last duplicate wins");
    assert.equal(zfs.lstat("file")!.type, "file");
    assert.equal(zfs.lstat("file/child"), undefined);
    assert.equal(zfs.lstat("linkdir")!.type, "symlink");
    assert.equal(zfs.lstat("link"), undefined, "both 'link' records dropped: first lost, last invalid");
  });

  it("types, modes and times from the attributes and extra fields", () => {
    const good = zfs.lstat("good.txt")!;
    assert.equal(good.mode, S_IFREG | 0o640);
    assert.equal(good.mtimeNs, BigInt(UT_SECONDS) * 1_000_000_000n);
    assert.equal(good.mtimeMs, UT_SECONDS * 1000);
    const dot = zfs.lstat("dot/x.txt")!;
    assert.equal(dot.mode, S_IFREG | 0o644, "MS-DOS made: default file mode");
    assert.equal(dot.mtimeNs, NTFS_NS);
    assert.equal(zfs.lstat("dup.txt")!.mtimeMs, dosMs, "DOS time is local time");
    assert.equal(zfs.lstat("a/b")!.mode, S_IFDIR | 0o700);
    assert.equal(zfs.lstat("a/b")!.mtimeMs, dosMs);
    assert.equal(zfs.readFile!("a/b/c.txt").toString(), "c");
    for (const implicit of ["a", "dot", "implicit", "implicit/deeper"]) {
      const st = zfs.lstat(implicit)!;
      assert.equal(st.mode, S_IFDIR | 0o755, implicit);
      assert.equal(st.mtimeMs, archiveMtime.getTime(), implicit);
      assert.ok(st.ino >= entries.length + 2, "implicit directories number after the entries");
    }
    assert.equal(zfs.lstat("implicit")!.nlink, 3);
    assert.equal(zfs.lstat("implicit/deeper")!.nlink, 2);
    assert.equal(
      zfs.lstat("implicit/deeper/leaf.txt")!.mode,
      S_IFREG | 0o600,
      "no S_IFMT: type from the name",
    );
    assert.equal(zfs.lstat("nomode.txt")!.mode, S_IFREG | 0o604);
    assert.equal(zfs.lstat("slashfile")!.mode, S_IFDIR | 0o644, "a trailing slash beats S_IFREG bits");
    assert.equal(zfs.readFile!("slashfile/inside.txt").toString(), "kept");
    assert.equal(zfs.lstat("fifo")!.mode, S_IFREG | 0o644, "devices and fifos are served as files");
    assert.equal(zfs.readlink("escape-link"), "../../etc/passwd", "targets are kept exactly");
    assert.equal(zfs.lstat("escape-link")!.size, "../../etc/passwd".length);
    assert.equal(zfs.readlink("linkdir"), "a/b");
    assert.equal(zfs.readFile!("ÇA.t").toString(), "cp437", "not UTF-8, not flagged: CP437");
    assert.equal(zfs.readFile!("flagged é.txt").toString(), "utf8 flag");
    assert.equal(zfs.lstat("old-unix-time.txt")!.mtimeMs, 1_400_000_000_000);
    assert.equal(zfs.readFile!(`${"d/".repeat(100)}leaf`).toString(), "deep enough");
    assert.equal(zfs.lstat("d/d")!.nlink, 3);
  });

  it("recorded sizes that lie: SIZE_MISMATCH, whole or streamed", async () => {
    const streaming = await mount({ path: file, cacheBytes: 0 });
    for (const fsys of [zfs, streaming]) {
      for (const name of ["short.txt", "bomb.txt"]) {
        assert.throws(() => fsys.readFile!(name), isFsError("EIO", ["SIZE_MISMATCH"]), name);
        await assert.rejects(fsys.readFileAsync!(name), isFsError("EIO", ["SIZE_MISMATCH"]), name);
        const h = fsys.open(name, O_RDONLY, 0);
        const size = h.stat().size;
        const buf = Buffer.alloc(size);
        assert.throws(() => h.read(buf, 0, size, 0), isFsError("EIO", ["SIZE_MISMATCH"]), name);
        await assert.rejects(h.readAsync!(buf, 0, size, 0), isFsError("EIO", ["SIZE_MISMATCH"]), name);
      }
    }
  });

  it("unsupported and damaged members fail at open with precise reasons", async () => {
    assert.throws(() => zfs.open("encrypted.bin", O_RDONLY, 0), isFsError("EACCES", ["UNSUPPORTED"]));
    assert.throws(() => zfs.readFile!("encrypted.bin"), isFsError("EACCES", ["UNSUPPORTED"]));
    assert.throws(() => zfs.open("bzip2.bin", O_RDONLY, 0), isFsError("ENOTSUP", ["UNSUPPORTED"]));
    await assert.rejects(zfs.readFileAsync!("bzip2.bin"), isFsError("ENOTSUP", ["UNSUPPORTED"]));
    assert.throws(() => zfs.open("trunc.bin", O_RDONLY, 0), isFsError("EIO", ["TRUNCATED"]));
    await assert.rejects(zfs.openAsync!("trunc.bin", O_RDONLY, 0), isFsError("EIO", ["TRUNCATED"]));
    assert.throws(() => zfs.open("badlocal.txt", O_RDONLY, 0), isFsError("EIO", ["BAD_OBJECT"]));
    assert.throws(() => zfs.readFile!("badcrc.txt"), isFsError("EIO", ["CRC_MISMATCH"]));
    assert.throws(() => zfs.readFile!("badcrc-deflate.txt"), isFsError("EIO", ["CRC_MISMATCH"]));
    const h = zfs.open("badcrc.txt", O_RDONLY, 0);
    assert.throws(() => h.read(Buffer.alloc(100), 0, 100, 0), isFsError("EIO", ["CRC_MISMATCH"]));
    assert.throws(() => zfs.open("nope", O_RDONLY, 0), isFsError("ENOENT", ["NOT_FOUND"]));
  });

  it("a streamed member with a wrong CRC fails when read to its end", async () => {
    const small = await mount({ path: file, cacheBytes: 0 });
    const h = small.open("badcrc-deflate.txt", O_RDONLY, 0);
    const size = h.stat().size;
    const buf = Buffer.alloc(size);
    // The whole stream decodes in the first step, so even a short read reaches the check.
    assert.throws(() => h.read(buf, 0, 10, 0), isFsError("EIO", ["CRC_MISMATCH"]));
    assert.throws(() => h.read(buf, 0, size, 0), isFsError("EIO", ["CRC_MISMATCH"]));
    await assert.rejects(h.readAsync!(buf, 0, size - 5, 5), isFsError("EIO", ["CRC_MISMATCH"]));
    const c = small.open("a/b/c.txt", O_RDONLY, 0);
    assert.equal(c.read(buf, 0, 10, 0), 1);
    assert.equal(buf.subarray(0, 1).toString(), "c");
  });

  it("an empty archive mounts as an empty root", async () => {
    const empty = path.join(dir, "empty.zip");
    fs.writeFileSync(empty, craftZip([]));
    const z = await mount({ path: empty });
    assert.deepEqual(z.readdir(""), []);
    assert.equal(z.lstat("")!.nlink, 2);
  });
});

describe("zip type: fuzzed archives", { skip: !hasZip && "no zip CLI" }, () => {
  it("every flipped byte or cut gives the right bytes or a BfcError, never anything else", async () => {
    const fuzzSrc = path.join(work, "fuzz-src");
    const files: Record<string, Buffer> = {
      "a.txt": compressible(20_000),
      "b.bin": randomBytes(3000, 11),
      "d/c.txt": Buffer.from("small\n"),
      "d/e/empty": Buffer.alloc(0),
    };
    writeTree(fuzzSrc, { ...files, "d/link": { link: "c.txt" } });
    const original = path.join(work, "fuzz.zip");
    execFileSync("zip", ["-q", "-r", "-y", original, "."], { cwd: fuzzSrc });
    const bytes = fs.readFileSync(original);
    const next = prng(2024);
    const file = path.join(work, "fuzzed.zip");
    let mountedOk = 0;
    for (let k = 0; k < 250; k++) {
      let mutated: Buffer;
      if (k % 10 === 9) mutated = bytes.subarray(0, Math.floor(next() * bytes.length));
      else {
        mutated = Buffer.from(bytes);
        for (let f = 0; f < 1 + (k % 3); f++) mutated[Math.floor(next() * bytes.length)] ^= 1 << (k % 8);
      }
      fs.writeFileSync(file, mutated);
      let zfs: ZipFileSystem;
      try {
        zfs = (await zipType.create({ path: file, cacheBytes: k % 2 ? 0 : undefined })) as ZipFileSystem;
      } catch (e) {
        assert.ok(e instanceof BfcError, String(e));
        continue;
      }
      mountedOk++;
      try {
        walkZip(zfs);
        for (const [name, want] of Object.entries(files)) {
          if (zfs.lstat(name)?.type !== "file") continue;
          for (const read of [
            () => zfs.readFile!(name),
            () => zfs.readFileAsync!(name),
            () => {
              const h = zfs.open(name, O_RDONLY, 0);
              const out = Buffer.alloc(h.stat().size);
              for (let pos = 0; pos < out.length; ) pos += h.read(out, pos, 4096, pos);
              return out;
            },
          ]) {
            try {
              const got = await read();
              assert.ok(got.equals(want), `iteration ${k}: ${name} read back different bytes`);
            } catch (e) {
              assert.ok(
                e instanceof BfcError,
                `iteration ${k}: ${name}: ${(e as Error)?.stack ?? String(e)}`,
              );
            }
          }
        }
      } finally {
        await zfs.close();
      }
    }
    assert.ok(mountedOk > 50, `${mountedOk} mutated archives mounted`);
  });
});

describe("zip type: the streaming inflater", () => {
  function inflate(compressed: Buffer, chunk: number): Buffer {
    const inf = new Inflater();
    const parts: Buffer[] = [];
    let pos = 0;
    while (!inf.done) {
      if (inf.needsInput()) {
        const space = inf.inputSpace();
        const n = Math.min(space.length, chunk, compressed.length - pos);
        space.set(compressed.subarray(pos, pos + n));
        pos += n;
        inf.commitInput(n, pos === compressed.length);
      }
      parts.push(Buffer.from(inf.step()));
    }
    return Buffer.concat(parts);
  }

  it("matches zlib for every block type and chunking", () => {
    const text = compressible(400_000);
    const inputs = [
      Buffer.alloc(0),
      Buffer.from("a"),
      text,
      randomBytes(200_000, 3),
      Buffer.alloc(300_000, 9),
    ];
    const { Z_FIXED, Z_HUFFMAN_ONLY, Z_RLE } = zlib.constants;
    const settings: zlib.ZlibOptions[] = [
      { level: 0 },
      { level: 1 },
      { level: 9 },
      { strategy: Z_FIXED },
      { strategy: Z_HUFFMAN_ONLY },
      { strategy: Z_RLE },
      { memLevel: 1 },
    ];
    for (const input of inputs) {
      for (const options of settings) {
        const compressed = zlib.deflateRawSync(input, options);
        for (const chunk of [65536, 1500]) {
          assert.ok(
            inflate(compressed, chunk).equals(input),
            `${input.length} ${JSON.stringify(options)} ${chunk}`,
          );
        }
      }
    }
  });

  it("rejects truncated and invalid streams", () => {
    const compressed = zlib.deflateRawSync(compressible(100_000));
    assert.throws(() => inflate(compressed.subarray(0, 500), 65536), isFsError("EIO", ["DECOMPRESS_FAILED"]));
    assert.throws(
      () => inflate(Buffer.from([0xff, 0xff, 0xff]), 65536),
      isFsError("EIO", ["DECOMPRESS_FAILED"]),
    );
    assert.throws(() => inflate(Buffer.alloc(0), 65536), isFsError("EIO", ["DECOMPRESS_FAILED"]));
  });
});
