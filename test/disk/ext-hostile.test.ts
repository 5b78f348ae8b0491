/**
 * The ext reader on hand-made hostile images (test/disk/ext-craft.ts): every broken structure must
 * give a specific BfcError, quickly, without reading outside the image or allocating what it cannot
 * hold.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeRecLen, type ExtDirEntry, parseDirEntries } from "../../src/disk/ext/directory.ts";
import { ExtFileSystem, type ExtOpenOptions } from "../../src/disk/ext/filesystem.ts";
import { walkExt } from "../../src/disk/ext/walker.ts";
import { BfcError } from "../../src/errors.ts";
import {
  BLOCKS,
  BS,
  baseImage,
  blockMap,
  type ExtCraft,
  extentNode,
  INODES,
  S_IFDIR,
  S_IFLNK,
  S_IFREG,
} from "./ext-craft.ts";
import { readAll } from "./ext-helpers.ts";

const EXTENTS_FL = 0x80000;

function open(c: ExtCraft, options: ExtOpenOptions = {}): ExtFileSystem {
  return ExtFileSystem.open(c.source(), options);
}

function walkAll(fsys: ExtFileSystem): string[] {
  const out: string[] = [];
  for (const e of walkExt(fsys)) {
    out.push(e.path);
    if (e.type === "file") readAll(fsys, e.inode);
  }
  return out;
}

/** The BfcError `run` throws, checked for code, reason and a message fragment. */
function fails(run: () => unknown, reason: string, fragment: RegExp | string, code = "EIO"): BfcError {
  let err: unknown;
  try {
    run();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof BfcError, `expected a BfcError, got ${err}`);
  assert.equal(err.reason, reason, err.message);
  assert.equal(err.code, code, err.message);
  if (typeof fragment === "string") assert.ok(err.message.includes(fragment), err.message);
  else assert.match(err.message, fragment);
  return err;
}

describe("ext hostile images: the crafted baseline", () => {
  it("opens and walks a valid hand-made image", () => {
    const fsys = open(baseImage());
    assert.deepEqual(walkAll(fsys), ["", "dir", "dir/inner.txt", "hello.txt"]);
    assert.equal(readAll(fsys, fsys.resolve("hello.txt") as never).toString(), "hello world\n");
  });
});

describe("ext hostile images: superblock and features", () => {
  it("refuses a missing magic, odd geometry and a filesystem larger than its image", () => {
    let c = baseImage();
    c.superblock.writeUInt16LE(0x1234, 0x38);
    fails(() => open(c), "BAD_MAGIC", "no 0xEF53 magic", "EINVAL");
    c = baseImage();
    c.superblock.writeUInt32LE(7, 0x18);
    fails(() => open(c), "BAD_FILESYSTEM", "block size");
    c = baseImage();
    c.superblock.writeUInt32LE(INODES + 1, 0x00);
    fails(() => open(c), "BAD_FILESYSTEM", "inode count");
    c = baseImage();
    c.superblock.writeUInt16LE(100, 0x58);
    fails(() => open(c), "BAD_FILESYSTEM", "inode size 100");
    c = baseImage();
    c.superblock.writeUInt32LE(0, 0x20);
    fails(() => open(c), "BAD_FILESYSTEM", "blocks per group");
    c = baseImage();
    c.superblock.writeUInt32LE(BLOCKS * 4, 0x04);
    c.superblock.writeUInt32LE(INODES * 1, 0x00);
    fails(() => open(c), "TRUNCATED", "image holds only");
  });

  it("refuses unknown incompatible features, compression, journal devices and dirdata", () => {
    for (const [bit, fragment] of [
      [0x40000000, "incompatible features this reader does not know (0x40000000)"],
      [0x1, "e2compr compression"],
      [0x8, "external ext3/ext4 journal device"],
      [0x1000, "dirdata"],
    ] as const) {
      const c = baseImage();
      c.superblock.writeUInt32LE(c.superblock.readUInt32LE(0x60) | bit, 0x60);
      fails(() => open(c), "UNSUPPORTED", fragment, "ENOTSUP");
    }
  });

  it("refuses an unreplayed journal unless asked, then warns", () => {
    const c = baseImage();
    c.superblock.writeUInt32LE(c.superblock.readUInt32LE(0x60) | 0x4, 0x60);
    const e = fails(() => open(c), "NEEDS_RECOVERY", "journal has not been replayed");
    assert.match(e.message, /e2fsck/);
    const warnings: string[] = [];
    const fsys = open(c, { ignoreJournal: true, onWarning: (w) => warnings.push(w) });
    assert.deepEqual(walkAll(fsys), ["", "dir", "dir/inner.txt", "hello.txt"]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] as string, /reading it as it is/);
  });
});

describe("ext hostile images: group descriptors and inodes", () => {
  it("refuses inode tables outside the filesystem", () => {
    for (const table of [0, 1, BLOCKS - 2, 0xffffffff]) {
      const c = baseImage();
      c.groupDescriptor.writeUInt32LE(table, 0x08);
      fails(() => open(c), "BAD_FILESYSTEM", "inode table");
    }
  });

  it("refuses inode numbers out of range, reserved ones and unused inodes", () => {
    const fsys = open(baseImage());
    for (const ino of [0, -1, 1.5, INODES + 1, 2 ** 40]) {
      fails(() => fsys.inode(ino), "BAD_FILESYSTEM", "out of range");
    }
    fails(() => fsys.inode(20), "BAD_FILESYSTEM", "not in use");
    for (const ino of [INODES + 1, 5, 1]) {
      const c = baseImage();
      c.dirBlock(c.inodeRaw(2).readUInt32LE(0x28), [
        { ino: 2, name: ".", type: 2 },
        { ino: 2, name: "..", type: 2 },
        { ino, name: "evil", type: 1 },
      ]);
      fails(() => walkAll(open(c)), "BAD_FILESYSTEM", `inode number ${ino} is out of range`);
    }
  });

  it("refuses a link count of 0, an unknown type and a bad extra size", () => {
    let c = baseImage();
    c.inodeRaw(12).writeUInt16LE(0, 0x1a);
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", "link count is 0");
    c = baseImage();
    c.inodeRaw(12).writeUInt16LE(0o070644, 0x00);
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", "invalid file type");
    c = baseImage();
    c.inodeRaw(12).writeUInt16LE(200, 0x80);
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", "extra inode size");
    c = baseImage();
    c.inodeRaw(2).writeUInt16LE(S_IFREG | 0o644, 0x00);
    fails(() => open(c), "BAD_FILESYSTEM", "root inode is not a directory");
  });
});

describe("ext hostile images: directories", () => {
  const rootBlock = (c: ExtCraft): number => c.inodeRaw(2).readUInt32LE(0x28);

  it("refuses bad record lengths and name lengths", () => {
    for (const [recLen, nameLen, fragment] of [
      [0, undefined, "invalid record length 0"],
      [8, undefined, "invalid record length 8"],
      [14, undefined, "invalid record length 14"],
      [BS * 2, undefined, `invalid record length ${BS * 2}`],
      [16, 20, "name length 20 does not fit"],
    ] as const) {
      const c = baseImage();
      c.dirBlock(rootBlock(c), [
        { ino: 2, name: ".", type: 2 },
        { ino: 2, name: "..", type: 2 },
        { ino: 12, name: "hello.txt", type: 1, recLen, nameLen },
        { ino: 13, name: "dir", type: 2 },
      ]);
      fails(() => walkAll(open(c)), "BAD_FILESYSTEM", fragment);
    }
  });

  it("refuses names with '/' or NUL, empty names, and '.' or '..' outside their slots", () => {
    for (const [name, fragment] of [
      ["a/b", "contains '/' or NUL"],
      [Buffer.from([0x61, 0, 0x62]), "contains '/' or NUL"],
      ["..", "'..' outside its slot"],
      [".", "'.' outside its slot"],
      ["", "empty name"],
    ] as const) {
      const c = baseImage();
      c.dirBlock(rootBlock(c), [
        { ino: 2, name: ".", type: 2 },
        { ino: 2, name: "..", type: 2 },
        { ino: 12, name, type: 1 },
      ]);
      fails(() => walkAll(open(c)), "BAD_FILESYSTEM", fragment);
    }
  });

  it("skips unused slots and decodes 64 KiB record lengths", () => {
    const c = baseImage();
    c.dirBlock(rootBlock(c), [
      { ino: 2, name: ".", type: 2 },
      { ino: 2, name: "..", type: 2 },
      { ino: 0, name: "deleted", type: 1 },
      { ino: 12, name: "hello.txt", type: 1 },
    ]);
    assert.deepEqual(walkAll(open(c)), ["", "hello.txt"]);
    assert.equal(decodeRecLen(0, 65536), 65536);
    assert.equal(decodeRecLen(65535, 65536), 65536);
    assert.equal(decodeRecLen(12, 65536), 12);
    assert.equal(decodeRecLen(0xfffc | 1, 65536), 0xfffc | 0x10000);
    assert.equal(decodeRecLen(0, 4096), 0);
    // One entry spanning a whole 64 KiB block (stored as 0), then an entry in the next block.
    const big = Buffer.alloc(65536 * 2);
    big.writeUInt32LE(12, 0);
    big.writeUInt16LE(0, 4);
    big[6] = 3;
    big[7] = 1;
    big.write("abc", 8);
    big.writeUInt32LE(13, 65536);
    big.writeUInt16LE(65535, 65536 + 4);
    big[65536 + 6] = 1;
    big.write("d", 65536 + 8);
    const out: ExtDirEntry[] = [];
    const parse = {
      label: "x",
      dirIno: 2,
      blockSize: 65536,
      inodesCount: 64,
      firstIno: 11,
      filetype: true,
      first: false,
    };
    parseDirEntries(big, 0, 65536, parse, out);
    parseDirEntries(big, 65536, 131072, parse, out);
    assert.deepEqual(
      out.map((e) => [e.name, e.ino]),
      [
        ["abc", 12],
        ["d", 13],
      ],
    );
  });

  it("refuses a directory loop and a hard-linked directory, but yields file hard links once each", () => {
    let c = baseImage();
    c.dirBlock(c.inodeRaw(13).readUInt32LE(0x28), [
      { ino: 13, name: ".", type: 2 },
      { ino: 2, name: "..", type: 2 },
      { ino: 2, name: "back-to-root", type: 2 },
    ]);
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", "reached both as '/' and as 'dir/back-to-root'");
    c = baseImage();
    c.dirBlock(c.inodeRaw(13).readUInt32LE(0x28), [
      { ino: 13, name: ".", type: 2 },
      { ino: 2, name: "..", type: 2 },
      { ino: 13, name: "self", type: 2 },
    ]);
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", "a loop or a hard-linked directory");
    c = baseImage();
    c.dirBlock(c.inodeRaw(13).readUInt32LE(0x28), [
      { ino: 13, name: ".", type: 2 },
      { ino: 2, name: "..", type: 2 },
      { ino: 12, name: "again.txt", type: 1 },
    ]);
    c.inodeRaw(12).writeUInt16LE(2, 0x1a);
    const entries = [...walkExt(open(c))];
    assert.deepEqual(
      entries.map((e) => [e.path, e.hardlinkOf]),
      [
        ["", undefined],
        ["dir", undefined],
        ["dir/again.txt", undefined],
        ["hello.txt", "dir/again.txt"],
      ],
    );
  });

  it("refuses directory sizes that are not whole blocks; skips directory holes", () => {
    let c = baseImage();
    c.inodeRaw(13).writeUInt32LE(BS + 100, 0x04);
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", "not a whole number of blocks");
    // A 1 TiB directory with one mapped block: the holes cost nothing.
    c = baseImage();
    c.inodeRaw(13).writeUInt32LE(256, 0x6c);
    const t0 = performance.now();
    assert.deepEqual(walkAll(open(c)), ["", "dir", "dir/inner.txt", "hello.txt"]);
    assert.ok(performance.now() - t0 < 2000);
  });
});

describe("ext hostile images: extent trees", () => {
  /** hello.txt (inode 12) mapped by an extent tree whose root is `root`. */
  function withExtents(root: Buffer, size = 12): ExtCraft {
    const c = baseImage({ extents: true });
    const raw = c.inodeRaw(12);
    root.copy(raw, 0x28, 0, 60);
    raw.writeUInt32LE(raw.readUInt32LE(0x20) | EXTENTS_FL, 0x20);
    raw.writeUInt32LE(size % 2 ** 32, 0x04);
    raw.writeUInt32LE(Math.floor(size / 2 ** 32), 0x6c);
    return c;
  }
  const dataBlock = (c: ExtCraft): number => c.alloc();

  it("reads a valid two-level tree, holes and unwritten extents as zeros", () => {
    const c = baseImage({ extents: true });
    const d1 = c.alloc();
    const d2 = c.alloc();
    c.block(d1).fill(0x11);
    c.block(d2).fill(0x22);
    const leaf = c.alloc();
    extentNode(BS, 0, [
      { lblk: 0, len: 1, pblk: d1 },
      { lblk: 3, len: 1, pblk: d2 },
      { lblk: 4, len: 32768 + 2, pblk: d2 },
    ]).copy(c.block(leaf));
    const raw = c.inodeRaw(12);
    extentNode(60, 1, [{ lblk: 0, child: leaf }], 4).copy(raw, 0x28);
    raw.writeUInt32LE(EXTENTS_FL, 0x20);
    raw.writeUInt32LE(8 * BS, 0x04);
    const fsys = open(c);
    const data = readAll(fsys, fsys.resolve("hello.txt") as never);
    const want = Buffer.alloc(8 * BS);
    want.fill(0x11, 0, BS);
    want.fill(0x22, 3 * BS, 4 * BS);
    assert.ok(data.equals(want));
    assert.deepEqual(
      [...fsys.runs(fsys.resolve("hello.txt") as never)].map((r) => [r.offset / BS, r.length / BS, r.hole]),
      [
        [0, 1, false],
        [1, 2, true],
        [3, 1, false],
        [4, 4, true],
      ],
    );
  });

  it("refuses a bad magic, too many entries, a depth bomb and a depth that does not fall", () => {
    let c = withExtents(extentNode(60, 0, [], 4));
    c.inodeRaw(12).writeUInt16LE(0x1234, 0x28);
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", "bad extent header magic");
    c = withExtents(extentNode(60, 0, [{ lblk: 0, len: 1, pblk: 30 }], 5));
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", "room for 4");
    c = withExtents(extentNode(60, 0, [{ lblk: 0, len: 1, pblk: 30 }], 4));
    c.inodeRaw(12).writeUInt16LE(6, 0x28 + 2);
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", "claims 6 of 4 entries");
    c = withExtents(extentNode(60, 6, [{ lblk: 0, child: 30 }], 4));
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", "depth 6 exceeds 5");
    // A chain of nodes that all claim the same depth: endless without the depth rule.
    c = baseImage({ extents: true });
    const a = c.alloc();
    const b = c.alloc();
    extentNode(BS, 2, [{ lblk: 0, child: b }]).copy(c.block(a));
    extentNode(BS, 2, [{ lblk: 0, child: a }]).copy(c.block(b));
    const raw = c.inodeRaw(12);
    extentNode(60, 3, [{ lblk: 0, child: a }], 4).copy(raw, 0x28);
    raw.writeUInt32LE(EXTENTS_FL, 0x20);
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", /depth 2 below a node of depth 2/);
  });

  it("refuses a cycle, a block visited twice, bad ranges and extents outside the filesystem", () => {
    // A node that points at itself.
    let c = baseImage({ extents: true });
    const self = c.alloc();
    extentNode(BS, 1, [{ lblk: 0, child: self }]).copy(c.block(self));
    let raw = c.inodeRaw(12);
    extentNode(60, 2, [{ lblk: 0, child: self }], 4).copy(raw, 0x28);
    raw.writeUInt32LE(EXTENTS_FL, 0x20);
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", /depth|twice/);
    // Two index entries sharing one leaf.
    c = baseImage({ extents: true });
    const leaf = c.alloc();
    const d = dataBlock(c);
    extentNode(BS, 0, [{ lblk: 0, len: 1, pblk: d }]).copy(c.block(leaf));
    raw = c.inodeRaw(12);
    extentNode(
      60,
      1,
      [
        { lblk: 0, child: leaf },
        { lblk: 10, child: leaf },
      ],
      4,
    ).copy(raw, 0x28);
    raw.writeUInt32LE(EXTENTS_FL, 0x20);
    raw.writeUInt32LE(20 * BS, 0x04);
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", /twice|outside its parent/);
    for (const [entries, fragment] of [
      [[{ lblk: 0, len: 0, pblk: 30 }], "invalid length 0"],
      [[{ lblk: 0, len: 1, pblk: BLOCKS }], "outside the filesystem"],
      [[{ lblk: 0, len: 4, pblk: BLOCKS - 2 }], "outside the filesystem"],
      [[{ lblk: 0, len: 1, pblk: 0 }], "outside the filesystem"],
      [
        [
          { lblk: 5, len: 1, pblk: 30 },
          { lblk: 2, len: 1, pblk: 31 },
        ],
        "out of order",
      ],
      [
        [
          { lblk: 0, len: 4, pblk: 30 },
          { lblk: 2, len: 1, pblk: 31 },
        ],
        "overlaps itself",
      ],
      [[{ lblk: 2 ** 32 - 1, len: 2, pblk: 30 }], "invalid length"],
    ] as const) {
      c = withExtents(extentNode(60, 0, entries as never, 4), 2 ** 40);
      fails(() => [...open(c).runs(12)], "BAD_FILESYSTEM", fragment);
    }
    c = withExtents(extentNode(60, 1, [{ lblk: 0, child: BLOCKS + 5 }], 4));
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", "extent index points outside");
  });

  it("reads a 1 TiB sparse file's end without reading or allocating the holes", () => {
    const c = withExtents(extentNode(60, 0, [{ lblk: 0, len: 1, pblk: 30 }], 4), 2 ** 40);
    c.block(30).fill(0x33);
    const src = c.source();
    const fsys = ExtFileSystem.open(src);
    fsys.inode(12);
    const before = src.reads;
    const buf = Buffer.alloc(100, 0xff);
    assert.equal(fsys.read(12, buf, 2 ** 40 - 50), 50);
    assert.ok(buf.subarray(0, 50).every((b) => b === 0));
    assert.equal(src.reads, before, "a read inside a hole touches nothing");
    const runs = [...fsys.runs(12)];
    assert.deepEqual(
      runs.map((r) => [r.offset, r.length, r.hole]),
      [
        [0, BS, false],
        [BS, 2 ** 40 - BS, true],
      ],
    );
  });
});

describe("ext hostile images: block maps", () => {
  it("reads single and double indirect blocks and holes", () => {
    const c = baseImage();
    const ind = c.alloc();
    const dind = c.alloc();
    const ind2 = c.alloc();
    const d = [c.alloc(), c.alloc(), c.alloc()];
    d.forEach((b, k) => {
      c.block(b).fill(0x41 + k);
    });
    c.block(ind).writeUInt32LE(d[0] as number, 4 * 3); // logical 15
    c.block(dind).writeUInt32LE(ind2, 4 * 1); // logical 12 + 256 + 256 ...
    c.block(ind2).writeUInt32LE(d[1] as number, 4 * 7);
    const size = (12 + 256 + 256 + 8) * BS;
    c.setInode(12, { mode: S_IFREG | 0o644, size, iBlock: blockMap([d[2] as number], ind, dind) });
    const fsys = open(c);
    const data = readAll(fsys, 12);
    const want = Buffer.alloc(size);
    want.fill(0x43, 0, BS);
    want.fill(0x41, 15 * BS, 16 * BS);
    const l2 = 12 + 256 + 256 + 7;
    want.fill(0x42, l2 * BS, (l2 + 1) * BS);
    assert.ok(data.equals(want));
  });

  it("refuses pointers outside the filesystem and indirect blocks used twice, and caps mapped data", () => {
    let c = baseImage();
    c.setInode(12, { mode: S_IFREG | 0o644, size: 20 * BS, iBlock: blockMap([30, BLOCKS + 1]) });
    fails(() => readAll(open(c), 12), "BAD_FILESYSTEM", "points outside the filesystem");
    c = baseImage();
    let ind = c.alloc();
    c.block(ind).writeUInt32LE(0xfffffff0, 0);
    c.setInode(12, { mode: S_IFREG | 0o644, size: 20 * BS, iBlock: blockMap([], ind) });
    fails(() => readAll(open(c), 12), "BAD_FILESYSTEM", "points outside the filesystem");
    // A triple-indirect block whose every entry is the same double-indirect block, whose every
    // entry is one all-zero indirect block: 256^3 iterations without the once-only rule.
    c = baseImage();
    const tind = c.alloc();
    const dind = c.alloc();
    ind = c.alloc();
    for (let k = 0; k < BS / 4; k++) {
      c.block(tind).writeUInt32LE(dind, 4 * k);
      c.block(dind).writeUInt32LE(ind, 4 * k);
    }
    c.setInode(12, { mode: S_IFREG | 0o644, size: 2 ** 40, iBlock: blockMap([], 0, 0, tind) });
    const t0 = performance.now();
    fails(() => [...open(c).runs(12)], "BAD_FILESYSTEM", "indirect block");
    assert.ok(performance.now() - t0 < 2000);
    // Every pointer of an indirect block at one data block: more data than the filesystem holds.
    c = baseImage();
    ind = c.alloc();
    const dind2 = c.alloc();
    const inds = Array.from({ length: 3 }, () => c.alloc());
    for (const b of inds) for (let k = 0; k < BS / 4; k++) c.block(b).writeUInt32LE(30, 4 * k);
    inds.forEach((b, k) => {
      c.block(dind2).writeUInt32LE(b, 4 * k);
    });
    c.setInode(12, { mode: S_IFREG | 0o644, size: 2 ** 30, iBlock: blockMap([], 0, dind2) });
    fails(() => [...open(c).runs(12)], "BAD_FILESYSTEM", "maps more data than the filesystem holds");
  });
});

describe("ext hostile images: symlinks, inline data, xattrs, encryption", () => {
  it("refuses fast symlinks that do not fit and targets with NUL", () => {
    let c = baseImage();
    c.setInode(12, { mode: S_IFLNK | 0o777, size: 70, iBlock: Buffer.alloc(60, 0x61) });
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", "does not fit in the inode");
    c = baseImage();
    c.setInode(12, { mode: S_IFLNK | 0o777, size: 3, iBlock: Buffer.from("a\0b") });
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", "containing NUL");
    c = baseImage();
    c.setInode(12, { mode: S_IFLNK | 0o777, size: 9, iBlock: Buffer.from("hello.txt") });
    assert.equal(open(c).readlink(12).toString(), "hello.txt");
  });

  it("refuses inline data without system.data or larger than it", () => {
    const INLINE = 0x10000000;
    let c = baseImage();
    c.setInode(12, { mode: S_IFREG | 0o644, size: 12, flags: INLINE, iBlock: Buffer.from("hello world\n") });
    fails(() => readAll(open(c), 12), "BAD_FILESYSTEM", "no system.data");
    c = baseImage();
    const raw = c.setInode(12, {
      mode: S_IFREG | 0o644,
      size: 70,
      flags: INLINE,
      iBlock: Buffer.alloc(60, 0x61),
    });
    // In-inode xattrs: magic, then "data" (index 7) with a 4-byte value.
    const x = 128 + 32;
    raw.writeUInt32LE(0xea020000, x);
    raw[x + 4] = 4;
    raw[x + 5] = 7;
    raw.writeUInt16LE(40, x + 6);
    raw.writeUInt32LE(4, x + 12);
    raw.write("data", x + 20);
    raw.write("bbbb", x + 4 + 40);
    fails(() => readAll(open(c), 12), "BAD_FILESYSTEM", "exceeds its inline data (64 bytes)");
    raw.writeUInt32LE(64, 0x04);
    c.superblock.writeUInt32LE(c.superblock.readUInt32LE(0x60) | 0x8000, 0x60);
    assert.equal(readAll(open(c), 12).toString(), `${"a".repeat(60)}bbbb`);
    raw.writeUInt16LE(200, x + 6);
    fails(() => readAll(open(c), 12), "BAD_FILESYSTEM", "lies outside its area");
  });

  it("refuses xattr blocks with a bad magic, entries past the end and oversized values", () => {
    const setup = (fill: (b: Buffer) => void): ExtCraft => {
      const c = baseImage();
      const b = c.alloc();
      const blk = c.block(b);
      blk.writeUInt32LE(0xea020000, 0);
      blk.writeUInt32LE(1, 4);
      blk.writeUInt32LE(1, 8);
      fill(blk);
      c.inodeRaw(12).writeUInt32LE(b, 0x68);
      return c;
    };
    const entry = (blk: Buffer, valueOffs: number, valueSize: number, name = "comment"): void => {
      blk[32] = name.length;
      blk[33] = 1;
      blk.writeUInt16LE(valueOffs, 34);
      blk.writeUInt32LE(valueSize, 40);
      blk.write(name, 48);
    };
    let c = setup((blk) => {
      entry(blk, BS - 16, 5);
      blk.write("value", BS - 16);
    });
    assert.deepEqual(
      open(c)
        .xattrs(12)
        .map((x) => [x.name, x.value.toString()]),
      [["user.comment", "value"]],
    );
    c = setup((blk) => blk.writeUInt32LE(0x12345678, 0));
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", "bad magic");
    c = setup((blk) => entry(blk, BS - 4, 16));
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", "lies outside its area");
    c = setup((blk) => entry(blk, 0, 1 << 20));
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", "xattr value of 1048576 bytes");
    c = setup((blk) => {
      for (let at = 32; at + 20 <= BS; at += 20) {
        blk[at] = 4;
        blk[at + 1] = 1;
        blk.write("name", at + 16);
      }
      blk[1012] = 4; // an entry whose header would end past the block
    });
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", "truncated xattr entry");
    c = baseImage();
    c.inodeRaw(12).writeUInt32LE(BLOCKS + 3, 0x68);
    fails(() => walkAll(open(c)), "BAD_FILESYSTEM", "outside the filesystem");
  });

  it("skips encrypted inodes with a warning and refuses to read them", () => {
    const c = baseImage();
    c.inodeRaw(13).writeUInt32LE(0x800, 0x20);
    const warnings: string[] = [];
    const fsys = open(c);
    const paths = [...walkExt(fsys, { onWarning: (w) => warnings.push(w) })].map((e) => e.path);
    assert.deepEqual(paths, ["", "hello.txt"]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] as string, /'dir'.*encrypted/);
    fails(() => fsys.readdir(13), "UNSUPPORTED", "encrypted", "EACCES");
  });

  it("reads a directory whose type byte is unknown by its inode, and reports non-directories as such", () => {
    const fsys = open(baseImage());
    fails(() => fsys.readdir(12), "NOT_A_DIRECTORY", "not a directory", "ENOTDIR");
    fails(() => fsys.readlink(12), "NOT_A_SYMLINK", "not a symlink", "EINVAL");
    assert.equal(fsys.lookup(12, "x"), undefined);
    assert.equal(fsys.inode(13).type, "directory");
    assert.equal(fsys.inode(2).mode & 0o170000, S_IFDIR);
  });
});
