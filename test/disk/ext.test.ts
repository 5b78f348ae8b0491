/**
 * The ext2/3/4 reader against real images made by e2fsprogs (test/disk/ext-fixtures.ts): the
 * walker's listing must equal debugfs's golden listing of the same image field by field, the values
 * debugfs set must come back exactly, and contents must equal the source tree's.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { RawFile } from "../../src/disk/block-source.ts";
import { ExtFileSystem } from "../../src/disk/ext/filesystem.ts";
import { type ExtWalkEntry, walkExt } from "../../src/disk/ext/walker.ts";
import { BfcError } from "../../src/errors.ts";
import { prng, sha256 } from "../helpers.ts";
import { DEBUGFS_TYPES, debugfsGolden, goldenTimeNs } from "./debugfs-golden.ts";
import {
  ACL_VALUE,
  buildExtImages,
  EXT_IMAGE_NAMES,
  type ExtImageName,
  extToolsMissing,
  FILES,
  inTree,
  SPECIAL,
  SYMLINKS,
  treeOf,
} from "./ext-fixtures.ts";
import { contentSha256, readAll } from "./ext-helpers.ts";

const MISSING = extToolsMissing();
if (MISSING) console.log(`# ext reader: skipped: ${MISSING}`);
const fixtures = MISSING ? undefined : await buildExtImages();

function open(name: ExtImageName): ExtFileSystem {
  return ExtFileSystem.open(new RawFile(fixtures?.images[name] as string));
}

function walkAll(fsys: ExtFileSystem): Map<string, ExtWalkEntry> {
  const out = new Map<string, ExtWalkEntry>();
  for (const e of walkExt(fsys)) {
    assert.ok(!out.has(e.path), `walked twice: ${e.path}`);
    out.set(e.path, e);
  }
  return out;
}

for (const name of EXT_IMAGE_NAMES) {
  describe(`ext reader: ${name}`, { skip: MISSING }, () => {
    const tree = treeOf(name);
    const source = fixtures?.sources[tree] as string;
    const has128 = name === "ext2";

    it("walks the same tree as debugfs, field by field", async () => {
      const image = fixtures?.images[name] as string;
      const golden = await debugfsGolden(image, path.join(fixtures?.dir as string, `golden-${name}`));
      const fsys = open(name);
      const walked = walkAll(fsys);
      assert.deepEqual([...walked.keys()].sort(), [...golden.keys()].sort(), "paths");
      for (const [p, g] of golden) {
        const e = walked.get(p) as ExtWalkEntry;
        const at = `${name}:/${p}`;
        assert.equal(e.ino, g.ino, `${at} ino`);
        assert.equal(e.type, DEBUGFS_TYPES[g.type], `${at} type`);
        assert.equal(e.mode, g.mode, `${at} mode`);
        assert.equal(e.uid, g.uid, `${at} uid`);
        assert.equal(e.gid, g.gid, `${at} gid`);
        assert.equal(e.size, g.size, `${at} size`);
        assert.equal(e.nlink, g.links, `${at} nlink`);
        assert.equal(e.inode.flags, g.flags, `${at} flags`);
        assert.equal(e.inode.generation, g.generation, `${at} generation`);
        assert.equal(e.inode.blocks, g.blockcount, `${at} blocks`);
        for (const [which, ns] of [
          ["atime", e.atimeNs],
          ["ctime", e.ctimeNs],
          ["mtime", e.mtimeNs],
          ["crtime", e.crtimeNs],
        ] as const) {
          const t = g.times[which];
          assert.equal(ns, t === undefined ? undefined : goldenTimeNs(t), `${at} ${which}`);
        }
        if (g.rdev) {
          assert.deepEqual([e.rdevMajor, e.rdevMinor], [g.rdev.major, g.rdev.minor], `${at} rdev`);
        } else assert.equal(e.rdev, 0, `${at} rdev`);
        if (e.type === "symlink") assert.deepEqual(e.linkTargetBytes, g.linkTarget, `${at} target`);
        if (e.type === "file") assert.equal(contentSha256(fsys, e.inode), g.sha256, `${at} content`);
        const wanted = g.xattrs.filter((x) => x.name !== "system.data");
        assert.deepEqual(
          e.xattrs.map((x) => x.name).sort(),
          wanted.map((x) => x.name).sort(),
          `${at} xattr names`,
        );
        for (const x of wanted) {
          // ACLs: debugfs prints ext4's on-disk form; the reader returns getxattr's (checked below).
          if (x.name.startsWith("system.posix_acl_")) continue;
          const mine = e.xattrs.find((y) => y.name === x.name);
          assert.equal(mine?.value.length, x.size, `${at} ${x.name} size`);
          if (x.value) assert.deepEqual(mine?.value, x.value, `${at} ${x.name} value`);
        }
      }
    });

    it("returns what debugfs set: 32-bit owners, devices, nanoseconds and epochs, xattrs, hard links", () => {
      const walked = walkAll(open(name));
      const get = (p: string): ExtWalkEntry => {
        const e = walked.get(p);
        assert.ok(e, `${name}: ${p} missing`);
        return e;
      };
      const owned = get(SPECIAL.uid.path);
      assert.deepEqual([owned.uid, owned.gid], [SPECIAL.uid.uid, SPECIAL.uid.gid]);
      for (const d of SPECIAL.devices) {
        const e = get(d.path);
        assert.equal(e.type, d.type);
        assert.equal(e.mode, d.mode);
        assert.deepEqual([e.rdevMajor, e.rdevMinor], [d.major, d.minor]);
        // glibc's makedev
        const rdev = (d.minor & 0xff) | ((d.major & 0xfff) << 8) | ((d.minor & ~0xff) << 12);
        assert.equal(e.rdev, rdev >>> 0);
      }
      assert.equal(get("special/fifo").type, "fifo");
      assert.equal(get("special/socket").type, "socket");
      for (const x of SPECIAL.xattrs) {
        assert.deepEqual(
          get(x.path).xattrs.find((y) => y.name === x.name)?.value,
          x.name.includes("acl") ? ACL_VALUE : x.value,
          `${x.path} ${x.name}`,
        );
      }
      const a = get("hard-a");
      const b = get("links/sub/hard-b");
      assert.equal(a.ino, b.ino);
      assert.equal(a.nlink, 2);
      assert.equal(a.hardlinkOf, undefined);
      assert.equal(b.hardlinkOf, "hard-a");
      const s = (sec: number) => BigInt(sec) * 1_000_000_000n;
      if (has128) {
        // 128-byte inodes: whole seconds, no creation time, and 2100 wraps to 1963 (32-bit seconds).
        assert.equal(get(SPECIAL.future.path).mtimeNs, s(SPECIAL.future.sec - 2 ** 32));
        assert.equal(get(SPECIAL.past.path).mtimeNs, s(SPECIAL.past.sec));
        assert.equal(get("hello.txt").crtimeNs, undefined);
      } else {
        const hello = get(SPECIAL.hello.path);
        assert.equal(hello.mtimeNs % 1_000_000_000n, BigInt(SPECIAL.hello.ns));
        assert.equal(get(SPECIAL.future.path).mtimeNs, s(SPECIAL.future.sec) + BigInt(SPECIAL.future.ns));
        assert.equal(get(SPECIAL.past.path).mtimeNs, s(SPECIAL.past.sec) + BigInt(SPECIAL.past.ns));
        const t = get(SPECIAL.times.path);
        assert.equal(t.atimeNs % 1_000_000_000n, BigInt(SPECIAL.times.atimeNs));
        assert.equal(t.ctimeNs % 1_000_000_000n, BigInt(SPECIAL.times.ctimeNs));
        const cr = t.crtimeNs as bigint;
        assert.equal(cr % 1_000_000_000n, BigInt(SPECIAL.times.crtimeNs));
        // Epoch bit 1 moves the creation time 2^32 s past its 32-bit value (a date after 2106).
        assert.ok(cr / 1_000_000_000n > 2n ** 32n, "crtime epoch bits");
      }
    });

    it("reads every file and symlink of the source tree back exactly", () => {
      const fsys = open(name);
      for (const f of FILES) {
        if (!inTree(tree, f.path)) continue;
        const inode = fsys.resolve(f.path);
        assert.ok(inode, `${f.path} resolves`);
        assert.equal(inode.mode & 0o7777, f.mode, `${f.path} mode`);
        const want = fs.readFileSync(path.join(source, f.path));
        // mkfs -d with inline_data drops trailing holes: the image may hold a prefix, then zeros.
        assert.ok(
          inode.size <= want.length && (inode.size === want.length || name === "ext4-inline"),
          f.path,
        );
        const got = readAll(fsys, inode);
        assert.ok(got.equals(want.subarray(0, inode.size)), `${f.path} content`);
        assert.ok(
          want.subarray(inode.size).every((b) => b === 0),
          `${f.path} tail`,
        );
      }
      for (const [link, target] of Object.entries(SYMLINKS)) {
        assert.equal(fsys.readlink(fsys.resolve(link) as never).toString(), target, link);
      }
      assert.equal(fsys.resolve("nope"), undefined);
      assert.equal(fsys.resolve("hello.txt/x"), undefined);
      assert.equal(fsys.resolve("link9/x"), undefined, "symlinks are not followed");
      assert.equal(fsys.resolve("")?.ino, 2);
    });

    it("reads at any position like the source file (pread), holes as zeros", () => {
      const fsys = open(name);
      for (const rel of ["sparse.bin", "big/random-300k.bin", "hello.txt"]) {
        const want = fs.readFileSync(path.join(source, rel));
        const inode = fsys.resolve(rel);
        assert.ok(inode);
        const next = prng(inode.size + 7);
        const cases: [number, number][] = [
          [0, 1],
          [inode.size - 1, 10],
          [inode.size, 5],
          [inode.size + 100, 5],
          [4095, 2],
          [12287, 4098],
        ];
        for (let k = 0; k < 40; k++)
          cases.push([Math.floor(next() * inode.size), 1 + Math.floor(next() * 200_000)]);
        for (const [pos, len] of cases) {
          const buf = Buffer.alloc(len, 0xee);
          const n = fsys.read(inode, buf, pos);
          const expect = Math.max(0, Math.min(len, inode.size - pos));
          assert.equal(n, expect, `${rel} read(${pos}, ${len})`);
          assert.ok(
            buf.subarray(0, n).equals(want.subarray(pos, pos + n)),
            `${rel} read(${pos}, ${len}) bytes`,
          );
          assert.ok(
            buf.subarray(n).every((b) => b === 0xee),
            "nothing written past the count",
          );
        }
      }
    });

    it("enumerates sparse files as data runs and holes, merged and in order", () => {
      const fsys = open(name);
      const inode = fsys.resolve("sparse.bin");
      assert.ok(inode);
      const runs = [...fsys.runs(inode)];
      const data = runs.filter((r) => !r.hole);
      const bs = fsys.blockSize;
      const island = FILES.find((f) => f.path === "sparse.bin")?.sparse?.islands ?? [];
      // The data runs cover the islands' blocks; anything else they cover is zeros (mkfs -d with
      // inline_data allocates the first block of the file). An island may be split where its blocks
      // are not physically contiguous, but then its runs must not be mergeable.
      const covered: [number, number][] = [];
      for (const r of data) {
        const last = covered[covered.length - 1];
        if (last && last[1] === r.offset) last[1] += r.length;
        else covered.push([r.offset, r.offset + r.length]);
        assert.ok(r.physical >= 0 && r.physical % bs === 0);
      }
      const islands = island
        .filter(([at]) => at < inode.size)
        .map(([at, bytes]) => [Math.floor(at / bs) * bs, Math.ceil((at + bytes.length) / bs) * bs] as const);
      for (const [lo, hi] of islands) {
        assert.ok(
          covered.some(([a, b]) => a <= lo && hi <= b),
          `${name}: island ${lo}..${hi} is data`,
        );
      }
      for (const [a, b] of covered) {
        if (islands.some(([lo, hi]) => a <= lo && hi <= b && b - a === hi - lo)) continue;
        const extra = Buffer.alloc(b - a);
        fsys.read(inode, extra, a);
        const outside = islands.filter(([lo, hi]) => lo < b && hi > a);
        for (const [lo, hi] of outside) extra.fill(0, Math.max(0, lo - a), Math.min(b, hi) - a);
        assert.ok(
          extra.every((x) => x === 0),
          `${name}: data at ${a}..${b} outside the islands is zeros`,
        );
      }
      for (let k = 1; k < data.length; k++) {
        const prev = data[k - 1] as (typeof data)[number];
        const cur = data[k] as (typeof data)[number];
        if (prev.offset + prev.length === cur.offset) {
          assert.notEqual(prev.physical + prev.length, cur.physical, "contiguous blocks are merged");
        }
      }
      for (let k = 1; k < runs.length; k++) {
        const prev = runs[k - 1] as (typeof runs)[number];
        assert.equal((runs[k] as (typeof runs)[number]).offset, prev.offset + prev.length, "contiguous");
        assert.ok(!(prev.hole && runs[k]?.hole), "adjacent holes are merged");
      }
      // The fixtures exercise the deep mappings: an extent tree below the inode, triple indirection.
      if (inode.flags & 0x80000) assert.ok(inode.raw.readUInt16LE(0x28 + 6) >= 1, "extent tree depth");
      if (name === "ext2") {
        const tind = fsys.resolve("sparse-tind.bin");
        assert.ok(tind && tind.raw.readUInt32LE(0x28 + 14 * 4) !== 0, "triple-indirect block in use");
        const [last] = [...fsys.runs(tind)].filter((r) => !r.hole);
        assert.equal(last?.offset, 70 * 1024 * 1024);
      }
      // A sub-range is clipped to it.
      const part = [...fsys.runs(inode, 12290, 12300)];
      assert.deepEqual(
        part.map((r) => [r.offset, r.length, r.hole]),
        [[12290, 10, false]],
      );
      // A big file with contiguous blocks comes out as few large runs.
      const big = fsys.resolve("big/random-300k.bin");
      assert.ok(big);
      assert.ok([...fsys.runs(big)].length <= 4, "contiguous blocks are merged");
      assert.equal(sha256(readAll(fsys, big)), contentSha256(fsys, big));
    });
  });
}

describe("ext reader: features set by e2fsprogs on a small image", { skip: MISSING }, () => {
  it("reads xattr values kept in their own inode (ea_inode), and refuses an unreplayed journal", () => {
    const dir = path.join(fixtures?.dir as string, "features");
    fs.mkdirSync(dir, { recursive: true });
    const img = path.join(dir, "ea.img");
    const value = path.join(dir, "value");
    const host = path.join(dir, "h.txt");
    fs.writeFileSync(value, Buffer.from(Array.from({ length: 4000 }, (_, k) => 0x41 + (k % 26))));
    fs.writeFileSync(host, "hi\n");
    const run = (cmd: string, args: string[]): string => {
      const r = spawnSync(cmd, args, { encoding: "latin1" });
      assert.equal(r.status, 0, `${cmd} ${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    run("mkfs.ext4", ["-q", "-F", "-O", "ea_inode", "-b", "4096", img, "8M"]);
    run("debugfs", ["-w", "-R", `write ${host} h.txt`, img]);
    run("debugfs", ["-w", "-R", `ea_set -f ${value} /h.txt user.huge`, img]);
    const golden = path.join(dir, "golden");
    run("debugfs", ["-R", `ea_get -f ${golden} /h.txt user.huge`, img]);
    let fsys = ExtFileSystem.open(new RawFile(img));
    const x = fsys.xattrs(fsys.resolve("h.txt") as never);
    assert.deepEqual(
      x.map((e) => e.name),
      ["user.huge"],
    );
    assert.deepEqual(x[0]?.value, fs.readFileSync(golden));
    assert.ok((x[0]?.value.length ?? 0) > 1024, "too large for the inode: it lives in an EA inode");

    run("debugfs", ["-w", "-R", "feature needs_recovery", img]);
    assert.throws(
      () => ExtFileSystem.open(new RawFile(img)),
      (e: unknown) => e instanceof BfcError && e.reason === "NEEDS_RECOVERY",
    );
    const warnings: string[] = [];
    fsys = ExtFileSystem.open(new RawFile(img), { ignoreJournal: true, onWarning: (w) => warnings.push(w) });
    assert.equal(readAll(fsys, fsys.resolve("h.txt") as never).toString(), "hi\n");
    assert.equal(warnings.length, 1);
  });
});
