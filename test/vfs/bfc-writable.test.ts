/**
 * The writable bfc filesystem type: random sequences of operations applied through the VFS to a
 * writable container and to the memory type give the same results (values and error codes) and the
 * same trees, after every commit, after remounting, and after compaction. Plus limits through the
 * filesystem, copy-on-write while a commit reads, and no scratch files left behind.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { compact, createVfs, Reader, rootDigest, type Vfs, verify, Writer } from "../../src/index.ts";
import { tempDir } from "../helpers.ts";

const root = tempDir("bfc-writable-");
let seq = 0;

async function fresh(): Promise<string> {
  const dir = path.join(root, String(seq++));
  fs.mkdirSync(dir);
  const file = path.join(dir, "c.bfc");
  const w = await Writer.create(file, { compression: "zstd" });
  await w.addDirectory("seed", { mode: 0o755 });
  await w.addFile("seed/a.txt", Buffer.from("seed a"), { mode: 0o644 });
  await w.addSymlink("seed/ln", "a.txt");
  await w.finish();
  return file;
}

type Op =
  | { op: "write"; f: number; pos: number; len: number; byte: number }
  | { op: "writeFile"; f: number; len: number; byte: number }
  | { op: "append"; f: number; len: number; byte: number }
  | { op: "truncate"; f: number; len: number }
  | { op: "mkdir"; d: number }
  | { op: "rmdir"; d: number }
  | { op: "unlink"; f: number }
  | { op: "rename"; a: number; b: number }
  | { op: "symlink"; f: number; t: number }
  | { op: "chmod"; f: number; mode: number }
  | { op: "utimes"; f: number; t: number }
  | { op: "commit" };

const DIRS = ["seed", "d1", "d2", "d1/sub"];
const FILES = ["seed/a.txt", "seed/ln", "f1", "d1/f2", "d2/f3", "d1/sub/f4", "d1", "d2"];
const pick = (list: string[], n: number) => list[n % list.length] as string;

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    op: fc.constant("write" as const),
    f: fc.nat(),
    pos: fc.nat(70000),
    len: fc.nat(3000),
    byte: fc.nat(255),
  }),
  fc.record({ op: fc.constant("writeFile" as const), f: fc.nat(), len: fc.nat(90000), byte: fc.nat(255) }),
  fc.record({ op: fc.constant("append" as const), f: fc.nat(), len: fc.nat(2000), byte: fc.nat(255) }),
  fc.record({ op: fc.constant("truncate" as const), f: fc.nat(), len: fc.nat(20000) }),
  fc.record({ op: fc.constant("mkdir" as const), d: fc.nat() }),
  fc.record({ op: fc.constant("rmdir" as const), d: fc.nat() }),
  fc.record({ op: fc.constant("unlink" as const), f: fc.nat() }),
  // Twice in the mix: renames keep objects under recorded names (docs/format.md record 10).
  fc.record({ op: fc.constant("rename" as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ op: fc.constant("rename" as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ op: fc.constant("symlink" as const), f: fc.nat(), t: fc.nat() }),
  fc.record({ op: fc.constant("chmod" as const), f: fc.nat(), mode: fc.nat(0o777) }),
  fc.record({ op: fc.constant("utimes" as const), f: fc.nat(), t: fc.nat(2_000_000_000) }),
  fc.constant({ op: "commit" as const }),
);

/** Runs one operation; returns what it returned or the error code it failed with. */
async function apply(vfs: Vfs, mnt: string, o: Op): Promise<string> {
  const p = (rel: string) => `${mnt}/${rel}`;
  try {
    switch (o.op) {
      case "write": {
        const fd = vfs.openSync(p(pick(FILES, o.f)), "r+");
        try {
          vfs.writeSync(fd, Buffer.alloc(o.len, o.byte), 0, o.len, o.pos);
        } finally {
          vfs.closeSync(fd);
        }
        return "ok";
      }
      case "writeFile":
        vfs.writeFileSync(p(pick(FILES, o.f)), Buffer.alloc(o.len, o.byte));
        return "ok";
      case "append":
        vfs.appendFileSync(p(pick(FILES, o.f)), Buffer.alloc(o.len, o.byte));
        return "ok";
      case "truncate":
        vfs.truncateSync(p(pick(FILES, o.f)), o.len);
        return "ok";
      case "mkdir":
        vfs.mkdirSync(p(pick(DIRS, o.d)));
        return "ok";
      case "rmdir":
        vfs.rmdirSync(p(pick(DIRS, o.d)));
        return "ok";
      case "unlink":
        vfs.unlinkSync(p(pick(FILES, o.f)));
        return "ok";
      case "rename":
        vfs.renameSync(p(pick([...FILES, ...DIRS], o.a)), p(pick([...FILES, ...DIRS], o.b)));
        return "ok";
      case "symlink":
        vfs.symlinkSync(pick(FILES, o.t), p(pick(FILES, o.f)));
        return "ok";
      case "chmod":
        vfs.chmodSync(p(pick(FILES, o.f)), o.mode);
        return "ok";
      case "utimes":
        vfs.utimesSync(p(pick(FILES, o.f)), o.t, o.t);
        return "ok";
      case "commit":
        return "ok";
    }
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

/** Every entry under a mount: type, permissions, size, content hash or link target, mtime (ms). */
function snapshot(vfs: Vfs, mnt: string, withTimes: boolean): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of vfs.readdirSync(`${mnt}${dir}`).map(String).sort()) {
      const rel = `${dir}/${name}`;
      const st = vfs.lstatSync(`${mnt}${rel}`);
      let what = "";
      if (st.isFile())
        what = createHash("sha256")
          .update(vfs.readFileSync(`${mnt}${rel}`))
          .digest("hex")
          .slice(0, 16);
      else if (st.isSymbolicLink()) what = vfs.readlinkSync(`${mnt}${rel}`).toString();
      const kind = st.isFile() ? "f" : st.isDirectory() ? "d" : "l";
      const mode = st.isSymbolicLink() ? "" : (st.mode & 0o7777).toString(8);
      out.push(
        `${rel} ${kind} ${mode} ${st.isDirectory() ? 0 : st.size} ${what}${withTimes && !st.isDirectory() && !st.isSymbolicLink() ? ` ${Math.floor(st.mtimeMs)}` : ""}`,
      );
      if (st.isDirectory()) walk(rel);
    }
  };
  walk("");
  return out;
}

describe("bfc type, writable", () => {
  it("behaves like the memory type under random operations, across commits, remounts and compaction", {
    timeout: 300_000,
  }, async () => {
    let runs = 0;
    let carriedRename = false;
    const outcomes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 30 }), async (ops) => {
        runs++;
        const file = await fresh();
        const vfs = createVfs();
        await vfs.mount("bfc", "/b", { path: file, writable: true, compression: runs % 2 ? "zstd" : "none" });
        await vfs.mount("memory", "/m", { umask: 0o022 });
        // Same seed tree in memory.
        vfs.mkdirSync("/m/seed", { mode: 0o755 });
        vfs.writeFileSync("/m/seed/a.txt", "seed a", { mode: 0o644 });
        vfs.symlinkSync("a.txt", "/m/seed/ln");
        for (const o of ops) {
          const rb = await apply(vfs, "/b", o);
          const rm = await apply(vfs, "/m", o);
          outcomes.set(rb, (outcomes.get(rb) ?? 0) + 1);
          assert.equal(rb, rm, `${JSON.stringify(o)}: bfc ${rb}, memory ${rm}`);
          if (o.op === "commit") {
            const fd = vfs.openSync("/b/seed", "r");
            await new Promise<void>((res, rej) => vfs.fsync(fd, (e) => (e ? rej(e) : res())));
            vfs.closeSync(fd);
            assert.deepEqual(snapshot(vfs, "/b", false), snapshot(vfs, "/m", false));
          }
        }
        const want = snapshot(vfs, "/m", false);
        const wantTimes = snapshot(vfs, "/b", true);
        assert.deepEqual(snapshot(vfs, "/b", false), want);
        await vfs.unmount("/b");
        // Remounted (read-only this time): exactly what was there, times included.
        await vfs.mount("bfc", "/b", { path: file });
        assert.deepEqual(snapshot(vfs, "/b", true), wantTimes);
        await vfs.unmount("/b");
        // Every commit, compacted with its history, holds the same tree and passes deep verify.
        const kept = `${file}.kept`;
        await compact(file, { output: kept, keepHistory: true });
        const last = await Reader.open(file);
        for (let n = 1; n <= last.commit && !carriedRename; n++) {
          const r = await Reader.open(file, { commit: n });
          carriedRename = (r.extension.objectNames?.length ?? 0) > 0;
          r.close();
        }
        for (let n = 1; n <= last.commit; n++) {
          const a = await Reader.open(file, { commit: n });
          const b = await Reader.open(kept, { commit: n });
          assert.equal((await rootDigest(b)).digest, (await rootDigest(a)).digest, `commit ${n}`);
          assert.deepEqual((await verify(a, { deep: true })).problems, [], `commit ${n}`);
          assert.deepEqual((await verify(b, { deep: true })).problems, [], `kept commit ${n}`);
          a.close();
          b.close();
        }
        last.close();
        fs.rmSync(kept);
        await compact(file);
        await vfs.mount("bfc", "/b", { path: file });
        assert.deepEqual(snapshot(vfs, "/b", true), wantTimes);
        await vfs.unmountAll();
        const r = await Reader.open(file);
        assert.equal((await verify(r, { deep: true })).ok, true);
        r.close();
        assert.deepEqual(
          fs.readdirSync(path.dirname(file)).filter((n) => n !== "c.bfc"),
          [],
          "no scratch, lock or temporary files left",
        );
      }),
      { numRuns: 25, seed: 20261126 },
    );
    assert.ok(carriedRename, "some commit kept a renamed file's object");
    // The sequences must mostly do things, not only fail.
    const ok = outcomes.get("ok") ?? 0;
    const total = [...outcomes.values()].reduce((a, b) => a + b, 0);
    assert.ok(
      ok > total / 3,
      `only ${ok} of ${total} operations succeeded: ${JSON.stringify([...outcomes])}`,
    );
  });

  it("enforces limits through the filesystem before writing (EDQUOT)", async () => {
    const file = await fresh();
    const { Container } = await import("../../src/index.ts");
    const c = await Container.openForUpdate(file);
    c.setLimits({ maxFileSize: 1000, maxFiles: 4 });
    await c.commit();
    c.close();
    const vfs = createVfs();
    await vfs.mount("bfc", "/b", { path: file, writable: true });
    vfs.writeFileSync("/b/ok", Buffer.alloc(1000));
    assert.throws(() => vfs.appendFileSync("/b/ok", "x"), { code: "EDQUOT" });
    assert.equal(vfs.statSync("/b/ok").size, 1000, "nothing of the failed write landed");
    vfs.writeFileSync("/b/two", "2");
    assert.throws(() => vfs.writeFileSync("/b/three", "3"), { code: "EDQUOT" });
    await vfs.unmountAll();
    const r = await Reader.open(file);
    assert.deepEqual(
      [...r.entries()].map((e) => e.path),
      ["ok", "seed", "seed/a.txt", "seed/ln", "two"],
    );
    r.close();
  });

  it("a write during a commit goes to a copy: the commit keeps its snapshot", async () => {
    const file = await fresh();
    const vfs = createVfs();
    await vfs.mount("bfc", "/b", { path: file, writable: true, compression: "zstd" });
    const big = Buffer.alloc(6 * 1024 * 1024, 1);
    vfs.writeFileSync("/b/big", big);
    const fd = vfs.openSync("/b/big", "r+");
    const committing = new Promise<void>((res, rej) => vfs.fsync(fd, (e) => (e ? rej(e) : res())));
    vfs.writeSync(fd, Buffer.from("CHANGED"), 0, 7, 0);
    await committing;
    vfs.closeSync(fd);
    const mid = await Reader.open(file);
    const committed = await mid.readFile("big");
    mid.close();
    // The commit holds either the old or the new bytes, never a torn mix.
    assert.ok(committed.equals(big) || committed.subarray(0, 7).toString() === "CHANGED");
    assert.equal((vfs.readFileSync("/b/big") as Buffer).subarray(0, 7).toString(), "CHANGED");
    await vfs.unmountAll();
    const r = await Reader.open(file);
    assert.equal((await r.readFile("big")).subarray(0, 8).toString(), "CHANGED\x01");
    r.close();
  });

  it("scratch content in memory and in files: any mix of writes, holes, truncations and commits reads back and commits exactly (property)", async () => {
    const KiB = 1024;
    const op = fc.oneof(
      fc.record({
        k: fc.constant("write" as const),
        at: fc.nat(1600 * KiB),
        len: fc.integer({ min: 1, max: 300 * KiB }),
        b: fc.integer({ min: 1, max: 255 }),
      }),
      fc.record({ k: fc.constant("truncate" as const), to: fc.nat(1500 * KiB) }),
      fc.record({ k: fc.constant("commit" as const) }),
      fc.record({ k: fc.constant("reopen" as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 14 }), async (ops) => {
        const file = await fresh();
        const vfs = createVfs();
        await vfs.mount("bfc", "/b", { path: file, writable: true });
        let model = Buffer.alloc(0);
        let fd = vfs.openSync("/b/f", "w+");
        for (const o of ops) {
          if (o.k === "write") {
            const data = Buffer.alloc(o.len, o.b);
            vfs.writeSync(fd, data, 0, data.length, o.at);
            if (model.length < o.at + o.len)
              model = Buffer.concat([model, Buffer.alloc(o.at + o.len - model.length)]);
            data.copy(model, o.at);
          } else if (o.k === "truncate") {
            vfs.ftruncateSync(fd, o.to);
            model =
              o.to <= model.length
                ? Buffer.from(model.subarray(0, o.to))
                : Buffer.concat([model, Buffer.alloc(o.to - model.length)]);
          } else if (o.k === "commit") {
            // a commit takes the content as it is; later writes go to a copy
            await vfs.fsyncAsync(fd);
          } else {
            vfs.closeSync(fd);
            fd = vfs.openSync("/b/f", "r+");
          }
          assert.equal(vfs.fstatSync(fd).size, model.length);
        }
        assert.ok((vfs.readFileSync("/b/f") as Buffer).equals(model), "reads through the mount");
        vfs.closeSync(fd);
        await vfs.unmountAll();
        const r = await Reader.open(file);
        try {
          assert.ok((await r.readFile("f")).equals(model), "the last commit");
          assert.equal((await verify(r, { deep: true })).ok, true);
        } finally {
          r.close();
        }
        assert.deepEqual(
          fs.readdirSync(path.dirname(file)).filter((n) => n.includes("scratch")),
          [],
          "no scratch left",
        );
      }),
      { seed: 0x5c2a7c4, numRuns: 25 },
    );
  });
});
