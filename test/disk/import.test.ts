/**
 * Import of disk images into containers, against debugfs: each ext fixture is built once, put into
 * one GPT disk (ext4, ext4 with inline data and 32-bit descriptors) and one MBR disk (ext3 as a
 * primary, ext2 with 1 KiB blocks and triple-indirect blocks as a logical partition), and the GPT
 * disk converted to every QCOW2 variant the issue lists plus an overlay with changes on a backing
 * file (and the MBR disk to zstd QCOW2). Every filesystem is imported from a raw disk, every QCOW2
 * variant with both GPT filesystems, the overlay and the MBR QCOW2 with both of theirs; each import's listing read back through the Reader (path, type, mode, owner, size, times in
 * ns, link target, device numbers, xattrs, content sha256, hard links) must equal the golden listing
 * debugfs makes of the raw image at the same offset.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { specialType } from "../../src/container/extended-entries.ts";
import { Reader } from "../../src/container/reader.ts";
import { type ImportSummary, importDiskImage } from "../../src/disk/import.ts";
import { importInThread } from "../../src/disk/import-thread.ts";
import { BfcError } from "../../src/errors.ts";
import { createVfs } from "../../src/vfs/index.ts";
import { rejected, tempDir } from "../helpers.ts";
import { DEBUGFS_TYPES, debugfsGolden, type GoldenEntry, goldenTimeNs } from "./debugfs-golden.ts";
import {
  buildGptDisk,
  buildMbrDisk,
  convertToQcow2,
  createOverlay,
  type LaidOutPartition,
  makeExtImage,
  makeSwapImage,
  missingTools,
  QCOW2_VARIANTS,
  qemuIo,
  tool,
} from "./disk-fixtures.ts";
import { buildExtImages, extToolsMissing } from "./ext-fixtures.ts";

const MiB = 1024 * 1024;
const missing = missingTools(["qemu-img", "qemu-io", "sgdisk", "sfdisk", "mke2fs", "mkswap", "debugfs"]);
const SKIP =
  extToolsMissing() ||
  (missing.length > 0
    ? `needs ${missing.join(", ")} (apt-get install qemu-utils gdisk fdisk e2fsprogs)`
    : false);
if (SKIP) console.log(`# disk import: skipped: ${SKIP}`);

interface Disks {
  dir: string;
  gpt: string;
  mbr: string;
  gptParts: LaidOutPartition[];
  mbrParts: LaidOutPartition[];
  /** The GPT disk with partition 1 changed by debugfs (what the overlay reads as). */
  modified: string;
  qcow: Record<string, string>;
  overlay: string;
  mbrZstd: string;
}

/** Writes every 64 KiB chunk where `changed` differs from `base` into the overlay `top`. */
function writeDifferences(base: string, changed: string, top: string, scratch: string): number {
  const a = fs.openSync(base, "r");
  const b = fs.openSync(changed, "r");
  const ba = Buffer.alloc(65536);
  const bb = Buffer.alloc(65536);
  const commands: string[] = [];
  try {
    const size = fs.fstatSync(a).size;
    for (let at = 0; at < size; at += 65536) {
      fs.readSync(a, ba, 0, 65536, at);
      fs.readSync(b, bb, 0, 65536, at);
      if (ba.equals(bb)) continue;
      const chunk = path.join(scratch, `chunk-${at}.bin`);
      fs.writeFileSync(chunk, bb);
      commands.push(`write -s ${chunk} ${at} 65536`);
    }
  } finally {
    fs.closeSync(a);
    fs.closeSync(b);
  }
  if (commands.length > 0) qemuIo(top, commands);
  return commands.length;
}

async function buildDisks(): Promise<Disks> {
  const ext = await buildExtImages(["ext4", "ext4-inline", "ext3", "ext2"]);
  const dir = ext.dir;
  const gpt = path.join(dir, "gpt.img");
  const gptParts = buildGptDisk(gpt, [
    { image: ext.images.ext4, sizeMiB: 96, name: "rootfs" },
    { image: ext.images["ext4-inline"], sizeMiB: 96, name: "inline" },
  ]);
  const mbr = path.join(dir, "mbr.img");
  const swap = path.join(dir, "swap.img");
  makeSwapImage(swap, 8);
  const mbrParts = buildMbrDisk(mbr, {
    primary: [{ image: ext.images.ext3, sizeMiB: 96 }],
    logical: [
      { image: ext.images.ext2, sizeMiB: 96 },
      { image: swap, sizeMiB: 8, type: "82" },
    ],
  });
  const qcow: Record<string, string> = {};
  for (const name of ["v3", "v2", "zlib", "zstd", "4k-zlib", "2m-l2ext"]) {
    qcow[name] = path.join(dir, `gpt-${name}.qcow2`);
    convertToQcow2(gpt, qcow[name], QCOW2_VARIANTS[name]);
  }
  const mbrZstd = path.join(dir, "mbr-zstd.qcow2");
  convertToQcow2(mbr, mbrZstd, QCOW2_VARIANTS.zstd);

  // The overlay: partition 1 changed by debugfs on a copy of the raw disk, and the changed
  // clusters written into an empty overlay over the v3 image (named relatively, as qemu records).
  const modified = path.join(dir, "modified.img");
  fs.copyFileSync(gpt, modified);
  const added = path.join(dir, "added.txt");
  fs.writeFileSync(added, "only in the overlay\n".repeat(100));
  const p1 = `${modified}?offset=${gptParts[0].start}`;
  tool("debugfs", ["-w", "-R", "rm hello.txt", p1]);
  tool("debugfs", ["-w", "-R", `write ${added} overlay-added.txt`, p1]);
  tool("debugfs", ["-w", "-R", "sif s59.txt uid 4242", p1]);
  const overlay = path.join(dir, "overlay.qcow2");
  createOverlay(overlay, path.basename(qcow.v3), "qcow2");
  const written = writeDifferences(gpt, modified, overlay, dir);
  assert.ok(written > 0 && written < 64, `overlay holds ${written} changed clusters`);
  return { dir, gpt, mbr, gptParts, mbrParts, modified, qcow, overlay, mbrZstd };
}

const disks = SKIP ? undefined : await buildDisks();
const goldens = new Map<string, Promise<Map<string, GoldenEntry>>>();

/** The golden listing of the filesystem at `offset` of a raw disk, made once. */
function golden(raw: string, offset: number): Promise<Map<string, GoldenEntry>> {
  const key = `${raw}?offset=${offset}`;
  let g = goldens.get(key);
  if (g === undefined) {
    g = debugfsGolden(key, path.join((disks as Disks).dir, `golden-${goldens.size}`));
    goldens.set(key, g);
  }
  return g;
}

interface Stored {
  type: string;
  mode: number;
  size: number;
  mtimeNs: bigint;
  uid?: number;
  gid?: number;
  atimeNs?: bigint;
  ctimeNs?: bigint;
  birthtimeNs?: bigint;
  xattrs?: Map<string, Buffer>;
  rdev?: [number, number];
  target?: Buffer;
  sha256?: string;
  /** For a hard link: the path whose object it shares. */
  linkOf?: string;
}

async function contentHash(r: Reader, i: number): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of r.contentChunks(i)) h.update(chunk);
  return h.digest("hex");
}

/** Everything a container holds, read back through the Reader: index entries and special entries. */
async function storedListing(r: Reader): Promise<Map<string, Stored>> {
  const out = new Map<string, Stored>();
  for (const e of r.entries()) {
    const a = r.attributesAt(e.index);
    const s: Stored = { type: e.type, mode: e.mode, size: e.size, mtimeNs: e.mtimeNs, ...a };
    if (e.type === "symlink") s.target = r.readlinkBytesAtSync(e.index);
    if (e.type === "file") {
      s.sha256 = await contentHash(r, e.index);
      const t = r.hardlinkTarget(e.index);
      if (t >= 0) s.linkOf = r.index.path(t);
    }
    out.set(e.path, s);
  }
  for (const sp of r.specialEntries()) {
    out.set(sp.path, {
      type: specialType(sp.mode) ?? "?",
      mode: sp.mode,
      size: 0,
      mtimeNs: sp.mtimeNs,
      ...sp.attrs,
      rdev: [sp.rdevMajor, sp.rdevMinor],
    });
  }
  return out;
}

/** The container's listing must equal debugfs's, entry by entry and field by field. */
async function assertMatchesGolden(
  container: string,
  g: Map<string, GoldenEntry>,
  label: string,
  password?: string,
): Promise<void> {
  const r = await Reader.open(container, password === undefined ? {} : { password });
  try {
    const stored = await storedListing(r);
    const want = [...g.keys()].filter((p) => p !== "").sort();
    assert.deepEqual([...stored.keys()].sort(), want, `${label}: paths`);
    const firstOfInode = new Map<number, string>();
    for (const p of [...want].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) {
      const e = g.get(p) as GoldenEntry;
      const s = stored.get(p) as Stored;
      const at = `${label}:/${p}`;
      assert.equal(s.type, DEBUGFS_TYPES[e.type], `${at} type`);
      assert.equal(s.mode, e.mode, `${at} mode`);
      assert.equal(s.uid, e.uid, `${at} uid`);
      assert.equal(s.gid, e.gid, `${at} gid`);
      if (s.type !== "directory") assert.equal(s.size, e.size, `${at} size`);
      assert.equal(s.mtimeNs, goldenTimeNs(e.times.mtime!), `${at} mtime`);
      assert.equal(s.atimeNs, goldenTimeNs(e.times.atime!), `${at} atime`);
      assert.equal(s.ctimeNs, goldenTimeNs(e.times.ctime!), `${at} ctime`);
      assert.equal(s.birthtimeNs, e.times.crtime && goldenTimeNs(e.times.crtime), `${at} crtime`);
      if (e.rdev) assert.deepEqual(s.rdev, [e.rdev.major, e.rdev.minor], `${at} rdev`);
      if (s.type === "symlink") assert.deepEqual(s.target, e.linkTarget, `${at} target`);
      if (s.type === "file") assert.equal(s.sha256, e.sha256, `${at} content`);
      const xattrs = e.xattrs.filter((x) => x.name !== "system.data");
      assert.deepEqual(
        [...(s.xattrs?.keys() ?? [])].sort(),
        xattrs.map((x) => x.name).sort(),
        `${at} xattrs`,
      );
      for (const x of xattrs) {
        // ACLs: debugfs prints ext4's on-disk form, the import keeps getxattr's.
        if (x.name.startsWith("system.posix_acl_")) continue;
        assert.equal(s.xattrs?.get(x.name)?.length, x.size, `${at} ${x.name} size`);
        if (x.value) assert.deepEqual(s.xattrs?.get(x.name), x.value, `${at} ${x.name} value`);
      }
      // The first name of a hard-linked file holds the content; the others share its object.
      if (s.type === "file" && e.links > 1) {
        const first = firstOfInode.get(e.ino);
        if (first === undefined) {
          firstOfInode.set(e.ino, p);
          assert.equal(s.linkOf, undefined, `${at} is the first name`);
        } else assert.equal(s.linkOf, first, `${at} is a hard link to ${first}`);
      } else assert.equal(s.linkOf, undefined, `${at} is no hard link`);
    }
  } finally {
    r.close();
  }
}

interface Case {
  name: string;
  image: () => string;
  partition: number;
  /** Raw disk and partition offset the golden listing is made from. */
  raw: () => string;
  offset: () => number;
  compression?: "zstd" | "auto";
}

const gptP = (n: number) => () => (disks as Disks).gptParts.find((p) => p.index === n)!.start;
const mbrP = (n: number) => () => (disks as Disks).mbrParts.find((p) => p.index === n)!.start;
const d = () => disks as Disks;
const QCOW_NAMES: Record<string, string> = {
  v3: "QCOW2 v3",
  v2: "QCOW2 v2",
  zlib: "QCOW2 zlib",
  zstd: "QCOW2 zstd",
  "4k-zlib": "QCOW2 4 KiB clusters (zlib)",
  "2m-l2ext": "QCOW2 2 MiB clusters + extended L2",
};
const CASES: Case[] = [
  // Every filesystem from a raw disk.
  {
    name: "ext4 (64bit, metadata_csum), raw GPT p1, zstd",
    image: () => d().gpt,
    partition: 1,
    raw: () => d().gpt,
    offset: gptP(1),
    compression: "zstd",
  },
  {
    name: "ext4 inline_data + 32-bit descriptors, raw GPT p2",
    image: () => d().gpt,
    partition: 2,
    raw: () => d().gpt,
    offset: gptP(2),
  },
  {
    name: "ext3, raw MBR p1 (primary)",
    image: () => d().mbr,
    partition: 1,
    raw: () => d().mbr,
    offset: mbrP(1),
  },
  {
    name: "ext2 1 KiB blocks + triple indirect, raw MBR p5 (logical), auto",
    image: () => d().mbr,
    partition: 5,
    raw: () => d().mbr,
    offset: mbrP(5),
    compression: "auto",
  },
  // Every QCOW2 variant, with both filesystems of the GPT disk.
  ...Object.entries(QCOW_NAMES).flatMap(([variant, label]) =>
    [1, 2].map((n) => ({
      name: `${label}, GPT p${n} (${n === 1 ? "ext4" : "ext4 inline_data"})`,
      image: () => d().qcow[variant] as string,
      partition: n,
      raw: () => d().gpt,
      offset: gptP(n),
    })),
  ),
  // The overlay: p1 changed in the overlay, p2 read through to the backing file.
  {
    name: "QCOW2 overlay on a backing file, GPT p1 changed",
    image: () => d().overlay,
    partition: 1,
    raw: () => d().modified,
    offset: gptP(1),
  },
  {
    name: "QCOW2 overlay on a backing file, GPT p2 unchanged",
    image: () => d().overlay,
    partition: 2,
    raw: () => d().gpt,
    offset: gptP(2),
  },
  // The MBR disk as QCOW2: the primary and the logical partition.
  ...[1, 5].map((n) => ({
    name: `QCOW2 zstd of the MBR disk, p${n} (${n === 1 ? "ext3, primary" : "ext2, logical"})`,
    image: () => d().mbrZstd,
    partition: n,
    raw: () => d().mbr,
    offset: mbrP(n),
  })),
];

describe("import of disk images: the listing equals debugfs's golden listing", { skip: SKIP }, () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const out = path.join(d().dir, `import-${CASES.indexOf(c)}.bfc`);
      const warnings: string[] = [];
      const summary = await importDiskImage(c.image(), out, {
        partition: c.partition,
        compression: c.compression,
        onWarning: (m) => warnings.push(m),
      });
      assert.equal(summary.partition, c.partition);
      assert.deepEqual(warnings, []);
      await assertMatchesGolden(out, await golden(c.raw(), c.offset()), c.name);
      fs.rmSync(out);
    });
  }

  it("encrypts and compresses on the way (zstd + password), in a worker thread, with progress", async () => {
    const out = path.join(d().dir, "encrypted.bfc");
    const seen: number[] = [];
    const summary = await importInThread(d().qcow.zstd, out, {
      partition: 2,
      compression: "zstd",
      password: "import secret",
      onProgress: (p) => seen.push(p.bytes),
    });
    assert.ok(seen.length > 0 && seen.every((b, k) => k === 0 || b >= (seen[k - 1] as number)));
    assert.equal(summary.filesystem, "ext4");
    assert.ok(summary.hardlinks === 1 && summary.specials === 5, JSON.stringify(summary));
    const r = await Reader.open(out);
    assert.ok(r.encrypted);
    r.close();
    await assertMatchesGolden(out, await golden(d().gpt, gptP(2)()), "encrypted", "import secret");
    await assert.rejects(
      (async () => {
        const wrong = await Reader.open(out, { password: "wrong" });
        try {
          await wrong.readFile("hello.txt");
        } finally {
          wrong.close();
        }
      })(),
      (e: BfcError) => e.reason === "AUTH_FAILED",
    );
  });
});

describe("import: choosing the partition, refusing what cannot be imported", { skip: SKIP }, () => {
  const scratch = SKIP ? "" : tempDir("bfc-import-");
  // What the failing imports below may leave (their containers, or temporary files beside them).
  const leftovers = () => fs.readdirSync(scratch).filter((n) => /^\.?(hostile|x)\.bfc/.test(n));

  it("fails on a wrong partition number, and with several filesystems and none chosen, listing them", async () => {
    const out = path.join(scratch, "x.bfc");
    const e = (await rejected(() => importDiskImage(d().gpt, out, { partition: 7 }))) as BfcError;
    assert.deepEqual([e.code, e.reason], ["ENOENT", "NOT_FOUND"]);
    assert.match(
      e.message,
      /has no partition 7; its partitions: 1 \(rootfs, ext4, 96 MiB\), 2 \(inline, ext4, 96 MiB\)/,
    );
    const amb = (await rejected(() => importDiskImage(d().mbr, out))) as BfcError;
    assert.equal(amb.reason, "AMBIGUOUS");
    assert.match(
      amb.message,
      /1 \(ext3, 96 MiB\), 2 \(extended, .*\), 5 \(ext2, 96 MiB\), 6 \(swap, 8 MiB\)/,
    );
    const ext = (await rejected(() => importDiskImage(d().mbr, out, { partition: 2 }))) as BfcError;
    assert.equal(ext.reason, "INVALID_ARGUMENT");
    const sw = (await rejected(() => importDiskImage(d().mbr, out, { partition: 6 }))) as BfcError;
    assert.deepEqual([sw.code, sw.reason], ["ENOTSUP", "UNSUPPORTED"]);
    assert.match(sw.message, /partition 6 holds swap/);
    assert.deepEqual(leftovers(), []);
  });

  it("takes the one partition holding a filesystem, and a disk without a table whole", async () => {
    const fsImg = path.join(scratch, "small-ext2.img");
    const src = path.join(scratch, "small-src");
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, "a.txt"), "a\n");
    makeExtImage(fsImg, { type: "ext2", sizeMiB: 8, dir: src });
    const swap = path.join(scratch, "small-swap.img");
    makeSwapImage(swap, 8);
    const disk = path.join(scratch, "one-fs.img");
    buildGptDisk(disk, [
      { image: swap, sizeMiB: 8 },
      { image: fsImg, sizeMiB: 8 },
    ]);
    const one = await importDiskImage(disk, path.join(scratch, "one.bfc"));
    assert.equal(one.partition, 2);
    const whole = await importDiskImage(fsImg, path.join(scratch, "whole.bfc"));
    assert.equal(whole.partition, null);
    const r = await Reader.open(path.join(scratch, "whole.bfc"));
    assert.equal((await r.readFile("a.txt")).toString(), "a\n");
    assert.deepEqual(r.readdir(""), ["a.txt", "lost+found"]);
    r.close();
  });

  it("fails cleanly on a hostile image, leaving no container (or temporary file) behind", async () => {
    const out = path.join(scratch, "hostile.bfc");
    // A superblock whose checksum no longer matches (metadata_csum): refused at open.
    const bad = path.join(scratch, "bad-sb.img");
    fs.copyFileSync(d().gpt, bad);
    const fd = fs.openSync(bad, "r+");
    fs.writeSync(fd, Buffer.from([0x7f]), 0, 1, d().gptParts[0].start + 1024 + 0x18);
    fs.closeSync(fd);
    const e1 = (await rejected(() => importDiskImage(bad, out, { partition: 1 }))) as BfcError;
    assert.ok(e1 instanceof BfcError && ["CRC_MISMATCH", "BAD_FILESYSTEM"].includes(e1.reason), String(e1));
    // A file's extent points outside the filesystem: found only while its content streams.
    const mid = path.join(scratch, "bad-extent.img");
    fs.copyFileSync(d().gpt, mid);
    const p1 = `${mid}?offset=${d().gptParts[0].start}`;
    tool("debugfs", ["-w", "-R", "sif big/random-5m.bin block[5] 0xfffffff0", p1]);
    const e2 = (await rejected(() =>
      importDiskImage(mid, out, { partition: 1, verifyChecksums: false }),
    )) as BfcError;
    assert.ok(e2 instanceof BfcError, String(e2));
    assert.equal(e2.reason, "BAD_FILESYSTEM");
    assert.deepEqual(leftovers(), []);
    assert.ok(!fs.existsSync(out));
  });

  it("refuses an unreplayed journal, and imports it anyway with ignoreJournal (warning)", async () => {
    const img = path.join(scratch, "dirty.img");
    fs.copyFileSync(d().mbr, img);
    tool("debugfs", ["-w", "-R", "feature needs_recovery", `${img}?offset=${d().mbrParts[0].start}`]);
    const out = path.join(scratch, "dirty.bfc");
    const e = (await rejected(() => importDiskImage(img, out, { partition: 1 }))) as BfcError;
    assert.equal(e.reason, "NEEDS_RECOVERY");
    assert.ok(!fs.existsSync(out));
    const warnings: string[] = [];
    const s = await importDiskImage(img, out, {
      partition: 1,
      ignoreJournal: true,
      onWarning: (m) => warnings.push(m),
    });
    assert.ok(s.entries > 3000);
    assert.ok(
      warnings.some((w) => /journal/.test(w)),
      warnings.join("\n"),
    );
  });

  it("skips names that are not valid UTF-8 (and what lies beneath), counted and warned with the inode", async () => {
    const src = path.join(scratch, "names-src");
    fs.mkdirSync(src);
    const p = (...parts: (string | Buffer)[]) =>
      Buffer.concat([Buffer.from(src), ...parts.flatMap((x) => [Buffer.from("/"), Buffer.from(x)])]);
    const bad = Buffer.from([0x62, 0x61, 0x64, 0xff]);
    const badDir = Buffer.from([0xfe]);
    fs.writeFileSync(p("ok.txt"), "fine\n");
    fs.writeFileSync(p(bad), "latin-1 name\n");
    fs.mkdirSync(p(badDir));
    fs.writeFileSync(p(badDir, "inner.txt"), "beneath\n");
    fs.writeFileSync(p("\ufffd"), "a real U+FFFD name\n");
    const img = path.join(scratch, "names.img");
    makeExtImage(img, { type: "ext4", sizeMiB: 8, dir: src });
    const out = path.join(scratch, "names.bfc");
    const warnings: string[] = [];
    const s: ImportSummary = await importDiskImage(img, out, { onWarning: (m) => warnings.push(m) });
    assert.deepEqual(s.skipped, { encrypted: 0, badNames: 2, beneathBadNames: 1, badPaths: 0 });
    assert.equal(warnings.length, 2);
    assert.ok(
      warnings.every((w) => /skipped inode \d+ .*not valid UTF-8/.test(w)),
      warnings.join("\n"),
    );
    assert.match(
      s.notStored.join("; "),
      /2 names that are not valid UTF-8 skipped \(and 1 entry beneath them\)/,
    );
    const r = await Reader.open(out);
    assert.deepEqual(r.readdir("").sort(), ["lost+found", "ok.txt", "\ufffd"].sort());
    r.close();
  });

  it("refuses to replace an existing container unless asked", async () => {
    const out = path.join(scratch, "exists.bfc");
    fs.writeFileSync(out, "precious");
    const e = (await rejected(() => importDiskImage(d().gpt, out, { partition: 1 }))) as BfcError;
    assert.equal(e.reason, "ALREADY_EXISTS");
    assert.equal(fs.readFileSync(out, "utf8"), "precious");
  });
});

describe("disk VFS type: partitions of raw and QCOW2 images", { skip: SKIP }, () => {
  it("mounts a partition by number, and refuses to guess between several", async () => {
    const vfs = createVfs();
    await vfs.mount("disk", "/p2", { image: d().qcow.zstd, partition: 2 });
    await vfs.mount("disk", "/p5", { image: d().mbr, partition: 5 });
    assert.equal(vfs.readFileSync("/p2/hello.txt", "utf8"), "hello world\n");
    const g = await golden(d().gpt, gptP(2)());
    const top = [...g.keys()].filter((p) => p !== "" && !p.includes("/")).sort();
    assert.deepEqual((vfs.readdirSync("/p2") as string[]).slice().sort(), top);
    assert.ok((vfs.lstatSync("/p2/special/dev-sda") as fs.Stats).isBlockDevice());
    assert.equal(vfs.statSync("/p5/sparse-tind.bin").size, 72 * MiB);
    const e = (await rejected(() => vfs.mount("disk", "/x", { image: d().gpt }))) as BfcError;
    assert.equal(e.reason, "AMBIGUOUS");
    assert.match(e.message, /choose a partition: 1 \(rootfs, ext4, 96 MiB\), 2 \(inline, ext4, 96 MiB\)/);
    await vfs.unmount("/p2");
    await vfs.unmount("/p5");
  });
});
