import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import {
  buildGptDisk,
  convertToQcow2,
  createOverlay,
  makeExtImage,
  makeSwapImage,
  missingTools,
  QCOW2_VARIANTS,
} from "../disk/disk-fixtures.ts";
import { tempDir } from "../helpers.ts";
import { bfc } from "./cli-helpers.ts";

const missing = missingTools(["qemu-img", "sgdisk", "mke2fs", "mkswap"]);
const skip =
  missing.length > 0 ? `needs ${missing.join(", ")} (apt-get install qemu-utils gdisk e2fsprogs)` : false;

describe("bfc disk", { skip }, () => {
  const dir = tempDir("bfc-cli-disk-");
  const f = (n: string) => path.join(dir, n);

  before(() => {
    makeExtImage(f("root.img"), {
      type: "ext4",
      sizeMiB: 8,
      label: "root",
      uuid: "7e046859-ada4-46af-9f44-be5929d57e03",
    });
    makeSwapImage(f("swap.img"), 2, "swappy");
    buildGptDisk(
      f("disk.raw"),
      [
        { image: f("root.img"), sizeMiB: 8, name: "rootfs", uuid: "A25E44C1-F4C1-4056-A586-770A81BAD080" },
        { image: f("swap.img"), sizeMiB: 2, name: "swap", type: "8200" },
      ],
      { diskGuid: "11111111-2222-3333-4444-555555555555" },
    );
    convertToQcow2(f("disk.raw"), f("base.qcow2"), QCOW2_VARIANTS.zstd);
    createOverlay(f("vm.qcow2"), "base.qcow2", "qcow2");
  });

  it("prints the format, the backing chain and the partitions", () => {
    const r = bfc(["disk", "vm.qcow2"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    const lines = r.stdout.split("\n");
    assert.equal(lines[0], "Image: vm.qcow2");
    assert.equal(lines[1], "Format: qcow2 v3, 64 KiB clusters, compression type zlib");
    assert.match(lines[2], /^File size: \d/);
    assert.equal(lines[3], "Virtual size: 12.0 MiB (12582912 bytes)");
    assert.equal(
      lines[4],
      `Backing file: base.qcow2 -> ${f("base.qcow2")} (qcow2 v3, 64 KiB clusters, compression type zstd)`,
    );
    assert.equal(
      lines[5],
      "Partition table: GPT, 512-byte sectors, disk GUID 11111111-2222-3333-4444-555555555555",
    );
    assert.deepEqual(lines.slice(7, 10), [
      "  #  Start  Sectors  Size  Type              Name    Filesystem",
      '  1   2048    16384  8.0M  Linux filesystem  rootfs  ext4 (label "root", UUID 7e046859-ada4-46af-9f44-be5929d57e03)',
      `  2  18432     4096  2.0M  Linux swap        swap    swap (label "swappy", UUID ${/swap \(label "swappy", UUID (\S+)\)/.exec(r.stdout)?.[1]})`,
    ]);
  });

  it("--json: one document with the chain, the table and the partitions", () => {
    const r = bfc(["disk", "--json", f("vm.qcow2")]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.image, f("vm.qcow2"));
    assert.equal(doc.format, "qcow2");
    assert.equal(doc.virtualSize, 12 * 1024 * 1024);
    assert.deepEqual(doc.qcow2, {
      version: 3,
      clusterSize: 65536,
      compression: "zlib",
      extendedL2: false,
      dirty: false,
      corrupt: false,
      snapshots: 0,
    });
    assert.equal(doc.backingChain.length, 1);
    assert.equal(doc.backingChain[0].backingName, "base.qcow2");
    assert.equal(doc.backingChain[0].qcow2.compression, "zstd");
    assert.deepEqual(doc.partitionTable, {
      type: "gpt",
      sectorSize: 512,
      diskId: "11111111-2222-3333-4444-555555555555",
    });
    assert.deepEqual(
      doc.partitions.map(
        (p: { index: number; start: number; size: number; name: string; filesystem: { type: string } }) => [
          p.index,
          p.start,
          p.size,
          p.name,
          p.filesystem.type,
        ],
      ),
      [
        [1, 1048576, 8388608, "rootfs", "ext4"],
        [2, 9437184, 2097152, "swap", "swap"],
      ],
    );
    assert.deepEqual(doc.warnings, []);
  });

  it("a bare filesystem image; a backing file outside the directory needs --allow-backing", () => {
    const bare = bfc(["disk", "root.img"], { cwd: dir });
    assert.equal(bare.code, 0, bare.stderr);
    assert.match(bare.stdout, /^Format: raw$/m);
    assert.match(bare.stdout, /^Partition table: none\nFilesystem: ext4 \(label "root", UUID 7e046859/m);

    const sub = f("sub");
    fs.mkdirSync(sub);
    createOverlay(path.join(sub, "top.qcow2"), "../base.qcow2", "qcow2");
    const refused = bfc(["disk", path.join(sub, "top.qcow2")]);
    assert.equal(refused.code, 1);
    assert.equal(refused.stdout, "");
    assert.match(
      refused.stderr,
      /^bfc: disk: .*top\.qcow2: backing file '\.\.\/base\.qcow2' resolves to .*, outside .* \(UNSAFE_PATH\)\n$/,
    );
    for (const allow of [dir, "any"]) {
      const ok = bfc(["disk", "--allow-backing", allow, path.join(sub, "top.qcow2")]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /^Backing file: \.\.\/base\.qcow2 -> /m);
    }
  });

  it("errors: a missing image, an unsupported format", () => {
    const r = bfc(["disk", f("nope.qcow2")]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^bfc: disk: cannot read '.*nope\.qcow2': no such file or directory \(ENOENT\)\n$/,
    );
    const vmdk = Buffer.alloc(1024);
    vmdk.write("KDMV");
    fs.writeFileSync(f("x.vmdk"), vmdk);
    const v = bfc(["disk", f("x.vmdk")]);
    assert.equal(v.code, 1);
    assert.match(v.stderr, /is a VMDK image, which is not supported.*\(UNSUPPORTED\)/);
  });
});
