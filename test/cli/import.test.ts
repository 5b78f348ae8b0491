/**
 * `bfc import` end to end, and what the other commands make of an imported container's extension
 * area: list/stat (device numbers, owners, link counts), the bfc VFS type (special entries, shared
 * inode numbers, recorded owners), extract (hard links, --specials, --same-owner, and never writing
 * outside the target), and `bfc mount` of a disk image (type detection, --partition).
 *
 * One small GPT disk built at test time: partition 1 an ext4 filesystem with a setuid file and a
 * hard link to it, a symlink, a fifo, a character device and a file owned by 1234:5678; partition 2
 * an ext2 filesystem. Converted to a zstd QCOW2, which is what the commands read.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { detectType } from "../../src/cli/mount.ts";
import { Reader } from "../../src/container/reader.ts";
import { createVfs } from "../../src/vfs/index.ts";
import {
  buildGptDisk,
  convertToQcow2,
  makeExtImage,
  missingTools,
  QCOW2_VARIANTS,
  tool,
} from "../disk/disk-fixtures.ts";
import { bfc as bfcAsync, FUSERMOUNT, fuseSkipReason, waitFor } from "../fuse/fuse-helpers.ts";
import { tempDir } from "../helpers.ts";
import { bfc } from "./cli-helpers.ts";

const missing = missingTools(["qemu-img", "sgdisk", "mke2fs", "debugfs", "mkfifo"]);
const skip =
  missing.length > 0 ? `needs ${missing.join(", ")} (apt-get install qemu-utils gdisk e2fsprogs)` : false;
if (skip) console.log(`# bfc import: skipped: ${skip}`);
const ROOT_USER = process.getuid?.() === 0;

const dir = tempDir("bfc-cli-import-");
const f = (...p: string[]) => path.join(dir, ...p);

/** The ext4 source tree (mkfs -d) and what debugfs adds: a device node and an owner. */
function buildDisk(): void {
  const src = f("src");
  fs.mkdirSync(path.join(src, "bin"), { recursive: true });
  fs.mkdirSync(path.join(src, "etc"));
  fs.mkdirSync(path.join(src, "run"));
  fs.writeFileSync(path.join(src, "etc", "hello.txt"), "hello\n");
  fs.writeFileSync(path.join(src, "bin", "tool"), "#!/bin/sh\necho tool\n");
  fs.chmodSync(path.join(src, "bin", "tool"), 0o4755);
  fs.linkSync(path.join(src, "bin", "tool"), path.join(src, "bin", "tool2"));
  fs.symlinkSync("hello.txt", path.join(src, "etc", "link"));
  execFileSync("mkfifo", ["-m", "0640", path.join(src, "run", "fifo")]);
  makeExtImage(f("p1.img"), {
    type: "ext4",
    sizeMiB: 8,
    dir: src,
    uuid: "0b5c41d6-2b0d-4c59-9f0e-5b2a5d1c7a11",
  });
  tool(
    "debugfs",
    ["-w", "-f", "-", f("p1.img")],
    [
      "mkdir dev",
      "cd /dev",
      "mknod null c 1 3",
      "sif null mode 020666",
      "cd /",
      "sif /etc/hello.txt uid 1234",
      "sif /etc/hello.txt gid 5678",
      "",
    ].join("\n"),
  );
  const src2 = f("src2");
  fs.mkdirSync(src2);
  fs.writeFileSync(path.join(src2, "second.txt"), "partition two\n");
  makeExtImage(f("p2.img"), { type: "ext2", sizeMiB: 4, dir: src2 });
  buildGptDisk(f("disk.img"), [
    { image: f("p1.img"), sizeMiB: 8, name: "root" },
    { image: f("p2.img"), sizeMiB: 4, name: "data" },
  ]);
  convertToQcow2(f("disk.img"), f("vm.qcow2"), QCOW2_VARIANTS.zstd);
}

describe("bfc import and imported containers", { skip }, () => {
  before(() => {
    buildDisk();
    const r = bfc(["import", "--partition", "1", "-c", "zstd", "vm.qcow2", "vm.bfc"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
  });

  it("--list-partitions shows the table and what is imported without --partition", () => {
    const r = bfc(["import", "--list-partitions", "vm.qcow2"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Partition table: GPT/);
    assert.match(r.stdout, /\n\s*1 .*root.*ext4/);
    assert.match(r.stdout, /\n\s*2 .*data.*ext2/);
    assert.match(r.stdout, /Imported without --partition: none; choose one with --partition N\n$/);
    const one = bfc(["import", "--list-partitions", "p2.img"], { cwd: dir });
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /Partition table: none\nFilesystem: ext2/);
    assert.match(one.stdout, /Imported without --partition: the whole disk\n$/);
  });

  it("imports a partition with a summary; refuses to guess, and to overwrite without -f", () => {
    const r = bfc(["import", "--partition", "2", "vm.qcow2", "p2.bfc"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Imported ext2 from partition 2 of 'vm.qcow2' into 'p2.bfc'\.\n/);
    assert.match(r.stdout, /\n2 entries \(1 file, 1 directory, 0 symlinks, 0 hard links, 0 special files\)/);
    assert.equal(bfc(["cat", "p2.bfc", "second.txt"], { cwd: dir }).stdout, "partition two\n");
    const again = bfc(["import", "--partition", "2", "vm.qcow2", "p2.bfc"], { cwd: dir });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists; use -f/);
    const guess = bfc(["import", "vm.qcow2", "guess.bfc"], { cwd: dir });
    assert.equal(guess.code, 1);
    assert.match(guess.stderr, /choose a partition: 1 \(root, ext4, 8 MiB\), 2 \(data, ext2, 4 MiB\)/);
    assert.ok(!fs.existsSync(f("guess.bfc")));
    const usage = bfc(["import", "--list-partitions", "--partition", "1", "vm.qcow2"], { cwd: dir });
    assert.equal(usage.code, 2);
  });

  it("list shows special entries; list --json their type, device numbers, owners and hard links", () => {
    const plain = bfc(["list", "vm.bfc"], { cwd: dir });
    assert.equal(plain.code, 0, plain.stderr);
    assert.deepEqual(plain.stdout.trim().split("\n"), [
      "bin",
      "bin/tool",
      "bin/tool2",
      "dev",
      "dev/null",
      "etc",
      "etc/hello.txt",
      "etc/link",
      "lost+found",
      "run",
      "run/fifo",
    ]);
    const long = bfc(["list", "-l", "vm.bfc", "dev"], { cwd: dir });
    assert.match(long.stdout, /^crw-rw-rw- .* dev\/null$/m);
    const json = JSON.parse(bfc(["list", "--json", "vm.bfc"], { cwd: dir }).stdout);
    const by = new Map(json.entries.map((e: { path: string }) => [e.path, e]));
    assert.deepEqual(
      pick(by.get("dev/null"), ["type", "permissions", "rdevMajor", "rdevMinor", "uid", "gid"]),
      { type: "character", permissions: "0666", rdevMajor: 1, rdevMinor: 3, uid: 0, gid: 0 },
    );
    assert.equal((by.get("dev/null") as { implicit?: boolean }).implicit, undefined);
    assert.deepEqual(pick(by.get("run/fifo"), ["type", "permissions"]), {
      type: "fifo",
      permissions: "0640",
    });
    assert.deepEqual(pick(by.get("etc/hello.txt"), ["uid", "gid"]), { uid: 1234, gid: 5678 });
    assert.deepEqual(pick(by.get("bin/tool2"), ["type", "permissions", "hardlinkOf", "nlink"]), {
      type: "file",
      permissions: "4755",
      hardlinkOf: "bin/tool",
      nlink: 2,
    });
    assert.equal((by.get("bin/tool") as { nlink?: number }).nlink, 2);
    assert.equal((by.get("bin/tool") as { hardlinkOf?: string }).hardlinkOf, undefined);
    assert.match((by.get("etc/hello.txt") as { ctimeNs: string }).ctimeNs, /^\d+$/);
  });

  it("stat shows a device node, a hard link and an owner", () => {
    const dev = bfc(["stat", "vm.bfc", "dev/null"], { cwd: dir });
    assert.equal(dev.code, 0, dev.stderr);
    assert.match(dev.stdout, /Type: character device \(kept in the extension area, no object\)/);
    assert.match(dev.stdout, /Device: 1,3\n/);
    const link = bfc(["stat", "vm.bfc", "bin/tool2"], { cwd: dir });
    assert.match(link.stdout, /Links: 2 \(shares the content of bin\/tool\)/);
    assert.match(link.stdout, /Stored: \d+ bytes, payload \d+ bytes/);
    const tool0 = bfc(["stat", "vm.bfc", "bin/tool"], { cwd: dir });
    // Both names report the one object's payload size.
    assert.equal(/payload (\d+)/.exec(link.stdout)?.[1], /payload (\d+)/.exec(tool0.stdout)?.[1]);
    assert.match(bfc(["stat", "vm.bfc", "etc/hello.txt"], { cwd: dir }).stdout, /Owner: uid 1234, gid 5678/);
    const json = JSON.parse(bfc(["stat", "--json", "vm.bfc", "run/fifo"], { cwd: dir }).stdout);
    assert.equal(json.type, "fifo");
  });

  it("info counts hard links, and a shared object's content and stored bytes once", () => {
    const list = JSON.parse(bfc(["list", "--json", "vm.bfc"], { cwd: dir }).stdout);
    type E = { path: string; type: string; size: number; storedSize: number; hardlinkOf?: string };
    const files = (list.entries as E[]).filter((e) => e.type === "file");
    const own = files.filter((e) => e.hardlinkOf === undefined);
    assert.equal(files.length - own.length, 1, "one hard link in the image");
    const doc = JSON.parse(bfc(["info", "--json", "vm.bfc"], { cwd: dir }).stdout);
    assert.equal(doc.summary.files, files.length);
    assert.equal(doc.summary.hardLinks, 1);
    assert.equal(
      doc.summary.uncompressedSize,
      own.reduce((n, e) => n + e.size, 0),
    );
    assert.equal(
      doc.summary.storedSize,
      own.reduce((n, e) => n + e.storedSize, 0),
    );
    const text = bfc(["info", "vm.bfc"], { cwd: dir });
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /\n {2}Hard links: 1\n/);
    // The same figures as import's own summary ("… of content stored in N bytes").
    assert.match(
      text.stdout,
      new RegExp(`\\n {2}Stored size: (.*\\()?${doc.summary.storedSize} bytes\\)?\\n`),
    );
    // A container without hard links shows no such line and counts as before.
    fs.mkdirSync(f("no-links"), { recursive: true });
    fs.writeFileSync(f("no-links/a.txt"), "a\n");
    fs.writeFileSync(f("no-links/b.txt"), "a\n");
    assert.equal(bfc(["create", "-f", "no-links.bfc", "no-links"], { cwd: dir }).code, 0);
    const plain = bfc(["info", "no-links.bfc"], { cwd: dir });
    assert.doesNotMatch(plain.stdout, /Hard links/);
    const summary = JSON.parse(bfc(["info", "--json", "no-links.bfc"], { cwd: dir }).stdout).summary;
    assert.deepEqual([summary.files, summary.hardLinks, summary.uncompressedSize], [2, 0, 4]);
  });

  it("the bfc VFS type lists and stats special entries, shares hard links' inodes, reports owners", async () => {
    const vfs = createVfs();
    await vfs.mount("bfc", "/c", { path: f("vm.bfc") });
    try {
      assert.deepEqual(vfs.readdirSync("/c/dev"), ["null"]);
      const dev = vfs.lstatSync("/c/dev/null") as fs.Stats;
      assert.ok(dev.isCharacterDevice());
      assert.equal(dev.rdev, 259);
      assert.equal(dev.mode, 0o20666);
      assert.ok((vfs.lstatSync("/c/run/fifo") as fs.Stats).isFIFO());
      const a = vfs.statSync("/c/bin/tool");
      const b = vfs.statSync("/c/bin/tool2");
      assert.equal(a.ino, b.ino);
      assert.deepEqual([a.nlink, b.nlink], [2, 2]);
      assert.equal(a.mode, 0o104755);
      const h = vfs.statSync("/c/etc/hello.txt");
      assert.deepEqual([h.uid, h.gid], [1234, 5678]);
      assert.equal(vfs.readFileSync("/c/bin/tool2", "utf8"), "#!/bin/sh\necho tool\n");
      assert.throws(() => vfs.readFileSync("/c/dev/null"), { code: "ENXIO" });
      const dirents = vfs.readdirSync("/c/run", { withFileTypes: true }) as fs.Dirent[];
      assert.ok(dirents[0]?.isFIFO());
    } finally {
      await vfs.unmount("/c");
    }
  });

  it("extract links hard links; skips specials unless --specials; --same-owner restores owners", () => {
    const plain = f("out-plain");
    fs.mkdirSync(plain);
    const r = bfc(["extract", "-k", "-C", plain, "vm.bfc"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Linked: bin\/tool2 => bin\/tool$/m);
    assert.match(
      r.stderr,
      /skipped 1 device node, 1 fifo \(--specials creates fifos and, as root, device nodes\)/,
    );
    const t1 = fs.statSync(path.join(plain, "bin/tool"));
    const t2 = fs.statSync(path.join(plain, "bin/tool2"));
    assert.equal(t1.ino, t2.ino);
    assert.equal(t1.nlink, 2);
    assert.equal(t1.mode & 0o7777, 0o4755);
    assert.ok(!fs.existsSync(path.join(plain, "run/fifo")));
    assert.ok(!fs.existsSync(path.join(plain, "dev/null")));

    const all = f("out-all");
    fs.mkdirSync(all);
    const args = ["extract", "-k", "--specials", "-C", all, "vm.bfc"];
    if (ROOT_USER) args.splice(1, 0, "--same-owner");
    const s = bfc(args, { cwd: dir });
    assert.equal(s.code, 0, s.stderr);
    const fifo = fs.lstatSync(path.join(all, "run/fifo"));
    assert.ok(fifo.isFIFO());
    assert.equal(fifo.mode & 0o7777, 0o640);
    if (ROOT_USER) {
      assert.equal(s.stderr, "");
      const dev = fs.lstatSync(path.join(all, "dev/null"));
      assert.ok(dev.isCharacterDevice());
      assert.equal(dev.rdev, 259);
      const h = fs.statSync(path.join(all, "etc/hello.txt"));
      assert.deepEqual([h.uid, h.gid], [1234, 5678]);
    } else {
      assert.match(
        s.stderr,
        /skipped 1 device node \(sockets are never created, device nodes only by root\)/,
      );
      assert.ok(!fs.existsSync(path.join(all, "dev/null")));
    }
  });

  it("extract never writes through a symlink in the way (hard links and specials)", () => {
    const out = f("out-hostile");
    const outside = f("outside");
    fs.mkdirSync(path.join(out, "bin"), { recursive: true });
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, "victim"), "precious\n");
    // bin/tool2 (a hard link) is a symlink to a file outside; run (holding the fifo) a symlink to a
    // directory outside.
    fs.symlinkSync(path.join(outside, "victim"), path.join(out, "bin", "tool2"));
    fs.symlinkSync(outside, path.join(out, "run"));
    const untouched = () => {
      assert.equal(fs.readFileSync(path.join(outside, "victim"), "utf8"), "precious\n");
      assert.deepEqual(fs.readdirSync(outside), ["victim"]);
    };
    const args = ["extract", "-k", "--specials", "-C", out, "vm.bfc", "bin", "run"];
    const refused = bfc(args, { cwd: dir });
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stderr, /bin\/tool2.*already exists/);
    assert.match(refused.stderr, /run/);
    untouched();
    // With -f what is in the way is replaced (the symlinks themselves), never written through.
    const forced = bfc(["extract", "-f", ...args.slice(1)], { cwd: dir });
    assert.equal(forced.code, 0, forced.stderr);
    untouched();
    assert.ok(fs.lstatSync(path.join(out, "run")).isDirectory());
    assert.ok(fs.lstatSync(path.join(out, "run", "fifo")).isFIFO());
    const link = fs.lstatSync(path.join(out, "bin", "tool2"));
    assert.ok(link.isFile());
    assert.equal(link.ino, fs.statSync(path.join(out, "bin", "tool")).ino);
  });

  it("a container without extension-area entries lists and extracts as before", async () => {
    const r = await Reader.open(f("p2.bfc"));
    try {
      assert.equal(r.specialEntries().length, 0);
    } finally {
      r.close();
    }
    const json = JSON.parse(bfc(["list", "--json", "p2.bfc"], { cwd: dir }).stdout);
    const second = json.entries.find((e: { path: string }) => e.path === "second.txt");
    // ext2 records owners too (0:0 here); the import keeps them as attributes.
    assert.deepEqual([second.uid, second.gid], [0, 0]);
  });

  it("bfc mount tells disk images by their first bytes", () => {
    assert.equal(detectType(f("vm.qcow2")), "disk");
    assert.equal(detectType(f("disk.img")), "disk");
    assert.equal(detectType(f("p2.img")), "disk");
    assert.equal(detectType(f("vm.bfc")), "bfc");
    const r = bfc(["mount", "--partition", "1", "vm.bfc", f("nowhere")], { cwd: dir });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--partition and --allow-backing apply to disk images only/);
  });
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

const fuseSkip = skip || fuseSkipReason() || false;
describe("bfc mount of a disk image (FUSE)", { skip: fuseSkip }, () => {
  const mnt = path.join(dir, "mnt");
  before(() => {
    if (!fs.existsSync(f("vm.qcow2"))) buildDisk();
    fs.mkdirSync(mnt, { recursive: true });
  });
  after(() => {
    if (fs.existsSync(mnt) && fs.readdirSync(mnt).length > 0) execFileSync(FUSERMOUNT, ["-u", mnt]);
  });

  it("mounts partition 2 of a QCOW2 image, and partition 1 with its device node", async () => {
    const r = await bfcAsync(["mount", "--partition", "2", f("vm.qcow2"), mnt]);
    assert.equal(r.code, 0, r.stderr);
    try {
      assert.equal(fs.readFileSync(path.join(mnt, "second.txt"), "utf8"), "partition two\n");
    } finally {
      assert.equal((await bfcAsync(["umount", mnt])).code, 0);
    }
    assert.ok(await waitFor(() => fs.readdirSync(mnt).length === 0));
    const p1 = await bfcAsync(["mount", "--partition", "1", f("vm.qcow2"), mnt]);
    assert.equal(p1.code, 0, p1.stderr);
    try {
      assert.ok(fs.lstatSync(path.join(mnt, "dev", "null")).isCharacterDevice());
      assert.equal(fs.statSync(path.join(mnt, "etc", "hello.txt")).uid, 1234);
      assert.equal(fs.readFileSync(path.join(mnt, "bin", "tool2"), "utf8"), "#!/bin/sh\necho tool\n");
    } finally {
      assert.equal((await bfcAsync(["umount", mnt])).code, 0);
    }
  });
});

function pick(o: unknown, keys: string[]): Record<string, unknown> {
  const src = o as Record<string, unknown>;
  return Object.fromEntries(keys.filter((k) => k in src).map((k) => [k, src[k]]));
}
