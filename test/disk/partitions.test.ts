import assert from "node:assert/strict";
import { describe, it } from "node:test";
import zlib from "node:zlib";
import fc from "fast-check";
import { BufferSource } from "../../src/disk/block-source.ts";
import { probeFilesystemBytes } from "../../src/disk/filesystem-probe.ts";
import { choosePartition } from "../../src/disk/open-disk.ts";
import { type PartitionTable, readPartitionTable } from "../../src/disk/partitions.ts";
import { isBfcError } from "../../src/errors.ts";
import { caught } from "../helpers.ts";
import {
  buildGpt,
  type GptSpec,
  writeEbrChain,
  writeExtSuperblock,
  writeMbrSector,
} from "./table-builder.ts";

const LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
const ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const SWAP = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F";

function gptSpec(sectorSize: 512 | 4096, sectors: number): GptSpec {
  return {
    sectorSize,
    sectors,
    diskGuid: "11111111-2222-3333-4444-555555555555",
    partitions: [
      {
        first: 40,
        last: 99,
        type: ESP,
        uuid: "AAAAAAAA-0000-0000-0000-000000000001",
        name: "EFI",
        attributes: 1n,
      },
      {
        first: 100,
        last: 299,
        type: LINUX,
        uuid: "AAAAAAAA-0000-0000-0000-000000000002",
        name: "rootfs ✓",
        attributes: 4n,
      },
      { first: 300, last: 349, type: SWAP, uuid: "AAAAAAAA-0000-0000-0000-000000000003", slot: 4 },
    ],
  };
}

function table(disk: Buffer): PartitionTable {
  return readPartitionTable(new BufferSource(disk, "disk.img"));
}

describe("partitions: GPT", () => {
  for (const ss of [512, 4096] as const) {
    it(`${ss}-byte sectors: entries, names, GUIDs, numbering by slot`, () => {
      const built = buildGpt(gptSpec(ss, 400));
      writeExtSuperblock(built.disk, 100 * ss, { compat: 4, incompat: 0x2c2, label: "root" });
      const t = table(built.disk);
      assert.equal(t.type, "gpt");
      assert.equal(t.sectorSize, ss);
      assert.equal(t.diskId, "11111111-2222-3333-4444-555555555555");
      assert.deepEqual(t.warnings, []);
      assert.deepEqual(
        t.partitions.map((p) => [
          p.index,
          p.start,
          p.size,
          p.firstLba,
          p.sectors,
          p.typeName,
          p.name,
          p.bootable,
        ]),
        [
          [1, 40 * ss, 60 * ss, 40, 60, "EFI system partition", "EFI", false],
          [2, 100 * ss, 200 * ss, 100, 200, "Linux filesystem", "rootfs ✓", true],
          [5, 300 * ss, 50 * ss, 300, 50, "Linux swap", "", false],
        ],
      );
      assert.equal(t.partitions[1].typeId, LINUX);
      assert.equal(t.partitions[1].uuid, "AAAAAAAA-0000-0000-0000-000000000002");
      assert.equal(t.partitions[1].filesystem?.type, "ext4");
      assert.equal(t.partitions[1].filesystem?.label, "root");
      assert.equal(t.partitions[0].filesystem?.type, "unknown");
    });

    it(`${ss}-byte sectors: a damaged primary header or entry array falls back to the backup`, () => {
      for (const damage of ["header", "entries", "signature"] as const) {
        const built = buildGpt(gptSpec(ss, 400));
        if (damage === "header") built.disk[built.primaryHeader + 40] ^= 1;
        else if (damage === "entries") built.disk[built.primaryEntries + 130] ^= 1;
        else built.disk.fill(0, built.primaryHeader, built.primaryHeader + 8);
        const t = table(built.disk);
        assert.equal(t.type, "gpt");
        assert.equal(t.sectorSize, ss);
        assert.equal(t.partitions.length, 3);
        assert.equal(t.partitions[1].start, 100 * ss);
        assert.match(t.warnings.join("\n"), /using the backup GPT at sector 399/);
        if (damage === "header") assert.match(t.warnings.join(), /header CRC mismatch/);
        if (damage === "entries") assert.match(t.warnings.join(), /entry array CRC mismatch/);
      }
    });
  }

  it("a damaged backup is reported while the primary is used", () => {
    const built = buildGpt(gptSpec(512, 400));
    built.disk[built.backupHeader + 30] ^= 1;
    const t = table(built.disk);
    assert.equal(t.partitions.length, 3);
    assert.match(t.warnings.join(), /backup GPT header at sector 399 is unusable/);
  });

  it("both copies damaged: the protective MBR is read instead, with a warning", () => {
    const built = buildGpt(gptSpec(512, 400));
    built.disk[built.primaryHeader + 40] ^= 1;
    built.disk[built.backupHeader + 40] ^= 1;
    const t = table(built.disk);
    assert.equal(t.type, "mbr");
    assert.deepEqual(
      t.partitions.map((p) => [p.index, p.typeId, p.typeName]),
      [[1, "ee", "GPT"]],
    );
    assert.match(t.warnings.join("\n"), /no valid backup GPT either/);
    assert.match(t.warnings.join("\n"), /announces a GPT/);
  });

  it("partitions running past the end of the disk are kept with a warning", () => {
    const spec = gptSpec(512, 400);
    spec.partitions[2].last = 5000;
    const t = table(buildGpt(spec).disk);
    assert.match(t.partitions[2].warning ?? "", /beyond the end of the disk/);
    assert.match(t.warnings.join(), /partition 5 ends beyond/);
  });

  it("a header with absurd entry counts or sizes is refused without allocating them", () => {
    const built = buildGpt(gptSpec(512, 400));
    const h = built.primaryHeader;
    built.disk.writeUInt32LE(0xffffffff, h + 80);
    const copy = Buffer.from(built.disk.subarray(h, h + 92));
    copy.writeUInt32LE(0, 16);
    built.disk.writeUInt32LE(zlib.crc32(copy), h + 16);
    const t = table(built.disk);
    assert.match(t.warnings.join(), /entry array of 4294967295 × 128 bytes is too large/);
    assert.equal(t.partitions.length, 3); // from the backup
  });
});

describe("partitions: MBR", () => {
  function mbrDisk(): Buffer {
    const disk = Buffer.alloc(4096 * 512);
    writeMbrSector(
      disk,
      0,
      [
        { type: 0x83, start: 2048, count: 100, status: 0x80 },
        { type: 0x05, start: 2200, count: 1800 },
        { type: 0, start: 0, count: 0 },
        { type: 0x82, start: 4000, count: 50 },
      ],
      0x12345678,
    );
    writeEbrChain(disk, 2200, [
      { ebr: 0, offset: 63, count: 200 },
      { ebr: 300, offset: 2, count: 100, type: 0x8e },
      { ebr: 500, offset: 10, count: 100 },
    ]);
    writeExtSuperblock(disk, 2048 * 512, { compat: 4 });
    writeExtSuperblock(disk, (2200 + 63) * 512, {});
    writeExtSuperblock(disk, (2200 + 510) * 512, { incompat: 0x40 });
    return disk;
  }

  it("primaries by slot, logical partitions from 5 in chain order", () => {
    const t = table(mbrDisk());
    assert.equal(t.type, "mbr");
    assert.equal(t.diskId, "0x12345678");
    assert.deepEqual(t.warnings, []);
    assert.deepEqual(
      t.partitions.map((p) => [
        p.index,
        p.firstLba,
        p.sectors,
        p.typeId,
        p.typeName,
        p.bootable,
        p.extended,
        p.logical,
        p.filesystem?.type,
      ]),
      [
        [1, 2048, 100, "83", "Linux", true, undefined, undefined, "ext3"],
        [2, 2200, 1800, "05", "Extended", false, true, undefined, undefined],
        [4, 4000, 50, "82", "Linux swap / Solaris", false, undefined, undefined, "unknown"],
        [5, 2263, 200, "83", "Linux", false, undefined, true, "ext2"],
        [6, 2502, 100, "8e", "Linux LVM", false, undefined, true, "unknown"],
        [7, 2710, 100, "83", "Linux", false, undefined, true, "ext4"],
      ],
    );
  });

  it("an EBR chain that loops is cut with a warning", () => {
    const disk = mbrDisk();
    // The third EBR links back to the first.
    writeMbrSector(disk, 2200 + 500, [
      { type: 0x83, start: 10, count: 100 },
      { type: 0x05, start: 0, count: 100 },
    ]);
    const t = table(disk);
    assert.deepEqual(
      t.partitions.map((p) => p.index),
      [1, 2, 4, 5, 6, 7],
    );
    assert.match(t.warnings.join(), /loops back to the EBR at sector 2200/);
    // A self-loop.
    writeMbrSector(disk, 2200, [
      { type: 0x83, start: 63, count: 200 },
      { type: 0x05, start: 0, count: 1 },
    ]);
    const self = table(disk);
    assert.deepEqual(
      self.partitions.map((p) => p.index),
      [1, 2, 4, 5],
    );
  });

  it("an endless (non-repeating) chain stops at the cap; an EBR without signature or beyond the disk ends it", () => {
    const disk = Buffer.alloc(2048 * 512);
    writeMbrSector(disk, 0, [{ type: 0x0f, start: 1, count: 2000 }]);
    writeEbrChain(
      disk,
      1,
      Array.from({ length: 300 }, (_, i) => ({ ebr: i * 2, offset: 1, count: 1 })),
    );
    const t = table(disk);
    assert.equal(t.partitions.length, 1 + 128);
    assert.match(t.warnings.join(), /longer than 128 EBRs/);
    disk[(1 + 2 * 10) * 512 + 510] = 0;
    assert.equal(table(disk).partitions.length, 1 + 10);
    assert.match(table(disk).warnings.join(), /EBR at sector 21 has no 55 AA signature/);
    writeMbrSector(disk, 1 + 2 * 3, [
      { type: 0x83, start: 1, count: 1 },
      { type: 0x05, start: 1_000_000, count: 1 },
    ]);
    assert.match(table(disk).warnings.join(), /beyond the end of the disk/);
  });

  it("no table: a bare filesystem, or a boot sector that is not a table", () => {
    const disk = Buffer.alloc(64 * 1024);
    writeExtSuperblock(disk, 0, { compat: 4, incompat: 0x2 });
    const t = table(disk);
    assert.equal(t.type, "none");
    assert.deepEqual(t.partitions, []);
    assert.equal(t.filesystem?.type, "ext3");
    // A FAT boot sector: 55 AA but a BPB, not a table.
    const fat = Buffer.alloc(64 * 1024);
    fat[0] = 0xeb;
    fat.writeUInt16LE(512, 11);
    fat[13] = 4;
    fat.writeUInt16LE(1, 14);
    fat[16] = 2;
    fat.write("FAT16   ", 54, "latin1");
    fat.write("MYDISK     ", 43, "latin1");
    fat[510] = 0x55;
    fat[511] = 0xaa;
    const f = table(fat);
    assert.equal(f.type, "none");
    assert.equal(f.filesystem?.type, "fat");
    assert.equal(f.filesystem?.label, "MYDISK");
    // Status bytes other than 0x00/0x80: not a table.
    const junk = Buffer.alloc(4096);
    writeMbrSector(junk, 0, [{ type: 0x83, start: 1, count: 2, status: 0x17 }]);
    assert.equal(table(junk).type, "none");
    assert.equal(table(Buffer.alloc(100)).type, "none");
  });

  it("fuzzing sector 0, the GPT header and entries: BfcErrors or results, never crashes", () => {
    const gpt = buildGpt(gptSpec(512, 400));
    const mbr = mbrDisk();
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(fc.tuple(fc.nat(4 * 512 - 1), fc.nat(255)), { minLength: 1, maxLength: 16 }),
        (useGpt, edits) => {
          const disk = Buffer.from(useGpt ? gpt.disk : mbr.subarray(0, 400 * 512));
          for (const [at, v] of edits) disk[at] = v;
          try {
            const t = table(disk);
            for (const p of t.partitions) {
              assert.ok(Number.isSafeInteger(p.start) && Number.isSafeInteger(p.size));
              if (p.start + p.size > disk.length && !p.extended) assert.ok(p.warning !== undefined);
            }
          } catch (e) {
            assert.ok(isBfcError(e), String(e));
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("partitions: filesystem probe", () => {
  const cases: [string, (b: Buffer) => void, string][] = [
    ["ext2", (b) => writeExtSuperblock(b, 0, { incompat: 0x2, roCompat: 0x3 }), "ext2"],
    ["ext3", (b) => writeExtSuperblock(b, 0, { compat: 0x4, incompat: 0x6, roCompat: 0x3 }), "ext3"],
    ["ext4 (extents)", (b) => writeExtSuperblock(b, 0, { compat: 0x4, incompat: 0x42 }), "ext4"],
    ["ext4 without journal (metadata_csum)", (b) => writeExtSuperblock(b, 0, { roCompat: 0x400 }), "ext4"],
    ["external journal", (b) => writeExtSuperblock(b, 0, { incompat: 0x8 }), "jbd"],
    ["swap", (b) => b.write("SWAPSPACE2", 4086, "latin1"), "swap"],
    ["LUKS", (b) => Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe, 0, 2]).copy(b), "luks"],
    [
      "LVM",
      (b) => {
        b.write("LABELONE", 512, "latin1");
        b.write("LVM2 001", 536, "latin1");
      },
      "lvm",
    ],
    ["squashfs", (b) => b.write("hsqs", 0, "latin1"), "squashfs"],
    ["xfs", (b) => b.write("XFSB", 0, "latin1"), "xfs"],
    ["btrfs", (b) => b.write("_BHRfS_M", 0x10040, "latin1"), "btrfs"],
    [
      "a stray 0xEF53 with absurd geometry",
      (b) => {
        writeExtSuperblock(b, 0, {});
        b.writeUInt32LE(99, 1024 + 0x18);
      },
      "unknown",
    ],
    ["zeros", () => {}, "unknown"],
  ];
  for (const [name, make, type] of cases) {
    it(`${name} → ${type}`, () => {
      const b = Buffer.alloc(0x11000);
      make(b);
      assert.equal(probeFilesystemBytes(b).type, type);
    });
  }
});

describe("partitions: choosing one", () => {
  const t: PartitionTable = {
    type: "gpt",
    sectorSize: 512,
    warnings: [],
    partitions: [
      {
        index: 1,
        start: 1 << 20,
        size: 1 << 20,
        firstLba: 2048,
        sectors: 2048,
        typeName: "BIOS boot partition",
        typeId: "",
        filesystem: { type: "unknown" },
      },
      {
        index: 2,
        start: 2 << 20,
        size: 96 << 20,
        firstLba: 4096,
        sectors: 1,
        typeName: "Linux filesystem",
        typeId: LINUX,
        name: "rootfs",
        filesystem: { type: "ext4" },
      },
      {
        index: 3,
        start: 98 << 20,
        size: 8 << 20,
        firstLba: 1,
        sectors: 1,
        typeName: "Linux swap",
        typeId: SWAP,
        filesystem: { type: "swap" },
      },
    ],
  };

  it("picks the only partition holding a filesystem; refuses to guess between two", () => {
    assert.equal(choosePartition(t, undefined, "vm.img")?.index, 2);
    const two: PartitionTable = {
      ...t,
      partitions: [...t.partitions, { ...t.partitions[1], index: 4, name: "home" }],
    };
    const err = caught(() => choosePartition(two, undefined, "vm.img"));
    assert.equal((err as { reason?: string }).reason, "AMBIGUOUS");
    assert.equal(
      err.message,
      "vm.img: 2 partitions hold filesystems; choose a partition: 1 (unknown, 1 MiB), 2 (rootfs, ext4, 96 MiB), 3 (swap, 8 MiB), 4 (home, ext4, 96 MiB)",
    );
    const none: PartitionTable = { ...t, partitions: [t.partitions[0]] };
    assert.throws(() => choosePartition(none, undefined, "vm.img"), {
      reason: "AMBIGUOUS",
      message: /no partition holds/,
    });
  });

  it("an explicit number: found, missing (listing the partitions), or 0 for the whole disk", () => {
    assert.equal(choosePartition(t, 3, "vm.img")?.index, 3);
    assert.equal(choosePartition(t, 0, "vm.img"), null);
    assert.throws(() => choosePartition(t, 7, "vm.img"), {
      reason: "NOT_FOUND",
      message:
        "vm.img: has no partition 7; its partitions: 1 (unknown, 1 MiB), 2 (rootfs, ext4, 96 MiB), 3 (swap, 8 MiB)",
    });
    const bare: PartitionTable = {
      type: "none",
      sectorSize: 512,
      partitions: [],
      warnings: [],
      filesystem: { type: "ext4" },
    };
    assert.equal(choosePartition(bare, undefined, "fs.img"), null);
    assert.throws(() => choosePartition(bare, 1, "fs.img"), {
      reason: "NOT_FOUND",
      message: /no partition table/,
    });
    const ext: PartitionTable = {
      ...t,
      type: "mbr",
      partitions: [
        {
          index: 2,
          start: 0,
          size: 1024,
          firstLba: 0,
          sectors: 2,
          typeName: "Extended",
          typeId: "05",
          extended: true,
        },
      ],
    };
    assert.throws(() => choosePartition(ext, 2, "vm.img"), {
      reason: "INVALID_ARGUMENT",
      message: /extended partition/,
    });
  });
});
