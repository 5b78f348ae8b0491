/**
 * The `disk` VFS type over ext images: what the conformance suite cannot see (it runs the disk type
 * too, on its own tree): owners, nanosecond and extended-epoch times, birth times, device nodes,
 * fifos and sockets in stat and readdir, hard links, statfs, mount options and mount-time errors.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { RawFile } from "../../src/disk/block-source.ts";
import { ExtFileSystem } from "../../src/disk/ext/filesystem.ts";
import { BfcError } from "../../src/errors.ts";
import { createVfs } from "../../src/vfs/index.ts";
import { type DiskFileSystem, diskType } from "../../src/vfs/types/disk.ts";
import { baseImage } from "../disk/ext-craft.ts";
import { buildExtImages, extToolsMissing, FILES, inTree, SPECIAL, SYMLINKS } from "../disk/ext-fixtures.ts";
import { caught, prng, rejected, sha256, tempDir } from "../helpers.ts";

const MISSING = extToolsMissing();
if (MISSING) console.log(`# disk type: image cases skipped: ${MISSING}`);
const fixtures = MISSING ? undefined : await buildExtImages(["ext4"]);
const IMAGE = fixtures?.images.ext4 as string;
const SOURCE = fixtures?.sources.main as string;
const WORK = tempDir("bfc-disk-vfs-");

const V = (rel: string): string => (rel === "" ? "/mnt" : `/mnt/${rel}`);

async function collect(stream: NodeJS.ReadableStream & { toArray(): Promise<unknown[]> }): Promise<Buffer> {
  return Buffer.concat(((await stream.toArray()) as Buffer[]).map((c) => Buffer.from(c)));
}

describe("disk type over an ext4 image", { skip: MISSING }, () => {
  const vfs = createVfs();
  const ext = MISSING ? undefined : ExtFileSystem.open(new RawFile(IMAGE));

  it("mounts read-only, with the image as its source", async () => {
    const info = await vfs.mount("disk", "/mnt", { image: IMAGE });
    assert.equal(info.readonly, true);
    assert.equal(info.source, IMAGE);
    assert.equal(info.type, "disk");
    const sync = createVfs();
    sync.mountSync("disk", "/m", { image: IMAGE });
    assert.equal(sync.readFileSync("/m/hello.txt", "utf8"), "hello world\n");
    await sync.unmount("/m");
  });

  it("lists the source tree plus what mkfs and debugfs added, with every file type", () => {
    const walk = (rel: string): void => {
      const want = fs.readdirSync(path.join(SOURCE, rel)).sort();
      const got = (vfs.readdirSync(V(rel)) as string[]).slice().sort();
      const extra = got.filter((n) => !want.includes(n));
      const expectedExtra =
        rel === "" ? ["lost+found"] : rel === "special" ? ["dev-big", "dev-null", "dev-sda"] : [];
      assert.deepEqual(extra, expectedExtra, `extra names in /${rel}`);
      assert.deepEqual(
        want.filter((n) => !got.includes(n)),
        [],
        `missing names in /${rel}`,
      );
      for (const d of fs.readdirSync(path.join(SOURCE, rel), { withFileTypes: true })) {
        if (d.isDirectory()) walk(rel === "" ? d.name : `${rel}/${d.name}`);
      }
    };
    walk("");
    const kinds = Object.fromEntries(
      (vfs.readdirSync(V("special"), { withFileTypes: true }) as fs.Dirent[]).map((d) => [
        d.name,
        [d.isFIFO(), d.isSocket(), d.isCharacterDevice(), d.isBlockDevice()].map(Number).join(""),
      ]),
    );
    assert.deepEqual(kinds, {
      "dev-big": "0010",
      "dev-null": "0010",
      "dev-sda": "0001",
      fifo: "1000",
      socket: "0100",
    });
    assert.ok(
      (vfs.readdirSync(V(""), { withFileTypes: true }) as fs.Dirent[])
        .find((d) => d.name === "link9")
        ?.isSymbolicLink(),
    );
  });

  it("stats every entry like the source (mode, size, nlink, seconds) with the ext inode number", () => {
    const changed = new Set<string>([SPECIAL.uid.path]);
    const check = (rel: string): void => {
      const want = fs.lstatSync(path.join(SOURCE, rel), { bigint: true });
      const got = vfs.lstatSync(V(rel), { bigint: true });
      assert.equal(got.mode, want.mode, `${rel} mode`);
      if (!want.isDirectory()) assert.equal(got.size, want.size, `${rel} size`);
      assert.equal(got.nlink, want.nlink, `${rel} nlink`);
      // Whole seconds (mkfs -d keeps no more), rounded down (1960 is negative).
      const sec = (ns: bigint): bigint =>
        (ns - (((ns % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n)) / 1_000_000_000n;
      assert.equal(sec(got.mtimeNs), sec(want.mtimeNs), `${rel} mtime`);
      if (!changed.has(rel)) assert.deepEqual([got.uid, got.gid], [want.uid, want.gid], `${rel} owner`);
      assert.equal(got.ino, BigInt(ext?.resolve(rel)?.ino ?? -1), `${rel} ino`);
      for (const d of want.isDirectory() ? fs.readdirSync(path.join(SOURCE, rel)) : []) {
        check(rel === "" ? d : `${rel}/${d}`);
      }
    };
    for (const top of fs.readdirSync(SOURCE)) if (top !== "dir3000") check(top);
    check("dir3000/entry-with-a-longish-name-0010");
  });

  it("reports owners, nanoseconds, epochs, birth times, devices and hard links exactly", () => {
    const big = vfs.statSync(V(SPECIAL.uid.path));
    assert.deepEqual([big.uid, big.gid], [SPECIAL.uid.uid, SPECIAL.uid.gid]);
    const hello = vfs.statSync(V("hello.txt"), { bigint: true });
    assert.equal(hello.mtimeNs % 1_000_000_000n, 123456789n);
    assert.equal(hello.mtimeMs, hello.mtimeNs / 1_000_000n);
    assert.equal(vfs.statSync(V("hello.txt")).mtime.getTime(), Number(hello.mtimeNs / 1_000_000n));
    assert.equal(vfs.statSync(V(SPECIAL.future.path), { bigint: true }).mtimeNs, 4102444800000000001n);
    assert.equal(vfs.statSync(V(SPECIAL.past.path), { bigint: true }).mtimeNs, -315619199999999995n);
    assert.equal(vfs.statSync(V(SPECIAL.past.path)).mtime.toISOString(), "1960-01-01T00:00:00.000Z");
    const t = vfs.statSync(V(SPECIAL.times.path), { bigint: true });
    assert.equal(t.atimeNs % 1_000_000_000n, 7n);
    assert.equal(t.ctimeNs % 1_000_000_000n, 11n);
    assert.equal(t.birthtimeNs % 1_000_000_000n, 13n);
    assert.ok(t.birthtimeNs > 2n ** 32n * 1_000_000_000n, "crtime with epoch bits");
    for (const d of SPECIAL.devices) {
      const st = vfs.lstatSync(V(d.path));
      assert.equal(st.mode, d.mode, d.path);
      assert.equal(st.isCharacterDevice(), d.type === "character");
      assert.equal(st.isBlockDevice(), d.type === "block");
      assert.equal(st.rdev, (d.minor & 0xff) | (d.major << 8) | ((d.minor & ~0xff) << 12), d.path);
    }
    assert.ok(vfs.lstatSync(V("special/fifo")).isFIFO());
    assert.ok(vfs.lstatSync(V("special/socket")).isSocket());
    const a = vfs.statSync(V("hard-a"));
    const b = vfs.statSync(V("links/sub/hard-b"));
    assert.equal(a.ino, b.ino);
    assert.equal(a.nlink, 2);
    assert.ok(vfs.statSync(V("big/random-5m.bin")).blocks >= (5 * 1024 * 1024) / 512);
    const sfs = vfs.statfsSync(V(""));
    assert.equal(sfs.type, 0xef53);
    assert.equal(sfs.bsize, 4096);
  });

  it("reads contents (sync, async, streams, positioned) and symlinks like the source", async () => {
    for (const f of FILES) {
      if (!inTree("main", f.path) || (f.path.startsWith("dir3000/") && !f.path.endsWith("00"))) continue;
      const want = fs.readFileSync(path.join(SOURCE, f.path));
      assert.equal(sha256(vfs.readFileSync(V(f.path)) as Buffer), sha256(want), f.path);
    }
    for (const rel of ["sparse.bin", "big/random-5m.bin"]) {
      const want = fs.readFileSync(path.join(SOURCE, rel));
      assert.equal(sha256((await vfs.promises.readFile(V(rel))) as Buffer), sha256(want), `${rel} async`);
      assert.equal(sha256(await collect(vfs.createReadStream(V(rel)))), sha256(want), `${rel} stream`);
      const fh = await vfs.promises.open(V(rel));
      const fd = vfs.openSync(V(rel), "r");
      try {
        const next = prng(want.length);
        for (let k = 0; k < 20; k++) {
          const pos = Math.floor(next() * want.length);
          const len = 1 + Math.floor(next() * (k < 2 ? 3_000_000 : 200_000));
          const a = Buffer.alloc(len);
          const n = vfs.readSync(fd, a, 0, len, pos);
          assert.ok(a.subarray(0, n).equals(want.subarray(pos, pos + len)), `${rel} pread ${pos}+${len}`);
          const b = Buffer.alloc(len);
          const { bytesRead } = await fh.read(b, 0, len, pos);
          assert.equal(bytesRead, n);
          assert.ok(b.subarray(0, n).equals(a.subarray(0, n)), `${rel} async pread ${pos}+${len}`);
        }
      } finally {
        vfs.closeSync(fd);
        await fh.close();
      }
    }
    for (const [link, target] of Object.entries(SYMLINKS)) assert.equal(vfs.readlinkSync(V(link)), target);
    assert.equal(vfs.readFileSync(V("link9"), "utf8"), "hello world\n");
  });

  it("fails like a read-only Linux filesystem: EROFS, ENOENT, ENOTDIR, EISDIR, ENXIO for special files", async () => {
    for (const run of [
      () => vfs.writeFileSync(V("hello.txt"), "x"),
      () => vfs.mkdirSync(V("new")),
      () => vfs.unlinkSync(V("hello.txt")),
      () => vfs.chmodSync(V("hello.txt"), 0o600),
      () => vfs.symlinkSync("x", V("l")),
    ]) {
      assert.equal(caught(run).code, "EROFS");
    }
    assert.equal(caught(() => vfs.statSync(V("nope"))).code, "ENOENT");
    assert.equal(caught(() => vfs.statSync(V("hello.txt/x"))).code, "ENOTDIR");
    assert.equal(caught(() => vfs.readFileSync(V("big"))).code, "EISDIR");
    assert.equal((await rejected(() => vfs.promises.readFile(V("big")))).code, "EISDIR");
    assert.equal(caught(() => vfs.readFileSync(V("special/fifo"))).code, "ENXIO");
    assert.equal(caught(() => vfs.openSync(V("special/dev-null"), "r")).code, "ENXIO");
    assert.equal(caught(() => vfs.readlinkSync(V("hello.txt"))).code, "EINVAL");
  });

  it("unmounts", async () => {
    await vfs.unmount("/mnt");
    ext?.close();
  });
});

describe("disk type: mount options and hostile images", () => {
  const crafted = path.join(WORK, "crafted.img");
  fs.writeFileSync(crafted, baseImage().buf);

  it("mounts a hand-made image, and one at a byte offset inside a larger image", async () => {
    const vfs = createVfs();
    await vfs.mount("disk", "/a", { image: crafted });
    assert.deepEqual(vfs.readdirSync("/a"), ["dir", "hello.txt"]);
    const withPrefix = path.join(WORK, "offset.img");
    fs.writeFileSync(
      withPrefix,
      Buffer.concat([Buffer.alloc(1 << 20, 0xaa), baseImage().buf, Buffer.alloc(4096)]),
    );
    await vfs.mount("disk", "/b", { image: withPrefix, offset: 1 << 20 });
    assert.equal(vfs.readFileSync("/b/dir/inner.txt", "utf8"), "inner\n");
    const fsys = vfs.mounts().find((m) => m.target === "/b");
    assert.equal(fsys?.source, withPrefix);
    await vfs.unmount("/a");
    await vfs.unmount("/b");
    const direct = diskType.createSync?.({ image: crafted }) as DiskFileSystem;
    assert.equal(direct.ext.sb.blockSize, 1024);
    direct.close();
  });

  it("refuses bad options and non-ext images with clear errors", async () => {
    const vfs = createVfs();
    const reason = async (options: Record<string, unknown>): Promise<[string, string]> => {
      const e = (await rejected(() => vfs.mount("disk", "/x", options))) as BfcError;
      assert.ok(e instanceof BfcError, String(e));
      return [e.code, e.reason];
    };
    assert.deepEqual(await reason({}), ["EINVAL", "INVALID_ARGUMENT"]);
    assert.deepEqual(await reason({ image: crafted, offset: -1 }), ["EINVAL", "INVALID_ARGUMENT"]);
    assert.deepEqual(await reason({ image: crafted, offset: 1 << 30 }), ["EINVAL", "INVALID_ARGUMENT"]);
    assert.deepEqual(await reason({ image: path.join(WORK, "missing.img") }), ["ENOENT", "IO_ERROR"]);
    const text = path.join(WORK, "text.img");
    fs.writeFileSync(text, "not a filesystem\n".repeat(1000));
    assert.deepEqual(await reason({ image: text }), ["EINVAL", "BAD_MAGIC"]);
    const e = (await rejected(() => vfs.mount("disk", "/x", { image: crafted, partition: 1 }))) as BfcError;
    assert.deepEqual([e.code, e.reason], ["ENOENT", "NOT_FOUND"]);
    assert.match(e.message, /has no partition table, so there is no partition 1/);
    const both = (await rejected(() =>
      vfs.mount("disk", "/x", { image: crafted, partition: 0, offset: 0 }),
    )) as BfcError;
    assert.deepEqual([both.code, both.reason], ["EINVAL", "INVALID_ARGUMENT"]);
    assert.deepEqual(vfs.mounts(), []);
  });

  it("refuses an unreplayed journal unless ignoreJournal, and reports corruption on access", async () => {
    const c = baseImage();
    c.superblock.writeUInt32LE(c.superblock.readUInt32LE(0x60) | 0x4, 0x60);
    c.inodeRaw(14).writeUInt32LE(0xffffffff, 0x28); // dir/inner.txt's first block: outside the disk
    const dirty = path.join(WORK, "dirty.img");
    fs.writeFileSync(dirty, c.buf);
    const vfs = createVfs();
    const e = (await rejected(() => vfs.mount("disk", "/x", { image: dirty }))) as BfcError;
    assert.equal(e.reason, "NEEDS_RECOVERY");
    await vfs.mount("disk", "/x", { image: dirty, ignoreJournal: true });
    assert.equal(vfs.readFileSync("/x/hello.txt", "utf8"), "hello world\n");
    const bad = caught(() => vfs.readFileSync("/x/dir/inner.txt")) as BfcError;
    assert.equal(bad.code, "EIO");
    assert.equal(bad.reason, "BAD_FILESYSTEM");
    assert.match(bad.message, /^EIO: i\/o error, read '\/x\/dir\/inner.txt' \(.*outside the filesystem/);
    await vfs.unmount("/x");
  });
});
