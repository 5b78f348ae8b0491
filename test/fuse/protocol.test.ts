/**
 * The FUSE kernel protocol's byte layouts (src/fuse/protocol.ts) against an independent decoder
 * written here from include/uapi/linux/fuse.h: every field at its offset, 64-bit values past 32 bits,
 * times before 1970, padding zeroed, and the request parsers' refusals.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  ATTR_OUT_SIZE,
  type Attr,
  DIRENT_SIZE,
  DIRENTPLUS_SIZE,
  direntSize,
  direntType,
  ENTRY_OUT_SIZE,
  forEachForget,
  getName,
  getU64,
  IN_HEADER_SIZE,
  INIT_OUT_SIZE,
  newInHeader,
  newOut,
  Op,
  parseInHeader,
  parseInit,
  parseRead,
  parseSetattr,
  parseWrite,
  putU64,
  STATFS_OUT_SIZE,
  writeAttrOut,
  writeDirent,
  writeEntryOut,
  writeInitOut,
  writeOpenOut,
  writeOutHeader,
  writeStatfsOut,
  writeWriteOut,
} from "../../src/fuse/protocol.ts";

/** fuse_attr as the kernel reads it (BigInt fields: no rounding in the check itself). */
function readAttr(b: Buffer, o: number) {
  return {
    ino: b.readBigUInt64LE(o),
    size: b.readBigUInt64LE(o + 8),
    blocks: b.readBigUInt64LE(o + 16),
    atime: b.readBigInt64LE(o + 24),
    mtime: b.readBigInt64LE(o + 32),
    ctime: b.readBigInt64LE(o + 40),
    atimensec: b.readUInt32LE(o + 48),
    mtimensec: b.readUInt32LE(o + 52),
    ctimensec: b.readUInt32LE(o + 56),
    mode: b.readUInt32LE(o + 60),
    nlink: b.readUInt32LE(o + 64),
    uid: b.readUInt32LE(o + 68),
    gid: b.readUInt32LE(o + 72),
    rdev: b.readUInt32LE(o + 76),
    blksize: b.readUInt32LE(o + 80),
    flags: b.readUInt32LE(o + 84),
  };
}

/** Seconds (floor) and nanoseconds (0..1e9) of a nanosecond time, by BigInt arithmetic. */
function split(ns: bigint): [bigint, number] {
  let sec = ns / 1_000_000_000n;
  let rem = ns % 1_000_000_000n;
  if (rem < 0n) {
    rem += 1_000_000_000n;
    sec -= 1n;
  }
  return [sec, Number(rem)];
}

function attr(over: Partial<Attr> = {}): Attr {
  return {
    ino: 42,
    size: 1234,
    blocks: 3,
    atimeNs: 1_700_000_000_123_456_789n,
    mtimeNs: 1_700_000_000_123_456_789n,
    ctimeNs: 1_700_000_000_123_456_789n,
    mode: 0o100644,
    nlink: 1,
    uid: 1000,
    gid: 100,
    rdev: 0,
    blksize: 4096,
    ...over,
  };
}

function checkAttr(b: Buffer, o: number, a: Attr): void {
  const got = readAttr(b, o);
  assert.equal(got.ino, BigInt(a.ino));
  assert.equal(got.size, BigInt(a.size));
  assert.equal(got.blocks, BigInt(a.blocks));
  for (const [k, ns] of [
    ["a", a.atimeNs],
    ["m", a.mtimeNs],
    ["c", a.ctimeNs],
  ] as const) {
    const [sec, nsec] = split(ns);
    assert.equal(got[`${k}time`], sec, `${k}time seconds`);
    assert.equal(got[`${k}timensec`], nsec, `${k}time nanoseconds`);
  }
  assert.equal(got.mode, a.mode);
  assert.equal(got.nlink, a.nlink);
  assert.equal(got.uid, a.uid);
  assert.equal(got.gid, a.gid);
  assert.equal(got.rdev, a.rdev);
  assert.equal(got.blksize, a.blksize);
  assert.equal(got.flags, 0);
}

describe("FUSE protocol: replies", () => {
  it("the out header: length, negative errno, 64-bit unique", () => {
    const r = newOut(64);
    writeOutHeader(r, 16, -2, 2 ** 40 + 7);
    assert.equal(r.b.readUInt32LE(0), 16);
    assert.equal(r.b.readInt32LE(4), -2);
    assert.equal(r.b.readBigUInt64LE(8), 2n ** 40n + 7n);
  });

  it("fuse_entry_out: node id, validity split into seconds and nanoseconds, then fuse_attr", () => {
    const r = newOut(256);
    const a = attr({ ino: 2 ** 48 + 5, size: 2 ** 33 + 1, blocks: 2 ** 40 });
    assert.equal(writeEntryOut(r, 16, 2 ** 35 + 9, 3600.25, 1.5, a), ENTRY_OUT_SIZE);
    const b = r.b;
    assert.equal(b.readBigUInt64LE(16), 2n ** 35n + 9n);
    assert.equal(b.readBigUInt64LE(24), 0n, "generation");
    assert.equal(b.readBigUInt64LE(32), 3600n);
    assert.equal(b.readBigUInt64LE(40), 1n);
    assert.equal(b.readUInt32LE(48), 250_000_000);
    assert.equal(b.readUInt32LE(52), 500_000_000);
    checkAttr(b, 16 + 40, a);
  });

  it("a negative entry: node id 0, attributes zeroed", () => {
    const r = newOut(256);
    r.b.fill(0xee);
    writeEntryOut(r, 0, 0, 60, 0, undefined);
    assert.equal(r.b.readBigUInt64LE(0), 0n);
    assert.equal(r.b.readBigUInt64LE(16), 60n);
    assert.ok(r.b.subarray(40, ENTRY_OUT_SIZE).every((x) => x === 0));
  });

  it("times with distinct a/m/ctime, before 1970 and at whole seconds", () => {
    const r = newOut(256);
    const a = attr({ atimeNs: -1n, mtimeNs: -1_500_000_000n, ctimeNs: 86_400_000_000_000n });
    writeAttrOut(r, 0, 1, a);
    checkAttr(r.b, 16, a);
    assert.equal(r.b.readBigInt64LE(16 + 24), -1n);
    assert.equal(r.b.readUInt32LE(16 + 48), 999_999_999);
  });

  it("fuse_attr_out round-trips any attributes (property)", () => {
    const big = fc.bigInt(-(2n ** 62n), 2n ** 62n);
    fc.assert(
      fc.property(
        fc.record({
          ino: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
          size: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
          blocks: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
          atimeNs: big,
          mtimeNs: big,
          ctimeNs: big,
          mode: fc.integer({ min: 0, max: 0xffff }),
          nlink: fc.integer({ min: 0, max: 0xffffffff }),
          uid: fc.integer({ min: 0, max: 0xffffffff }),
          gid: fc.integer({ min: 0, max: 0xffffffff }),
          rdev: fc.integer({ min: 0, max: 0xffffffff }),
          blksize: fc.integer({ min: 0, max: 0xffffffff }),
        }),
        fc.boolean(),
        (a, same) => {
          const x = same ? { ...a, atimeNs: a.mtimeNs, ctimeNs: a.mtimeNs } : a;
          const r = newOut(ATTR_OUT_SIZE + 8);
          r.b.fill(0xa5);
          assert.equal(writeAttrOut(r, 8, 10, x), ATTR_OUT_SIZE);
          checkAttr(r.b, 8 + 16, x);
          assert.equal(r.b.readUInt32LE(8 + 12), 0, "padding");
        },
      ),
    );
  });

  it("fuse_init_out: version, flags, limits and nanosecond time granularity", () => {
    const r = newOut(128);
    r.b.fill(0xff);
    const flags = (1 << 31) | (1 << 22) | 1;
    assert.equal(
      writeInitOut(r, 16, {
        minor: 38,
        maxReadahead: 131072,
        flags,
        maxBackground: 64,
        congestionThreshold: 48,
        maxWrite: 1 << 20,
        maxPages: 256,
      }),
      INIT_OUT_SIZE,
    );
    const b = r.b;
    assert.deepEqual(
      [b.readUInt32LE(16), b.readUInt32LE(20), b.readUInt32LE(24), b.readUInt32LE(28)],
      [7, 38, 131072, flags >>> 0],
    );
    assert.deepEqual([b.readUInt16LE(32), b.readUInt16LE(34)], [64, 48]);
    assert.equal(b.readUInt32LE(36), 1 << 20);
    assert.equal(b.readUInt32LE(40), 1, "time_gran");
    assert.equal(b.readUInt16LE(44), 256);
    assert.ok(
      b.subarray(46, 16 + INIT_OUT_SIZE).every((x) => x === 0),
      "map_alignment, flags2, unused",
    );
  });

  it("fuse_open_out, fuse_write_out and fuse_statfs_out", () => {
    const r = newOut(256);
    writeOpenOut(r, 16, 2 ** 34 + 3, 2);
    assert.equal(r.b.readBigUInt64LE(16), 2n ** 34n + 3n);
    assert.equal(r.b.readUInt32LE(24), 2);
    writeWriteOut(r, 16, 65536);
    assert.equal(r.b.readUInt32LE(16), 65536);
    r.b.fill(0xff);
    assert.equal(
      writeStatfsOut(r, 16, {
        blocks: 2 ** 36,
        bfree: 1,
        bavail: 2,
        files: 100_000,
        ffree: 0,
        bsize: 4096,
        namelen: 255,
        frsize: 4096,
      }),
      STATFS_OUT_SIZE,
    );
    const b = r.b;
    assert.equal(b.readBigUInt64LE(16), 2n ** 36n);
    assert.deepEqual(
      [b.readBigUInt64LE(24), b.readBigUInt64LE(32), b.readBigUInt64LE(40), b.readBigUInt64LE(48)],
      [1n, 2n, 100000n, 0n],
    );
    assert.deepEqual([b.readUInt32LE(56), b.readUInt32LE(60), b.readUInt32LE(64)], [4096, 255, 4096]);
    assert.ok(
      b.subarray(68, 16 + STATFS_OUT_SIZE).every((x) => x === 0),
      "padding and spare",
    );
  });

  it("fuse_dirent: 8-byte aligned records, UTF-8 names, padding zeroed", () => {
    const r = newOut(4096);
    r.b.fill(0xcc);
    let o = 0;
    const names = ["a", "12345678", "ünïcödé 日本", "x".repeat(255)];
    for (const [k, name] of names.entries()) {
      const len = Buffer.byteLength(name);
      const size = writeDirent(r, o, 2 ** 40 + k, k + 1, name, len, direntType(0o40755));
      assert.equal(size, direntSize(len, false));
      assert.equal(size % 8, 0);
      assert.equal(r.b.readBigUInt64LE(o), 2n ** 40n + BigInt(k));
      assert.equal(r.b.readBigUInt64LE(o + 8), BigInt(k + 1));
      assert.equal(r.b.readUInt32LE(o + 16), len);
      assert.equal(r.b.readUInt32LE(o + 20), 4, "DT_DIR");
      assert.equal(r.b.toString("utf8", o + DIRENT_SIZE, o + DIRENT_SIZE + len), name);
      assert.ok(
        r.b.subarray(o + DIRENT_SIZE + len, o + size).every((x) => x === 0),
        `padding of '${name}'`,
      );
      o += size;
    }
    assert.equal(direntSize(1, true), (DIRENTPLUS_SIZE + 1 + 7) & ~7);
    assert.deepEqual(
      [0o100644, 0o40755, 0o120777, 0o10644, 0o20644, 0o60644, 0o140644].map(direntType),
      [8, 4, 10, 1, 2, 6, 12],
    );
  });
});

describe("FUSE protocol: requests", () => {
  /** A request: header then body. */
  function request(opcode: number, nodeid: number, body: Buffer, unique = 9): Buffer {
    const b = Buffer.alloc(IN_HEADER_SIZE + body.length);
    b.writeUInt32LE(b.length, 0);
    b.writeUInt32LE(opcode, 4);
    putU64(b, 8, unique);
    putU64(b, 16, nodeid);
    b.writeUInt32LE(1000, 24);
    b.writeUInt32LE(100, 28);
    b.writeUInt32LE(4242, 32);
    body.copy(b, IN_HEADER_SIZE);
    return b;
  }

  it("the in header; a length that disagrees with the read is refused", () => {
    const b = request(Op.LOOKUP, 2 ** 40 + 1, Buffer.from("name\0"), 2 ** 50);
    const h = parseInHeader(b, b.length, newInHeader());
    assert.deepEqual(h, {
      len: b.length,
      opcode: Op.LOOKUP,
      unique: 2 ** 50,
      nodeid: 2 ** 40 + 1,
      uid: 1000,
      gid: 100,
      pid: 4242,
    });
    assert.throws(() => parseInHeader(b, b.length - 1, newInHeader()), /says 45 bytes but 44 were read/);
    assert.throws(() => parseInHeader(b, 10, newInHeader()), /shorter than its header/);
  });

  it("64-bit fields beyond 2^53 read as NaN (never a wrong number)", () => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(2n ** 53n + 1n);
    assert.ok(Number.isNaN(getU64(b, 0)));
    b.writeBigUInt64LE(2n ** 53n - 1n);
    assert.equal(getU64(b, 0), 2 ** 53 - 1);
  });

  it("names: NUL-terminated UTF-8, else refused", () => {
    const b = request(Op.SYMLINK, 1, Buffer.from("link ü\0target/x\0"));
    const first = getName(b, 40, b.length);
    assert.equal(first.name, "link ü");
    assert.equal(getName(b, first.next, b.length).name, "target/x");
    const unterminated = request(Op.LOOKUP, 1, Buffer.from("abc"));
    assert.throws(() => getName(unterminated, 40, unterminated.length), /not NUL-terminated/);
    const latin1 = request(Op.LOOKUP, 1, Buffer.from([0x61, 0xe9, 0x62, 0]));
    assert.throws(() => getName(latin1, 40, latin1.length), /not UTF-8/);
  });

  it("fuse_init_in, fuse_read_in, fuse_write_in, fuse_setattr_in", () => {
    const init = Buffer.alloc(64);
    init.writeUInt32LE(7, 0);
    init.writeUInt32LE(45, 4);
    init.writeUInt32LE(131072, 8);
    init.writeUInt32LE(0x73fffffb, 12);
    assert.deepEqual(parseInit(request(Op.INIT, 0, init)), {
      major: 7,
      minor: 45,
      maxReadahead: 131072,
      flags: 0x73fffffb,
    });
    const read = Buffer.alloc(40);
    putU64(read, 0, 77);
    putU64(read, 8, 2 ** 40);
    read.writeUInt32LE(1 << 20, 16);
    assert.deepEqual(parseRead(request(Op.READ, 5, read)), { fh: 77, offset: 2 ** 40, size: 1 << 20 });
    const write = Buffer.alloc(40 + 5);
    putU64(write, 0, 3);
    putU64(write, 8, 10);
    write.writeUInt32LE(5, 16);
    write.write("hello", 40);
    const w = request(Op.WRITE, 5, write);
    const wi = parseWrite(w);
    assert.deepEqual(wi, { fh: 3, offset: 10, size: 5, data: 80 });
    assert.equal(w.toString("utf8", wi.data, wi.data + wi.size), "hello");
    const set = Buffer.alloc(88);
    set.writeUInt32LE(0x1 | 0x8 | 0x20, 0);
    putU64(set, 8, 12);
    putU64(set, 16, 2 ** 33);
    putU64(set, 32, -5);
    putU64(set, 40, 1_700_000_000);
    set.writeUInt32LE(111, 56);
    set.writeUInt32LE(222, 60);
    set.writeUInt32LE(0o100600, 68);
    set.writeUInt32LE(7, 76);
    set.writeUInt32LE(8, 80);
    assert.deepEqual(parseSetattr(request(Op.SETATTR, 5, set)), {
      valid: 0x29,
      fh: 12,
      size: 2 ** 33,
      atimeSec: -5,
      mtimeSec: 1_700_000_000,
      atimeNsec: 111,
      mtimeNsec: 222,
      mode: 0o100600,
      uid: 7,
      gid: 8,
    });
  });

  it("FORGET and BATCH_FORGET list every (node, count); a batch cut short stops at the request's end", () => {
    const one = Buffer.alloc(8);
    putU64(one, 0, 3);
    const seen: [number, number][] = [];
    const f = request(Op.FORGET, 12, one);
    forEachForget(f, Op.FORGET, 12, (id, n) => seen.push([id, n]));
    assert.deepEqual(seen, [[12, 3]]);
    const batch = Buffer.alloc(8 + 3 * 16);
    batch.writeUInt32LE(3, 0);
    for (let k = 0; k < 3; k++) {
      putU64(batch, 8 + k * 16, 100 + k);
      putU64(batch, 16 + k * 16, k + 1);
    }
    const all: [number, number][] = [];
    const bf = request(Op.BATCH_FORGET, 0, batch);
    forEachForget(bf, Op.BATCH_FORGET, 0, (id, n) => all.push([id, n]));
    assert.deepEqual(all, [
      [100, 1],
      [101, 2],
      [102, 3],
    ]);
    // a count larger than what follows: only the complete records
    batch.writeUInt32LE(1000, 0);
    const cut = request(Op.BATCH_FORGET, 0, batch.subarray(0, 8 + 2 * 16 + 4));
    const part: number[] = [];
    forEachForget(cut, Op.BATCH_FORGET, 0, (id) => part.push(id));
    assert.deepEqual(part, [100, 101]);
  });
});
