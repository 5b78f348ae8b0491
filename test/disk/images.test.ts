/**
 * The block layer against images made by the real tools: every QCOW2 variant qemu-img writes must
 * read back byte for byte like its raw source (and like `qemu-img convert -O raw`), and partition
 * tables made by sgdisk and sfdisk must list as those tools list them.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import type { BlockSource } from "../../src/disk/block-source.ts";
import { openImage, openPartition } from "../../src/disk/open-disk.ts";
import { readPartitionTable } from "../../src/disk/partitions.ts";
import { Qcow2Image } from "../../src/disk/qcow2.ts";
import { randomBytes, tempDir } from "../helpers.ts";
import {
  buildGptDisk,
  buildMbrDisk,
  convertToQcow2,
  convertToRaw,
  createOverlay,
  makeExtImage,
  makePatternDisk,
  makeSwapImage,
  missingTools,
  QCOW2_VARIANTS,
  qemuIo,
  sfdiskJson,
  sha256File,
  sha256Source,
  tool,
} from "./disk-fixtures.ts";

const MiB = 1024 * 1024;
const missing = missingTools(["qemu-img", "qemu-io", "sgdisk", "sfdisk", "mke2fs", "mkswap"]);
const skip =
  missing.length > 0
    ? `needs ${missing.join(", ")} (apt-get install qemu-utils gdisk fdisk e2fsprogs)`
    : false;

function hashOf(file: string, chunk?: number): string {
  const src = openImage(file);
  try {
    return sha256Source(src, chunk);
  } finally {
    src.close();
  }
}

/** The raw disk with `edits` applied, hashed (what an overlay should read as). */
function editedHash(raw: string, edits: { at: number; data: Buffer }[], out: string): string {
  fs.copyFileSync(raw, out);
  const fd = fs.openSync(out, "r+");
  for (const e of edits) fs.writeSync(fd, e.data, 0, e.data.length, e.at);
  fs.closeSync(fd);
  return sha256File(out);
}

/** Whether qemu maps `offset` as a zero cluster that keeps a host offset (the flag we must honour). */
function zeroWithOffset(image: string, offset: number): boolean {
  const map = JSON.parse(tool("qemu-img", ["map", "--output=json", image])) as {
    start: number;
    length: number;
    zero: boolean;
    data: boolean;
    offset?: number;
    depth: number;
  }[];
  const m = map.find((x) => x.start <= offset && offset < x.start + x.length);
  return m?.zero === true && !m.data && m.depth === 0;
}

describe("qcow2 images from qemu-img stream like their raw source", { skip }, () => {
  const dir = tempDir("bfc-disk-");
  const raw = path.join(dir, "disk.raw");
  let rawHash = "";
  before(() => {
    makePatternDisk(raw, 24, 7);
    rawHash = sha256File(raw);
  });

  for (const [name, variant] of Object.entries(QCOW2_VARIANTS)) {
    it(`${name}`, () => {
      const q = path.join(dir, `${name}.qcow2`);
      convertToQcow2(raw, q, variant);
      const img = openImage(q) as Qcow2Image;
      try {
        assert.ok(img instanceof Qcow2Image);
        assert.equal(img.header.version, variant.compat === "0.10" ? 2 : 3);
        assert.equal(img.header.clusterSize, variant.clusterSize ?? 65536);
        assert.equal(img.header.compression, variant.compression === "zstd" ? "zstd" : "zlib");
        assert.equal(img.header.extendedL2, variant.extendedL2 === true);
        assert.equal(img.size, 24 * MiB);
        assert.equal(sha256Source(img), rawHash);
        // Odd chunk sizes cross every cluster boundary differently.
        assert.equal(sha256Source(img, 3 * 65536 + 4097), rawHash);
      } finally {
        img.close();
      }
    });
  }

  it("zero clusters written with qemu-io write -z (v3, and subclusters with extended L2)", () => {
    for (const [name, variant, zeros] of [
      [
        "zero-v3",
        QCOW2_VARIANTS.v3,
        [
          [1 * MiB, 64 * 1024],
          [2 * MiB, 192 * 1024],
          [5 * MiB + 8192, 12 * 1024],
        ],
      ],
      [
        "zero-l2ext",
        QCOW2_VARIANTS["2m-l2ext"],
        [
          [2 * MiB + 64 * 1024, 64 * 1024],
          [4 * MiB, 2 * MiB],
          [9 * MiB, 1000 * 1024],
        ],
      ],
    ] as const) {
      const q = path.join(dir, `${name}.qcow2`);
      convertToQcow2(raw, q, variant);
      qemuIo(
        q,
        zeros.map(([at, n]) => `write -z ${at} ${n}`),
      );
      assert.ok(zeroWithOffset(q, zeros[0][0]), `${name}: qemu made no zero cluster at ${zeros[0][0]}`);
      const expected = editedHash(
        raw,
        zeros.map(([at, n]) => ({ at, data: Buffer.alloc(n) })),
        path.join(dir, `${name}.expected`),
      );
      convertToRaw(q, path.join(dir, `${name}.qemu.raw`));
      assert.equal(sha256File(path.join(dir, `${name}.qemu.raw`)), expected);
      assert.equal(hashOf(q), expected);
    }
  });

  it("overlays on qcow2 and raw backing files, a three-image chain, compressed overlay clusters", () => {
    const base = path.join(dir, "base.qcow2");
    convertToQcow2(raw, base, QCOW2_VARIANTS.v3);
    const chunk = randomBytes(65536, 3);
    fs.writeFileSync(path.join(dir, "chunk.bin"), chunk);

    // Overlay with 64 KiB clusters on a qcow2: partial-cluster writes copy the rest from below.
    const top = path.join(dir, "top.qcow2");
    createOverlay(top, "base.qcow2", "qcow2");
    qemuIo(top, [
      "write -P 0x5a 0 4096",
      `write -s ${path.join(dir, "chunk.bin")} ${5 * MiB} 65536`,
      `write -z ${7 * MiB} 65536`,
      `write -P 0x33 ${10 * MiB + 100 * 1024} ${300 * 1024}`,
    ]);
    const topEdits = [
      { at: 0, data: Buffer.alloc(4096, 0x5a) },
      { at: 5 * MiB, data: chunk },
      { at: 7 * MiB, data: Buffer.alloc(65536) },
      { at: 10 * MiB + 100 * 1024, data: Buffer.alloc(300 * 1024, 0x33) },
    ];
    const topHash = editedHash(raw, topEdits, path.join(dir, "top.expected"));
    convertToRaw(top, path.join(dir, "top.qemu.raw"));
    assert.equal(sha256File(path.join(dir, "top.qemu.raw")), topHash);
    const img = openImage(top) as Qcow2Image;
    assert.deepEqual(img.backingLink, {
      name: "base.qcow2",
      path: base,
      format: "qcow2",
      formatRecorded: true,
    });
    assert.equal(sha256Source(img), topHash);
    img.close();

    // 2 MiB clusters with subclusters on a raw backing file: unallocated subclusters read through.
    const sub = path.join(dir, "sub.qcow2");
    createOverlay(sub, "disk.raw", "raw", QCOW2_VARIANTS["2m-l2ext"]);
    qemuIo(sub, [
      "write -P 0x77 65536 4096",
      `write -z ${3 * MiB} 131072`,
      `write -P 0x11 ${6 * MiB} ${2 * MiB}`,
    ]);
    const subHash = editedHash(
      raw,
      [
        { at: 65536, data: Buffer.alloc(4096, 0x77) },
        { at: 3 * MiB, data: Buffer.alloc(131072) },
        { at: 6 * MiB, data: Buffer.alloc(2 * MiB, 0x11) },
      ],
      path.join(dir, "sub.expected"),
    );
    assert.equal(hashOf(sub), subHash);

    // A third image on top of `top`, with a compressed cluster of its own (qemu-io write -c).
    const third = path.join(dir, "third.qcow2");
    createOverlay(third, "top.qcow2", "qcow2", QCOW2_VARIANTS.zstd);
    qemuIo(third, [`write -c -P 0x44 ${8 * MiB} 65536`, "write -P 0x66 2048 1024"]);
    const thirdHash = editedHash(
      path.join(dir, "top.expected"),
      [
        { at: 8 * MiB, data: Buffer.alloc(65536, 0x44) },
        { at: 2048, data: Buffer.alloc(1024, 0x66) },
      ],
      path.join(dir, "third.expected"),
    );
    convertToRaw(third, path.join(dir, "third.qemu.raw"));
    assert.equal(sha256File(path.join(dir, "third.qemu.raw")), thirdHash);
    assert.equal(hashOf(third, 1_000_000), thirdHash);

    // An overlay larger than its backing file reads zeros past the backing file's end.
    const big = path.join(dir, "big.qcow2");
    createOverlay(big, "disk.raw", "raw", {}, 32 * MiB);
    const bigImg = openImage(big);
    const tail = Buffer.alloc(MiB, 1);
    bigImg.read(tail, 28 * MiB);
    assert.ok(tail.every((x) => x === 0));
    bigImg.close();
  });
});

describe("partition tables from sgdisk and sfdisk", { skip }, () => {
  const dir = tempDir("bfc-parts-");
  const f = (n: string) => path.join(dir, n);
  const ROOT_UUID = "3ac1ed2c-8d1e-4b1f-9e5a-3c1b5f3e2a01";

  before(() => {
    makeExtImage(f("ext4.img"), { type: "ext4", sizeMiB: 16, label: "root", uuid: ROOT_UUID });
    makeExtImage(f("ext3.img"), { type: "ext3", sizeMiB: 12, label: "data" });
    makeExtImage(f("ext2.img"), { type: "ext2", sizeMiB: 8, blockSize: 1024 });
    makeSwapImage(f("swap.img"), 4, "swappy");
  });

  it("GPT: the list matches sfdisk --json and sgdisk -i; filesystems are probed; same through qcow2", () => {
    const laid = buildGptDisk(
      f("gpt.img"),
      [
        { image: f("ext4.img"), sizeMiB: 16, name: "rootfs", uuid: "AAAAAAAA-0000-0000-0000-000000000001" },
        { image: f("ext3.img"), sizeMiB: 12, name: "data" },
        { image: f("swap.img"), sizeMiB: 4, name: "swap", type: "8200" },
        { sizeMiB: 2, name: "bios", type: "ef02" },
      ],
      { diskGuid: "11111111-2222-3333-4444-555555555555" },
    );
    const src = openImage(f("gpt.img"));
    const t = readPartitionTable(src);
    src.close();
    assert.equal(t.type, "gpt");
    assert.deepEqual(t.warnings, []);
    const sf = sfdiskJson(f("gpt.img"));
    assert.equal(t.diskId, sf.id);
    assert.deepEqual(
      t.partitions.map((p) => ({
        start: p.firstLba,
        size: p.sectors,
        type: p.typeId,
        uuid: p.uuid,
        name: p.name,
      })),
      sf.partitions.map((p) => ({
        start: p.start,
        size: p.size,
        type: p.type,
        uuid: p.uuid,
        name: p.name ?? "",
      })),
    );
    assert.deepEqual(
      t.partitions.map((p) => [p.index, p.start, p.size]),
      laid.map((p) => [p.index, p.start, p.size]),
    );
    for (const p of t.partitions) {
      const info = tool("sgdisk", ["-i", String(p.index), f("gpt.img")]);
      const field = (re: RegExp) => re.exec(info)?.[1];
      assert.equal(Number(field(/First sector: (\d+)/)), p.firstLba);
      assert.equal(Number(field(/Last sector: (\d+)/)), p.firstLba + p.sectors - 1);
      assert.equal(field(/Partition GUID code: (\S+)/), p.typeId);
      assert.equal(field(/Partition GUID code: \S+ \((.*)\)/), p.typeName);
      assert.equal(field(/Partition unique GUID: (\S+)/), p.uuid);
      assert.equal(field(/Partition name: '(.*)'/), p.name);
    }
    assert.deepEqual(
      t.partitions.map((p) => p.filesystem),
      [
        { type: "ext4", label: "root", uuid: ROOT_UUID },
        { type: "ext3", label: "data", uuid: t.partitions[1].filesystem?.uuid },
        { type: "swap", label: "swappy", uuid: t.partitions[2].filesystem?.uuid },
        { type: "unknown" },
      ],
    );

    convertToQcow2(f("gpt.img"), f("gpt.qcow2"), QCOW2_VARIANTS.zstd);
    const q = openImage(f("gpt.qcow2"));
    assert.deepEqual(readPartitionTable(q), t);
    q.close();

    assert.throws(() => openPartition(f("gpt.qcow2")), {
      reason: "AMBIGUOUS",
      message:
        /2 partitions hold filesystems; choose a partition: 1 \(rootfs, ext4, 16 MiB\), 2 \(data, ext3, 12 MiB\), 3 \(swap, swap, 4 MiB\), 4 \(bios, unknown, 2 MiB\)/,
    });
    const p1 = openPartition(f("gpt.qcow2"), { partition: 1 });
    try {
      assert.equal(p1.size, 16 * MiB);
      assert.equal(p1.partition?.name, "rootfs");
      assert.equal(p1.label, `${f("gpt.qcow2")} partition 1`);
      assert.equal(sha256Source(p1), sha256File(f("ext4.img")));
    } finally {
      p1.close();
    }
  });

  it("MBR with logical partitions 5 and 6: the list matches sfdisk --json", () => {
    buildMbrDisk(
      f("mbr.img"),
      {
        primary: [{ image: f("ext3.img"), sizeMiB: 12, bootable: true }],
        logical: [
          { image: f("ext2.img"), sizeMiB: 8 },
          { image: f("ext4.img"), sizeMiB: 16 },
        ],
      },
      { diskId: "0x12345678" },
    );
    const src = openImage(f("mbr.img"));
    const t = readPartitionTable(src);
    src.close();
    assert.equal(t.type, "mbr");
    assert.deepEqual(t.warnings, []);
    const sf = sfdiskJson(f("mbr.img"));
    assert.equal(t.diskId, sf.id);
    assert.deepEqual(
      t.partitions.map((p) => ({
        node: `${f("mbr.img")}${p.index}`,
        start: p.firstLba,
        size: p.sectors,
        type: p.typeId,
        bootable: p.bootable,
      })),
      sf.partitions.map((p) => ({
        node: p.node,
        start: p.start,
        size: p.size,
        type: p.type.padStart(2, "0"),
        bootable: p.bootable === true,
      })),
    );
    assert.deepEqual(
      t.partitions.map((p) => [p.index, p.filesystem?.type]),
      [
        [1, "ext3"],
        [2, undefined],
        [5, "ext2"],
        [6, "ext4"],
      ],
    );
    const p6 = openPartition(f("mbr.img"), { partition: 6 });
    assert.equal(sha256Source(p6), sha256File(f("ext4.img")));
    p6.close();
    assert.throws(() => openPartition(f("mbr.img"), { partition: 2 }), { reason: "INVALID_ARGUMENT" });
    assert.throws(() => openPartition(f("mbr.img"), { partition: 3 }), {
      reason: "NOT_FOUND",
      message: /1 \(ext3, 12 MiB\), 2 \(extended, /,
    });
  });

  it("a bare filesystem image is the whole disk; a single-filesystem disk needs no choice", () => {
    const bare = openPartition(f("ext4.img"));
    assert.equal(bare.partition, null);
    assert.equal(bare.table.type, "none");
    assert.equal(bare.table.filesystem?.type, "ext4");
    assert.equal(bare.size, 16 * MiB);
    bare.close();
    buildGptDisk(f("one.img"), [
      { sizeMiB: 1, type: "ef02" },
      { image: f("ext2.img"), sizeMiB: 8 },
      { image: f("swap.img"), sizeMiB: 4, type: "8200" },
    ]);
    const one: BlockSource & { partition?: unknown } = openPartition(f("one.img"));
    assert.equal((one as ReturnType<typeof openPartition>).partition?.index, 2);
    one.close();
  });
});
