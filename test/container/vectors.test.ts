/**
 * Interop: every container the reference C tool wrote (../shared/vectors) is read and checked
 * against MANIFEST.md: listing, modes, mtimes, sizes, symlink targets, content hashes; the
 * corrupted copies fail with the matching reason.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { type BfcError, extract, Reader, verify } from "../../src/index.ts";
import { sha256, tempDir, VECTOR_PASSWORD, VECTORS } from "../helpers.ts";

const manifest = fs.readFileSync(path.join(VECTORS, "MANIFEST.md"), "utf8");

interface TreeLine {
  mode: string;
  mtime: string;
  size: number;
  path: string;
  sha: string;
  target?: string;
}

/** The "Resulting tree" block: mode, mtime UTC, size, path, sha256 (or '-'). */
function expectedTree(): Map<string, TreeLine> {
  const block = manifest.split("Resulting tree")[1].split("```")[1];
  const out = new Map<string, TreeLine>();
  for (const line of block.trim().split("\n")) {
    const m = /^(\S{10}) (\S+ \S+) (\d+) \.\/(.+?)(?: -> (\S+))? (\S+)$/.exec(line);
    assert.ok(m, `unparsed manifest line: ${line}`);
    const p = `input/${m[4]}`;
    out.set(p, { mode: m[1], mtime: m[2], size: Number(m[3]), path: p, sha: m[6], target: m[5] });
  }
  return out;
}

/** The `bfc list -lsc` block of one container. */
function expectedListing(container: string): string[] {
  const section = manifest.split(`## containers/${container}`)[1];
  const block = section.split("### bfc list -lsc")[1].split("```")[1];
  return block
    .trim()
    .split("\n")
    .filter((l) => !l.startsWith("[exit code"));
}

function modeString(mode: number): string {
  const t = (mode & 0o170000) === 0o040000 ? "d" : (mode & 0o170000) === 0o120000 ? "l" : "-";
  let s = t;
  for (const shift of [6, 3, 0]) {
    const b = (mode >> shift) & 7;
    s += (b & 4 ? "r" : "-") + (b & 2 ? "w" : "-") + (b & 1 ? "x" : "-");
  }
  return s;
}

function utc(ns: bigint): string {
  return new Date(Number(ns / 1000000n)).toISOString().replace("T", " ").slice(0, 19);
}

const tree = expectedTree();

for (const name of ["plain.bfc", "zstd.bfc", "password.bfc"]) {
  describe(`vector containers/${name}`, () => {
    const file = path.join(VECTORS, "containers", name);
    const options = name === "password.bfc" ? { password: VECTOR_PASSWORD } : {};

    it("lists the same entries, modes, sizes and checksums as the reference", async () => {
      const r = await Reader.open(file, options);
      const listing = expectedListing(name);
      const entries = [...r.entries()];
      assert.equal(entries.length, listing.length);
      for (const [k, e] of entries.entries()) {
        const fields = listing[k].split(/\s+/);
        assert.equal(modeString(e.mode), fields[0], e.path);
        assert.equal(fields[fields.length - 1], e.path);
        if (e.type === "file") assert.equal(fields[4], `0x${e.crc32c.toString(16).padStart(8, "0")}`, e.path);
      }
      r.close();
    });

    it("matches the manifest tree: mode, mtime, size, target, sha256", async () => {
      const r = await Reader.open(file, options);
      const seen = new Set<string>();
      for (const e of r.entries()) {
        const want = tree.get(e.path);
        if (e.path === "input") continue;
        assert.ok(want, `unexpected entry ${e.path}`);
        seen.add(e.path);
        assert.equal(modeString(e.mode), want.mode, e.path);
        assert.equal(utc(e.mtimeNs), want.mtime, e.path);
        if (e.type === "file") {
          assert.equal(e.size, want.size, e.path);
          const data = await r.readFile(e.path);
          assert.equal(sha256(data), want.sha, e.path);
          assert.equal(sha256(r.readFileSync(e.path)), want.sha, e.path);
        } else if (e.type === "symlink") {
          assert.equal(await r.readlink(e.path), want.target);
        }
      }
      assert.equal(seen.size, tree.size);
      r.close();
    });

    it("deep-verifies (compressed and encrypted contents decoded, unlike the reference)", async () => {
      const r = await Reader.open(file, options);
      const report = await verify(r, { deep: true });
      assert.deepEqual(report.problems, []);
      assert.equal(report.checked, 20);
      assert.equal(report.bytes, 1311190);
      r.close();
    });

    it("extracts every entry with contents, modes and mtimes restored", async () => {
      const r = await Reader.open(file, options);
      const out = tempDir();
      const rep = await extract(r, out);
      assert.deepEqual(rep.failed, []);
      assert.equal(rep.extracted, 20);
      for (const want of tree.values()) {
        const full = path.join(out, want.path);
        const st = fs.lstatSync(full);
        assert.equal(modeString(st.mode), want.mode, want.path);
        assert.equal(
          new Date(st.mtimeMs).toISOString().replace("T", " ").slice(0, 19),
          want.mtime,
          want.path,
        );
        if (want.target) assert.equal(fs.readlinkSync(full), want.target);
        else if (want.sha !== "-") assert.equal(sha256(fs.readFileSync(full)), want.sha, want.path);
      }
      r.close();
    });
  });
}

describe("vector password.bfc without or with a wrong password", () => {
  const file = path.join(VECTORS, "containers", "password.bfc");
  it("lists without a password (metadata is in clear)", async () => {
    const r = await Reader.open(file);
    assert.equal([...r.entries()].length, 20);
    assert.equal(r.encryptionMode, "password");
    r.close();
  });
  it("refuses to read content without a key (EACCES, KEY_REQUIRED)", async () => {
    const r = await Reader.open(file);
    await assert.rejects(r.readFile("input/hello.txt"), { code: "EACCES", reason: "KEY_REQUIRED" });
    assert.throws(() => r.readFileSync("input/hello.txt"), { code: "EACCES", reason: "KEY_REQUIRED" });
    r.close();
  });
  it("rejects a wrong password with AUTH_FAILED, never garbage", async () => {
    const r = await Reader.open(file, { password: "wrong" });
    await assert.rejects(r.readFile("input/hello.txt"), { code: "EACCES", reason: "AUTH_FAILED" });
    await assert.rejects(r.read("input/random.bin", 10, 10), { code: "EACCES", reason: "AUTH_FAILED" });
    r.close();
  });
  it("rejects a key for a password container as the wrong key", async () => {
    const r = await Reader.open(file, { key: Buffer.alloc(32, 1) });
    await assert.rejects(r.readFile("input/hello.txt"), { reason: "AUTH_FAILED" });
    r.close();
  });
});

describe("corrupted vectors", () => {
  it("corrupt-content.bfc: opens, quick verify passes, deep verify and read report CRC_MISMATCH", async () => {
    const r = await Reader.open(path.join(VECTORS, "corrupt", "corrupt-content.bfc"));
    assert.equal((await verify(r)).ok, true);
    const deep = await verify(r, { deep: true });
    assert.equal(deep.ok, false);
    assert.deepEqual(
      deep.problems.map((p) => [p.path, p.reason]),
      [["input/hello.txt", "CRC_MISMATCH"]],
    );
    await assert.rejects(r.readFile("input/hello.txt"), { code: "EIO", reason: "CRC_MISMATCH" });
    await assert.rejects(r.read("input/hello.txt", 0, 1), { code: "EIO", reason: "CRC_MISMATCH" });
    assert.equal((await r.readFile("input/readme.md")).length, 77);
    r.close();
  });
  it("corrupt-footer.bfc: fails to open with CRC_MISMATCH on the index", async () => {
    await assert.rejects(Reader.open(path.join(VECTORS, "corrupt", "corrupt-footer.bfc")), (e: BfcError) => {
      assert.equal(e.reason, "CRC_MISMATCH");
      assert.equal(e.field, "footer.index_crc");
      return true;
    });
  });
  it("truncated-no-footer.bfc: fails to open with TRUNCATED", async () => {
    await assert.rejects(Reader.open(path.join(VECTORS, "corrupt", "truncated-no-footer.bfc")), {
      code: "EIO",
      reason: "TRUNCATED",
    });
  });
});
