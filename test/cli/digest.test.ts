/** `bfc digest` and `bfc verify --root`: output, JSON, exit codes, keys, malformed digests. */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { Writer } from "../../src/index.ts";
import { tempDir, VECTOR_PASSWORD } from "../helpers.ts";
import { bfc, errorLines, lines } from "./cli-helpers.ts";

const PLAIN = "containers/plain.bfc";
const ZSTD = "containers/zstd.bfc";
const PASSWORD = "containers/password.bfc";
/** The shared vectors' root digest (the same for all three; see test/container/digest.test.ts). */
const PINNED = "e095450954a4f7d7968aed41d1f13cca8520e3e52e83462674ac25b036dc21c6";
const OTHER = `${PINNED.slice(0, 63)}${PINNED.endsWith("0") ? "1" : "0"}`;

describe("bfc digest", () => {
  it("prints the hex digest alone on stdout", () => {
    for (const c of [PLAIN, ZSTD]) {
      const r = bfc(["digest", c]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(lines(r.stdout), [PINNED]);
      assert.equal(r.stderr, "");
    }
  });

  it("--json: digest, entries and bytes", () => {
    const r = bfc(["digest", "--json", ZSTD]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.digest, PINNED);
    assert.equal(doc.entries, 20);
    assert.ok(Number.isSafeInteger(doc.bytes) && doc.bytes > 0);
    assert.deepEqual(Object.keys(doc), ["digest", "entries", "bytes"]);
  });

  it("encrypted: needs the key; -p, --password-file and $BFC_PASSWORD work", () => {
    const none = bfc(["digest", PASSWORD]);
    assert.equal(none.code, 1);
    assert.equal(none.stdout, "");
    assert.equal(errorLines(none.stderr, "digest")[0]?.reason, "KEY_REQUIRED");
    assert.deepEqual(lines(bfc(["digest", "-p", VECTOR_PASSWORD, PASSWORD]).stdout), [PINNED]);
    assert.deepEqual(lines(bfc(["digest", PASSWORD], { env: { BFC_PASSWORD: VECTOR_PASSWORD } }).stdout), [
      PINNED,
    ]);
    const dir = tempDir("bfc-digest-cli-");
    const pwFile = path.join(dir, "pw");
    fs.writeFileSync(pwFile, `${VECTOR_PASSWORD}\n`);
    assert.deepEqual(lines(bfc(["digest", "--password-file", pwFile, PASSWORD]).stdout), [PINNED]);
    const wrong = bfc(["digest", "-p", "nope", PASSWORD]);
    assert.equal(wrong.code, 1);
    assert.equal(errorLines(wrong.stderr, "digest")[0]?.reason, "AUTH_FAILED");
  });

  it("a missing container or a corrupt entry is an error, never a digest", async () => {
    const missing = bfc(["digest", "nope.bfc"]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stdout, "");
    const dir = tempDir("bfc-digest-cli-");
    const file = path.join(dir, "x.bfc");
    const w = await Writer.create(file, { workers: 1 });
    await w.addFile("a.txt", Buffer.from("hello, world\n"));
    await w.finish();
    const bytes = fs.readFileSync(file);
    bytes[bytes.indexOf("hello")] ^= 1;
    fs.writeFileSync(file, bytes);
    const r = bfc(["digest", file]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.equal(errorLines(r.stderr, "digest")[0]?.reason, "CRC_MISMATCH");
  });
});

describe("bfc verify --root", () => {
  it("matching digest (either case): success, exit 0", () => {
    const r = bfc(["verify", "--root", PINNED.toUpperCase(), ZSTD]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(lines(r.stdout).includes(`Root digest matches: ${PINNED}`));
    const deep = bfc(["verify", "--deep", "--root", PINNED, "-p", VECTOR_PASSWORD, PASSWORD]);
    assert.equal(deep.code, 0, deep.stderr);
  });

  it("mismatch: exit 1, DIGEST_MISMATCH naming expected and actual", () => {
    const r = bfc(["verify", "--root", OTHER, PLAIN]);
    assert.equal(r.code, 1);
    assert.deepEqual(errorLines(r.stderr, "verify"), [
      { what: `root digest mismatch: expected ${OTHER}, got ${PINNED}`, reason: "DIGEST_MISMATCH" },
    ]);
    assert.match(r.stdout, /Verification failed after/);
  });

  it("--json: a root object and the problem", () => {
    const ok = JSON.parse(bfc(["verify", "--json", "--root", PINNED, PLAIN]).stdout);
    assert.deepEqual(ok.root, { expected: PINNED, actual: PINNED, ok: true });
    assert.equal(ok.ok, true);
    const r = bfc(["verify", "--json", "--root", OTHER, PLAIN]);
    assert.equal(r.code, 1);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.ok, false);
    assert.deepEqual(doc.root, { expected: OTHER, actual: PINNED, ok: false });
    assert.deepEqual(
      doc.problems.map((p: { reason: string }) => p.reason),
      ["DIGEST_MISMATCH"],
    );
    assert.equal(r.stderr, "");
  });

  it("malformed hex is a usage error (exit 2) before anything is read", () => {
    for (const bad of ["zz", PINNED.slice(1), `${PINNED}0`, `g${PINNED.slice(1)}`, ""]) {
      const r = bfc(["verify", "--root", bad, PLAIN]);
      assert.equal(r.code, 2, bad);
      assert.equal(r.stdout, "");
      assert.equal(errorLines(r.stderr, "verify")[0]?.reason, "USAGE");
    }
  });

  it("encrypted without a key: the digest cannot be checked (exit 1, KEY_REQUIRED)", () => {
    const r = bfc(["verify", "--root", PINNED, PASSWORD]);
    assert.equal(r.code, 1);
    assert.equal(errorLines(r.stderr, "verify")[0]?.reason, "KEY_REQUIRED");
  });

  it("the reference's -p (progress) rule still holds with --root before it", () => {
    const r = bfc(["verify", "--root", PINNED, "-p", ZSTD]);
    assert.equal(r.code, 0, r.stderr);
  });
});
