/**
 * Random corruption of small real images (mkfs -d, e2fsck -D, debugfs), checked with fast-check:
 *
 * - ext4 with metadata_csum, checksums verified: whatever metadata byte is damaged, opening,
 *   walking and reading either give exactly the original answers or throw a BfcError.
 * - ext2 (1 KiB blocks, block maps, no checksums): damage can change answers, but every operation
 *   ends quickly in an answer or a BfcError, never another exception or a hang.
 *
 * Corruption targets the bytes the reader actually reads as metadata (recorded on the pristine
 * image, minus file data, which no checksum covers).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ExtFileSystem } from "../../src/disk/ext/filesystem.ts";
import { walkExt } from "../../src/disk/ext/walker.ts";
import { BfcError } from "../../src/errors.ts";
import { tempDir } from "../helpers.ts";
import { extToolsMissing } from "./ext-fixtures.ts";
import { BufferSource } from "./ext-helpers.ts";

const MISSING = extToolsMissing();
if (MISSING) console.log(`# ext fuzz: skipped: ${MISSING}`);

/** Reads at most this much of each file per run (a damaged size may claim terabytes of holes). */
const READ_CAP = 256 * 1024;

function sh(cmd: string, args: string[], ok = [0]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.error) throw r.error;
  if (!ok.includes(r.status ?? -1)) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
}

/** A small tree with every structure: htree dir, extent tree, fast/slow symlinks, xattrs, links. */
function smallTree(root: string): void {
  fs.mkdirSync(path.join(root, "many"), { recursive: true });
  for (let i = 0; i < 300; i++)
    fs.writeFileSync(path.join(root, "many", `name-number-${i}`), i % 7 ? "" : `${i}\n`);
  fs.writeFileSync(path.join(root, "hello.txt"), "hello world\n");
  fs.writeFileSync(path.join(root, "data.bin"), Buffer.alloc(300 * 1024, 0x5c));
  const fd = fs.openSync(path.join(root, "sparse.bin"), "w");
  for (let k = 0; k < 8; k++) fs.writeSync(fd, Buffer.alloc(1000, 0x30 + k), 0, 1000, k * 65536);
  fs.ftruncateSync(fd, 8 * 65536 + 100);
  fs.closeSync(fd);
  fs.symlinkSync("hello.txt", path.join(root, "fast-link"));
  fs.symlinkSync("x/".repeat(60), path.join(root, "slow-link"));
  fs.linkSync(path.join(root, "hello.txt"), path.join(root, "many", "hard"));
}

function buildImage(dir: string, name: string, args: string[]): Buffer {
  const src = path.join(dir, "src");
  if (!fs.existsSync(src)) smallTree(src);
  const img = path.join(dir, `${name}.img`);
  sh("mkfs.ext4", ["-q", "-F", "-E", "root_owner=0:0", ...args, "-d", src, img, "4M"]);
  sh("e2fsck", ["-fyD", img], [0, 1]);
  const script = path.join(dir, `${name}.cmds`);
  fs.writeFileSync(
    script,
    ["ea_set /hello.txt user.small tiny", `ea_set /data.bin user.large ${"v".repeat(300)}`].join("\n"),
  );
  sh("debugfs", ["-w", "-f", script, img]);
  return fs.readFileSync(img);
}

/** Everything a walk reports, with contents hashed (up to READ_CAP each). */
function snapshot(fsys: ExtFileSystem): string[] {
  const out: string[] = [];
  const buf = Buffer.alloc(READ_CAP);
  for (const e of walkExt(fsys)) {
    const h = createHash("sha256");
    if (e.type === "file") {
      let runs = 0;
      for (const _ of fsys.runs(e.inode)) runs++;
      const n = fsys.read(e.inode, buf, 0);
      h.update(buf.subarray(0, n));
      h.update(String(runs));
    }
    out.push(
      [
        e.path,
        e.ino,
        e.mode,
        e.uid,
        e.gid,
        e.size,
        e.nlink,
        e.mtimeNs,
        e.ctimeNs,
        e.atimeNs,
        e.crtimeNs,
        e.rdev,
        e.linkTarget,
        e.hardlinkOf,
        e.xattrs.map((x) => `${x.name}=${x.value.toString("hex")}`).join(","),
        h.digest("hex"),
      ].join("|"),
    );
  }
  return out;
}

/** A source that records where it was read. */
class RecordingSource extends BufferSource {
  readonly ranges: [number, number][] = [];
  override read(buf: Uint8Array, position: number): void {
    this.ranges.push([position, position + buf.length]);
    super.read(buf, position);
  }
}

/** Byte offsets read as metadata on the pristine image: everything read, minus file and symlink data. */
function metadataOffsets(image: Buffer): number[] {
  const src = new RecordingSource(image, "pristine");
  const fsys = ExtFileSystem.open(src);
  snapshot(fsys);
  const data: [number, number][] = [];
  for (const e of walkExt(fsys)) {
    if (e.type !== "file" && e.type !== "symlink") continue;
    for (const r of fsys.runs(e.inode))
      if (!r.hole && r.physical >= 0) data.push([r.physical, r.physical + r.length]);
  }
  const isData = (at: number): boolean => data.some(([a, b]) => a <= at && at < b);
  const offsets = new Set<number>();
  for (const [a, b] of src.ranges) for (let at = a; at < b; at++) if (!isData(at)) offsets.add(at);
  return [...offsets].sort((x, y) => x - y);
}

interface Damage {
  at: number;
  xor: number;
}

function damaged(image: Buffer, offsets: number[], damage: Damage[], run: () => void): void {
  const saved = damage.map((d) => {
    const at = offsets[d.at % offsets.length] as number;
    const old = image[at] as number;
    image[at] = old ^ d.xor;
    return [at, old] as const;
  });
  try {
    run();
  } finally {
    for (const [at, old] of saved.reverse()) image[at] = old;
  }
}

const DAMAGE = fc.array(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), {
  minLength: 1,
  maxLength: 3,
});

describe("ext random corruption", { skip: MISSING }, () => {
  const dir = MISSING ? "" : tempDir("bfc-ext-fuzz-");

  it("ext4 + metadata_csum: the original answers or a BfcError, never anything else", () => {
    const image = buildImage(dir, "csum", ["-b", "4096", "-O", "metadata_csum,64bit", "-I", "256"]);
    const baseline = snapshot(ExtFileSystem.open(new BufferSource(image)));
    assert.ok(baseline.length > 300);
    const offsets = metadataOffsets(image);
    assert.ok(offsets.length > 10_000, `metadata bytes: ${offsets.length}`);
    let detected = 0;
    fc.assert(
      fc.property(DAMAGE, (damage) => {
        damaged(image, offsets, damage, () => {
          const t0 = performance.now();
          try {
            assert.deepEqual(snapshot(ExtFileSystem.open(new BufferSource(image))), baseline);
          } catch (e) {
            if (!(e instanceof BfcError)) throw e;
            detected++;
          }
          assert.ok(performance.now() - t0 < 5000, "bounded time");
        });
      }),
      { numRuns: 150, seed: 0x5eed_e4, endOnFailure: true },
    );
    assert.ok(detected > 100, `most damage is detected (${detected} of 150)`);
  });

  it("ext2 without checksums: an answer or a BfcError, quickly", () => {
    const image = buildImage(dir, "plain", ["-t", "ext2", "-b", "1024", "-I", "128"]);
    const offsets = metadataOffsets(image);
    let errors = 0;
    fc.assert(
      fc.property(DAMAGE, (damage) => {
        damaged(image, offsets, damage, () => {
          const t0 = performance.now();
          try {
            snapshot(ExtFileSystem.open(new BufferSource(image)));
          } catch (e) {
            if (!(e instanceof BfcError)) throw e;
            errors++;
          }
          assert.ok(performance.now() - t0 < 5000, "bounded time");
        });
      }),
      { numRuns: 150, seed: 0x5eed_e2, endOnFailure: true },
    );
    assert.ok(errors > 0);
  });

  it("metadata_csum: a flipped byte in each kind of structure is caught, and ignored when asked", () => {
    const image = buildImage(dir, "csum2", ["-b", "4096", "-O", "metadata_csum,64bit", "-I", "256"]);
    const fsys = ExtFileSystem.open(new BufferSource(image));
    const bs = fsys.blockSize;
    const itable = image.readUInt32LE(bs + 8) * bs; // group 0's inode table
    const inodeAt = (ino: number): number => itable + (ino - 1) * 256;
    const hello = fsys.resolve("hello.txt");
    const many = fsys.resolve("many");
    const sparse = fsys.resolve("sparse.bin");
    const data = fsys.resolve("data.bin");
    assert.ok(hello && many && sparse && data);
    // The last block of a directory is a leaf, whose checksum covers all its entries.
    const lastBlock = (ino: number): number => {
      const runs = [...fsys.runs(ino)].filter((r) => !r.hole);
      const r = runs[runs.length - 1];
      if (!r) throw new Error("no data");
      return r.physical + r.length - bs;
    };
    const extentBlock = sparse.raw.readUInt32LE(0x28 + 12 + 4) * bs;
    assert.ok(sparse.raw.readUInt16LE(0x28 + 6) >= 1, "sparse.bin has an extent tree block");
    const cases: [string, number, string][] = [
      ["superblock", 1024 + 0x10, "the superblock"],
      ["group descriptor", bs + 0x0c, "block group 0"],
      ["inode", inodeAt(hello.ino) + 0x10, `inode ${hello.ino}`],
      ["directory block", lastBlock(many.ino) + 100, `directory inode ${many.ino}`],
      ["extent block", extentBlock + 20, `extent tree of inode ${sparse.ino}`],
      ["xattr block", data.fileAcl * bs + 200, `xattr block ${data.fileAcl}`],
    ];
    for (const [what, at, fragment] of cases) {
      damaged(image, [at], [{ at: 0, xor: 0x01 }], () => {
        let err: unknown;
        try {
          snapshot(ExtFileSystem.open(new BufferSource(image)));
        } catch (e) {
          err = e;
        }
        assert.ok(err instanceof BfcError && err.reason === "CRC_MISMATCH", `${what}: ${err}`);
        assert.ok(err.message.includes(fragment), `${what}: ${err.message}`);
        // Without verification the same image opens (the flipped bit is in a field that is not
        // otherwise checked, or changes a value).
        if (what !== "superblock" && what !== "group descriptor") {
          const lenient = ExtFileSystem.open(new BufferSource(image), { verifyChecksums: false });
          try {
            snapshot(lenient);
          } catch (e) {
            assert.ok(e instanceof BfcError, `${what}: ${e}`);
          }
        }
      });
    }
  });
});
