/**
 * The FUSE request handler driven with hand-built requests (no kernel): directory listings paged at
 * every offset and chunk size, attributes equal to the VFS's, lookups (negative entries for
 * immutable sources), reads, and every write operation on a writable memory filesystem, or EROFS on
 * an immutable one.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { Writer } from "../../src/container/writer.ts";
import { type ReaddirPlus, RequestHandler } from "../../src/fuse/handler.ts";
import { NodeTable } from "../../src/fuse/node-table.ts";
import {
  DIRENT_SIZE,
  ENTRY_OUT_SIZE,
  Fattr,
  getU64,
  IN_HEADER_SIZE,
  Op,
  putU64,
  ROOT_ID,
} from "../../src/fuse/protocol.ts";
import { SharedNodeTable } from "../../src/fuse/shared-node-table.ts";
import { createVfs } from "../../src/vfs/index.ts";
import type { Vfs } from "../../src/vfs/vfs.ts";
import { randomBytes, tempDir } from "../helpers.ts";

const { O_RDWR, O_CREAT, O_EXCL, S_IFREG } = fs.constants;

interface Reply {
  error: number;
  body: Buffer;
}

/** A handler with a request builder and the last reply. */
class Harness {
  readonly handler: RequestHandler;
  readonly replies: Reply[] = [];
  private unique = 1;

  constructor(
    vfs: Vfs,
    nodes: NodeTable | SharedNodeTable,
    immutable: boolean,
    readdirplus: ReaddirPlus = "always",
  ) {
    this.handler = new RequestHandler(
      vfs,
      nodes,
      (b, n) => {
        assert.equal(b.readUInt32LE(0), n, "reply length field");
        this.replies.push({ error: b.readInt32LE(4), body: Buffer.from(b.subarray(16, n)) });
      },
      { immutable, readdirplus },
    );
  }

  async call(opcode: number, nodeid: number, body: Buffer = Buffer.alloc(0)): Promise<Reply> {
    const b = Buffer.alloc(IN_HEADER_SIZE + body.length);
    b.writeUInt32LE(b.length, 0);
    b.writeUInt32LE(opcode, 4);
    putU64(b, 8, this.unique++);
    putU64(b, 16, nodeid);
    body.copy(b, IN_HEADER_SIZE);
    const before = this.replies.length;
    await this.handler.handle(b, b.length);
    assert.equal(this.replies.length, before + 1, `one reply to opcode ${opcode}`);
    return this.replies[before] as Reply;
  }

  async lookup(
    parent: number,
    name: string,
  ): Promise<{ error: number; id: number; mode: number; size: number }> {
    const r = await this.call(Op.LOOKUP, parent, Buffer.from(`${name}\0`));
    if (r.error) return { error: r.error, id: 0, mode: 0, size: 0 };
    return {
      error: 0,
      id: getU64(r.body, 0),
      mode: r.body.readUInt32LE(40 + 60),
      size: getU64(r.body, 40 + 8),
    };
  }

  /** One READDIR(PLUS) chunk: entries with their next offset (and node id / mode for PLUS). */
  async readdir(id: number, offset: number, size: number, plus: boolean, fh = 0) {
    const body = Buffer.alloc(40);
    putU64(body, 0, fh);
    putU64(body, 8, offset);
    body.writeUInt32LE(size, 16);
    const r = await this.call(plus ? Op.READDIRPLUS : Op.READDIR, id, body);
    assert.equal(r.error, 0);
    assert.ok(r.body.length <= size, "a reply fits the kernel's buffer");
    const out: { name: string; off: number; ino: number; type: number; id: number; mode: number }[] = [];
    for (let o = 0; o < r.body.length; ) {
      const d = plus ? o + ENTRY_OUT_SIZE : o;
      const len = r.body.readUInt32LE(d + 16);
      out.push({
        name: r.body.toString("utf8", d + DIRENT_SIZE, d + DIRENT_SIZE + len),
        off: getU64(r.body, d + 8),
        ino: getU64(r.body, d),
        type: r.body.readUInt32LE(d + 20),
        id: plus ? getU64(r.body, o) : 0,
        mode: plus ? r.body.readUInt32LE(o + 40 + 60) : 0,
      });
      o = d + ((DIRENT_SIZE + len + 7) & ~7);
    }
    return out;
  }
}

describe("RequestHandler over an immutable container", () => {
  let vfs: Vfs;
  const names = Array.from(
    { length: 3000 },
    (_, k) => `entry-${String(k).padStart(5, "0")}${k % 7 === 0 ? " ü" : ""}`,
  );
  before(async () => {
    const dir = tempDir("bfc-handler-");
    const src = path.join(dir, "src");
    fs.mkdirSync(path.join(src, "big"), { recursive: true });
    for (const [k, n] of names.entries()) {
      if (k % 10 === 0) fs.mkdirSync(path.join(src, "big", n));
      else fs.writeFileSync(path.join(src, "big", n), `file ${k}\n`);
    }
    fs.writeFileSync(path.join(src, "data.bin"), randomBytes(70_000, 1));
    fs.symlinkSync("data.bin", path.join(src, "link"));
    const file = path.join(dir, "t.bfc");
    const w = await Writer.create(file, { compression: "zstd" });
    await w.addTree(src, "");
    await w.finish();
    vfs = createVfs();
    await vfs.mount("bfc", "/", { path: file });
  });

  it("READDIRPLUS and READDIR page a 3,000-entry directory at any chunk size: every entry once, in order", async () => {
    const h = new Harness(vfs, SharedNodeTable.create(10_000), true);
    const big = await h.lookup(ROOT_ID, "big");
    assert.equal(big.error, 0);
    const want = [".", "..", ...(vfs.readdirSync("/big") as string[])];
    for (const plus of [true, false]) {
      for (const size of [4096, 8192, 65536, 1 << 20]) {
        const got: string[] = [];
        let offset = 0;
        for (;;) {
          const chunk = await h.readdir(big.id, offset, size, plus);
          if (chunk.length === 0) break;
          for (const e of chunk) {
            assert.equal(e.off, got.length + 1, "each entry's offset resumes right after it");
            got.push(e.name);
          }
          offset = (chunk.at(-1) as { off: number }).off;
        }
        assert.deepEqual(got, want, `plus=${plus} size=${size}`);
      }
    }
    // resuming from any offset gives the rest exactly
    for (const start of [1, 2, 3, 1500, 2999, 3001, 3002, 5000]) {
      const rest = await h.readdir(big.id, start, 1 << 20, true);
      assert.deepEqual(
        rest.map((e) => e.name),
        want.slice(start),
        `from ${start}`,
      );
    }
  });

  it("READDIRPLUS entries carry the node's attributes and a node id that LOOKUP agrees with", async () => {
    const nodes = SharedNodeTable.create(10_000);
    const h = new Harness(vfs, nodes, true);
    const big = await h.lookup(ROOT_ID, "big");
    const entries = await h.readdir(big.id, 2, 1 << 20, true);
    assert.equal(entries.length, names.length);
    for (const e of entries.slice(0, 200)) {
      const st = vfs.lstatSync(`/big/${e.name}`);
      assert.equal(e.ino, st.ino);
      assert.equal(e.mode, st.mode);
      assert.equal(e.type, st.isDirectory() ? 4 : 8);
      const l = await h.lookup(big.id, e.name);
      assert.equal(l.id, e.id, "the same node id");
      assert.equal(nodes.lookups(e.id), 2, "one reference from the listing, one from the lookup");
    }
    // plain READDIR gives the same inode numbers without node ids
    const plain = await h.readdir(big.id, 2, 1 << 20, false);
    assert.deepEqual(
      plain.map((e) => [e.name, e.ino, e.type]),
      entries.map((e) => [e.name, e.ino, e.type]),
    );
  });

  it("adaptive READDIRPLUS: bare listings until lookups of files follow them, then attributes, with a bare probe every 32 listings", async () => {
    const h = new Harness(vfs, SharedNodeTable.create(10_000), true, "adaptive");
    const big = await h.lookup(ROOT_ID, "big");
    const listBig = async (size = 1 << 20) => {
      const all: Awaited<ReturnType<Harness["readdir"]>> = [];
      for (let offset = 0; ; ) {
        const chunk = await h.readdir(big.id, offset, size, true);
        if (chunk.length === 0) return all;
        all.push(...chunk);
        offset = (chunk.at(-1) as { off: number }).off;
      }
    };
    const plain = await h.readdir(big.id, 0, 1 << 20, false);
    // Read in small chunks, a bare listing stays bare to its end, and equals the plain one.
    const bare = await listBig(4096);
    assert.ok(
      bare.every((e) => e.id === 0),
      "bare entries carry no node id",
    );
    assert.deepEqual(
      bare.map((e) => [e.name, e.ino, e.type, e.off]),
      plain.map((e) => [e.name, e.ino, e.type, e.off]),
    );
    // Walking into directories is not a reason for attributes.
    const dirs = names.filter((_, k) => k % 10 === 0).slice(0, 40);
    for (const d of dirs) assert.equal((await h.lookup(big.id, d)).error, 0);
    assert.ok(
      (await listBig()).every((e) => e.id === 0),
      "directory lookups do not count",
    );
    // Stat-ing the files of a bare-listed directory is.
    const files = names.filter((_, k) => k % 10 !== 0);
    for (const f of files.slice(0, 16)) assert.equal((await h.lookup(big.id, f)).error, 0);
    const full = await listBig(8192);
    const children = full.slice(2);
    assert.ok(
      children.every((e) => e.id !== 0 && e.mode !== 0),
      "after 16 lookups of files, entries carry node ids and attributes to the listing's end",
    );
    const again = await h.lookup(big.id, files[100] as string);
    assert.equal(again.id, children.find((e) => e.name === files[100])?.id, "the same node as LOOKUP");
    // 31 listings with attributes (the one above included), then a bare probe.
    for (let k = 0; k < 30; k++) assert.ok((await listBig()).slice(2).every((e) => e.id !== 0));
    assert.ok(
      (await listBig()).every((e) => e.id === 0),
      "the 32nd listing is a bare probe",
    );
    for (const f of files.slice(200, 216)) await h.lookup(big.id, f);
    assert.ok(
      (await listBig()).slice(2).every((e) => e.id !== 0),
      "lookups after the probe bring attributes back",
    );
  });

  it("LOOKUP of a missing name is a cached negative entry; GETATTR, READLINK, READ, STATFS", async () => {
    const h = new Harness(vfs, SharedNodeTable.create(1000), true);
    const missing = await h.call(Op.LOOKUP, ROOT_ID, Buffer.from("nope\0"));
    assert.equal(missing.error, 0);
    assert.equal(getU64(missing.body, 0), 0, "node id 0: negative entry");
    assert.ok(getU64(missing.body, 16) > 0, "with an entry timeout");
    const link = await h.lookup(ROOT_ID, "link");
    assert.equal(link.mode & 0o170000, 0o120000);
    const target = await h.call(Op.READLINK, link.id);
    assert.equal(target.body.toString(), "data.bin");
    const data = await h.lookup(ROOT_ID, "data.bin");
    const attr = await h.call(Op.GETATTR, data.id, Buffer.alloc(16));
    assert.equal(getU64(attr.body, 16 + 8), 70_000);
    const read = Buffer.alloc(40);
    putU64(read, 8, 60_000);
    read.writeUInt32LE(65536, 16);
    const r = await h.call(Op.READ, data.id, read);
    assert.equal(r.error, 0);
    assert.ok(r.body.equals(randomBytes(70_000, 1).subarray(60_000)), "a short read only at the end");
    const fsinfo = await h.call(Op.STATFS, ROOT_ID);
    assert.equal(fsinfo.error, 0);
    assert.equal(fsinfo.body.readUInt32LE(40), 4096);
    assert.equal(
      (await h.call(Op.GETATTR, 999_999, Buffer.alloc(16))).error,
      -116,
      "ESTALE for an unknown id",
    );
  });

  it("immutable: OPEN/OPENDIR/FLUSH/xattrs are ENOSYS (the kernel stops asking), writes EROFS, unknown opcodes ENOSYS", async () => {
    const h = new Harness(vfs, SharedNodeTable.create(1000), true);
    const data = await h.lookup(ROOT_ID, "data.bin");
    for (const op of [Op.OPEN, Op.OPENDIR, Op.FLUSH, Op.GETXATTR, Op.LISTXATTR, 9999]) {
      assert.equal((await h.call(op, data.id, Buffer.alloc(16))).error, -38, `opcode ${op}`);
    }
    assert.equal((await h.call(Op.MKDIR, ROOT_ID, Buffer.from("\0\0\0\0\0\0\0\0x\0"))).error, -30);
    assert.equal((await h.call(Op.UNLINK, ROOT_ID, Buffer.from("data.bin\0"))).error, -30);
    assert.equal((await h.call(Op.SETATTR, data.id, Buffer.alloc(88))).error, -30);
  });
});

describe("RequestHandler over a writable memory filesystem", () => {
  it("CREATE, WRITE, SETATTR, MKDIR, SYMLINK, RENAME(2), UNLINK, RMDIR, MKNOD act on the VFS", async () => {
    const vfs = createVfs();
    vfs.mountSync("memory", "/");
    const nodes = new NodeTable();
    const h = new Harness(vfs, nodes, false);
    const create = Buffer.alloc(16 + 6);
    create.writeUInt32LE(O_RDWR | O_CREAT | O_EXCL, 0);
    create.writeUInt32LE(S_IFREG | 0o640, 4);
    create.write("a.txt\0", 16);
    const c = await h.call(Op.CREATE, ROOT_ID, create);
    assert.equal(c.error, 0);
    const id = getU64(c.body, 0);
    const fh = getU64(c.body, ENTRY_OUT_SIZE);
    const write = Buffer.alloc(40 + 5);
    putU64(write, 0, fh);
    putU64(write, 8, 3);
    write.writeUInt32LE(5, 16);
    write.write("hello", 40);
    const w = await h.call(Op.WRITE, id, write);
    assert.equal(w.body.readUInt32LE(0), 5);
    assert.deepEqual(vfs.readFileSync("/a.txt"), Buffer.from("\0\0\0hello"));
    const release = Buffer.alloc(24);
    putU64(release, 0, fh);
    assert.equal((await h.call(Op.RELEASE, id, release)).error, 0);
    // SETATTR: mode, size, mtime
    const set = Buffer.alloc(88);
    set.writeUInt32LE(Fattr.MODE | Fattr.SIZE | Fattr.MTIME, 0);
    putU64(set, 16, 4);
    putU64(set, 40, 1_600_000_000);
    set.writeUInt32LE(500_000_000, 60);
    set.writeUInt32LE(S_IFREG | 0o600, 68);
    const s = await h.call(Op.SETATTR, id, set);
    assert.equal(s.error, 0);
    const st = vfs.statSync("/a.txt");
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.size, 4);
    assert.equal(st.mtimeMs, 1_600_000_000_500);
    assert.equal(getU64(s.body, 16 + 8), 4, "the reply carries the new size");
    // MKDIR, SYMLINK, RENAME into it
    const mk = Buffer.alloc(8 + 2);
    mk.writeUInt32LE(0o755, 0);
    mk.write("d\0", 8);
    const d = await h.call(Op.MKDIR, ROOT_ID, mk);
    assert.equal(d.error, 0);
    const dir = getU64(d.body, 0);
    assert.equal((await h.call(Op.SYMLINK, dir, Buffer.from("l\0../a.txt\0"))).error, 0);
    assert.equal(vfs.readlinkSync("/d/l"), "../a.txt");
    const ren = Buffer.alloc(8 + 12);
    putU64(ren, 0, dir);
    ren.write("a.txt\0b.txt\0", 8);
    assert.equal((await h.call(Op.RENAME, ROOT_ID, ren)).error, 0);
    assert.equal(nodes.pathOf(id), "/d/b.txt", "the node follows the rename");
    assert.deepEqual(vfs.readdirSync("/d"), ["b.txt", "l"]);
    // RENAME2 NOREPLACE onto an existing name: EEXIST
    const ren2 = Buffer.alloc(16 + 8);
    putU64(ren2, 0, dir);
    ren2.writeUInt32LE(1, 8);
    ren2.write("l\0b.txt\0", 16);
    assert.equal((await h.call(Op.RENAME2, dir, ren2)).error, -17);
    // MKNOD of a regular file; of a fifo: EPERM
    const mknod = Buffer.alloc(16 + 4);
    mknod.writeUInt32LE(S_IFREG | 0o644, 0);
    mknod.write("n\0", 16);
    assert.equal((await h.call(Op.MKNOD, dir, mknod)).error, 0);
    assert.equal(vfs.statSync("/d/n").size, 0);
    mknod.writeUInt32LE(0o010644, 0);
    mknod.write("f\0", 16);
    assert.equal((await h.call(Op.MKNOD, dir, mknod)).error, -1);
    // a writable directory is listed once per open (OPENDIR gives a handle)
    const od = await h.call(Op.OPENDIR, dir, Buffer.alloc(8));
    const dfh = getU64(od.body, 0);
    const listed = await h.readdir(dir, 0, 4096, true, dfh);
    assert.deepEqual(
      listed.map((e) => e.name),
      [".", "..", "b.txt", "l", "n"],
    );
    // UNLINK, RMDIR (not empty, then empty)
    for (const n of ["b.txt", "l"])
      assert.equal((await h.call(Op.UNLINK, dir, Buffer.from(`${n}\0`))).error, 0);
    assert.equal((await h.call(Op.RMDIR, ROOT_ID, Buffer.from("d\0"))).error, -39, "ENOTEMPTY");
    assert.equal((await h.call(Op.UNLINK, dir, Buffer.from("n\0"))).error, 0);
    assert.equal((await h.call(Op.RMDIR, ROOT_ID, Buffer.from("d\0"))).error, 0);
    assert.deepEqual(vfs.readdirSync("/"), []);
    // LOOKUP of a missing name on a mutable source: ENOENT (nothing cached)
    assert.equal((await h.call(Op.LOOKUP, ROOT_ID, Buffer.from("gone\0"))).error, -2);
    // FORGET drops the kernel's references: one from CREATE, one from the READDIRPLUS entry
    assert.equal(nodes.lookups(id), 2);
    h.handler.handle(
      (() => {
        const f = Buffer.alloc(48);
        f.writeUInt32LE(48, 0);
        f.writeUInt32LE(Op.FORGET, 4);
        putU64(f, 16, id);
        putU64(f, 40, 2);
        return f;
      })(),
      48,
    );
    assert.equal(nodes.pathOf(id), undefined);
  });
});
