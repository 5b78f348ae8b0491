/**
 * `bfc create`: a container made from ../shared/vectors/input lists and extracts exactly as the
 * reference's (MANIFEST.md); options, encryption sources, and failures that leave nothing behind.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { Reader } from "../../src/index.ts";
import { sha256, tempDir, writeTree } from "../helpers.ts";
import { bfc, errorLines, lines, manifestBlock, prepareInput } from "./cli-helpers.ts";

describe("create from the reference's input tree", () => {
  let work: string;
  before(() => {
    work = tempDir();
    prepareInput(work);
  });

  it("prints the reference's Added lines and success message, exit 0", () => {
    const r = bfc(["create", "plain.bfc", "input"], { cwd: work });
    assert.equal(r.stderr, "");
    assert.equal(r.code, 0);
    const out = lines(r.stdout);
    assert.equal(out.length, 21);
    assert.equal(out[0], "Added: input/");
    assert.ok(out.includes("Added: input/a63.txt (CRC32C: 0x92fd3e95)"));
    assert.ok(out.includes("Added: input/hello-link -> hello.txt"));
    assert.ok(out.includes("Added: input/docs/guide/"));
    assert.equal(out[20], "Container 'plain.bfc' created successfully.");
  });

  it("lists exactly as the reference's containers (list -lsc)", () => {
    const want = manifestBlock("### bfc list -lsc containers/plain.bfc");
    const r = bfc(["list", "-lsc", "plain.bfc"], { cwd: work });
    assert.equal(r.code, 0);
    assert.deepEqual(lines(r.stdout), want.stdout);
  });

  it("extracts exactly as the reference's containers (extract -k -C)", () => {
    const out = path.join(work, "out");
    const want = manifestBlock("### extract", "## containers/plain.bfc");
    const r = bfc(["extract", "-k", "-C", out, "plain.bfc"], { cwd: work });
    assert.equal(r.code, 0);
    assert.deepEqual(lines(r.stdout), want.stdout);
    const a = fs.readFileSync(path.join(work, "input/random.bin"));
    assert.equal(sha256(fs.readFileSync(path.join(out, "input/random.bin"))), sha256(a));
    assert.equal(fs.readlinkSync(path.join(out, "input/hello-link")), "hello.txt");
  });

  it("-c zstd, -c auto and a password list identically; auto compresses text, not random data", () => {
    const want = manifestBlock("### bfc list -lsc containers/plain.bfc").stdout;
    const z = bfc(["-q", "create", "-c", "zstd", "-l", "5", "z.bfc", "input"], { cwd: work });
    assert.equal(z.code, 0);
    assert.equal(z.stdout, "");
    const a = bfc(["create", "a.bfc", "input", "-c", "auto", "-q"], { cwd: work });
    assert.equal(a.code, 0);
    const p = bfc(["create", "-q", "-e", "pw", "p.bfc", "input"], { cwd: work });
    assert.equal(p.code, 0);
    for (const f of ["z.bfc", "a.bfc", "p.bfc"]) {
      assert.deepEqual(lines(bfc(["list", "-lsc", f], { cwd: work }).stdout), want, f);
    }
    const r = Reader.openSync(path.join(work, "a.bfc"));
    assert.equal(r.stat("input/compressible.txt").compression, "zstd");
    assert.equal(r.stat("input/random.bin").compression, "none");
    assert.equal(r.stat("input/a63.txt").compression, "none"); // below the 64-byte threshold
    r.close();
    const info = bfc(["info", "p.bfc"], { cwd: work });
    assert.match(info.stdout, /^Encrypted: yes, with a password/m);
    assert.match(info.stdout, /^ {2}Encryption: ChaCha20-Poly1305$/m);
    const x = bfc(["extract", "-k", "-C", "px", "p.bfc", "input/hello.txt"], {
      cwd: work,
      env: { BFC_PASSWORD: "pw" },
    });
    assert.equal(x.code, 0, x.stderr);
    assert.equal(fs.readFileSync(path.join(work, "px/input/hello.txt"), "utf8"), "Hello, BFC!\n");
  });

  it("an existing container is kept without -f, replaced with -f", () => {
    const before = fs.readFileSync(path.join(work, "plain.bfc"));
    const r = bfc(["create", "plain.bfc", "input/hello.txt"], { cwd: work });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.deepEqual(errorLines(r.stderr, "create"), [
      { what: "container 'plain.bfc' already exists; use -f to overwrite", reason: "ALREADY_EXISTS" },
    ]);
    assert.ok(fs.readFileSync(path.join(work, "plain.bfc")).equals(before));
    const f = bfc(["create", "-f", "copy.bfc", "input/hello.txt"], { cwd: work });
    assert.equal(f.code, 0);
    const g = bfc(["create", "-f", "copy.bfc", "input/run.sh"], { cwd: work });
    assert.equal(g.code, 0);
    assert.deepEqual(lines(bfc(["list", "copy.bfc"], { cwd: work }).stdout), ["run.sh"]);
  });
});

describe("create: inputs, options and failures", () => {
  it("stores inputs under their base names; a symlink input stays a symlink; setuid and ns mtimes kept", () => {
    const dir = tempDir();
    writeTree(dir, { "a/b/dir/x.txt": "x", "f.txt": "file", ln: { link: "f.txt" } });
    fs.chmodSync(path.join(dir, "f.txt"), 0o4755);
    fs.utimesSync(path.join(dir, "f.txt"), 1700000000.123456, 1700000000.123456);
    const r = bfc(["create", "c.bfc", "a/b/dir/", path.join(dir, "f.txt"), "ln"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(bfc(["list", "c.bfc"], { cwd: dir }).stdout), ["dir", "dir/x.txt", "f.txt", "ln"]);
    const rd = Reader.openSync(path.join(dir, "c.bfc"));
    assert.equal(rd.stat("ln").type, "symlink");
    assert.equal(rd.readlinkSync("ln"), "f.txt");
    assert.equal(rd.stat("f.txt").mode & 0o7777, 0o4755);
    assert.equal(rd.stat("f.txt").mtimeNs % 1000000000n !== 0n, true);
    rd.close();
    const info = bfc(["info", "c.bfc", "f.txt"], { cwd: dir });
    assert.match(info.stdout, /^Mode: -rwsr-xr-x \(04755\)$/m);
  });

  it("options may follow the inputs; '--' ends options", () => {
    const dir = tempDir();
    writeTree(dir, { "-c": "dash", "t.txt": "text ".repeat(100) });
    const r = bfc(["create", "c.bfc", "t.txt", "-c", "zstd", "--", "-c"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(bfc(["list", "c.bfc"], { cwd: dir }).stdout), ["-c", "t.txt"]);
    const rd = Reader.openSync(path.join(dir, "c.bfc"));
    assert.equal(rd.stat("t.txt").compression, "zstd");
    rd.close();
  });

  it("a key file (-k), a password file and stdin (--password-file -) encrypt", () => {
    const dir = tempDir();
    writeTree(dir, { "s.txt": "secret", "key.bin": Buffer.alloc(40, 7), "pw.txt": "from file\nignored\n" });
    assert.equal(bfc(["create", "-q", "-k", "key.bin", "k.bfc", "s.txt"], { cwd: dir }).code, 0);
    assert.match(bfc(["info", "k.bfc"], { cwd: dir }).stdout, /^Encrypted: yes, with a key file/m);
    assert.equal(bfc(["cat", "-K", "key.bin", "k.bfc", "s.txt"], { cwd: dir }).stdout, "secret");
    assert.equal(bfc(["create", "-q", "--password-file", "pw.txt", "p.bfc", "s.txt"], { cwd: dir }).code, 0);
    assert.equal(bfc(["cat", "p.bfc", "s.txt", "-p", "from file"], { cwd: dir }).stdout, "secret");
    assert.equal(
      bfc(["create", "-q", "--password-file", "-", "q.bfc", "s.txt"], { cwd: dir, input: "piped\n" }).code,
      0,
    );
    assert.equal(
      bfc(["cat", "--password-file", "-", "q.bfc", "s.txt"], { cwd: dir, input: "piped" }).stdout,
      "secret",
    );
    const env = bfc(["create", "-q", "--ask-password", "e.bfc", "s.txt"], {
      cwd: dir,
      env: { BFC_PASSWORD: "envpw" },
    });
    assert.equal(env.code, 0, env.stderr);
    assert.equal(
      bfc(["cat", "e.bfc", "s.txt"], { cwd: dir, env: { BFC_PASSWORD: "envpw" } }).stdout,
      "secret",
    );
    const noTty = bfc(["create", "--ask-password", "n.bfc", "s.txt"], { cwd: dir });
    assert.equal(noTty.code, 2);
    assert.equal(errorLines(noTty.stderr, "create")[0].reason, "USAGE");
    assert.equal(fs.existsSync(path.join(dir, "n.bfc")), false);
  });

  it("failures leave no container and no temporary file behind", () => {
    const dir = tempDir();
    writeTree(dir, { "d1/f": "1", "d2/f": "2", "short.key": "too short" });
    const cases: [string[], number, string][] = [
      [["create", "c.bfc", "d1", "missing"], 1, "ENOENT"],
      [["create", "c.bfc", "d1/f", "d2/f"], 1, "DUPLICATE_PATH"],
      [["create", "-k", "short.key", "c.bfc", "d1"], 1, "BAD_KEY"],
      [["create", "-e", "a", "-k", "short.key", "c.bfc", "d1"], 2, "USAGE"],
      [["create", "-c", "lzma", "c.bfc", "d1"], 2, "USAGE"],
      [["create", "-l", "23", "c.bfc", "d1"], 2, "USAGE"],
      [["create", "-t", "x", "c.bfc", "d1"], 2, "USAGE"],
      [["create", "-b", "0", "c.bfc", "d1"], 2, "USAGE"],
      [["create", "c.bfc", "."], 2, "USAGE"],
      [["create", "d1/c.bfc", "d1"], 2, "USAGE"],
      [["create", "c.bfc"], 2, "USAGE"],
      [["create", "nodir/c.bfc", "d1"], 1, "ENOENT"],
    ];
    for (const [args, code, reason] of cases) {
      const r = bfc(args, { cwd: dir });
      assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
      const errs = errorLines(r.stderr, "create");
      assert.equal(errs.length, 1, r.stderr);
      assert.equal(errs[0].reason, reason, args.join(" "));
    }
    const left = fs.readdirSync(dir).concat(fs.readdirSync(path.join(dir, "d1")));
    assert.deepEqual(left.sort(), ["d1", "d2", "f", "short.key"]);
  });

  it("-v prints Verbose lines on stderr; -q silences stdout", () => {
    const dir = tempDir();
    writeTree(dir, { "d/f": "1" });
    const v = bfc(["create", "-v", "c.bfc", "d"], { cwd: dir });
    assert.equal(v.code, 0);
    assert.match(v.stderr, /^Verbose: Creating container: c\.bfc/m);
    assert.match(v.stderr, /^Verbose: Adding directory: d -> d$/m);
    assert.ok(lines(v.stderr).every((l) => l.startsWith("Verbose: ")));
    const q = bfc(["-q", "create", "-f", "c.bfc", "d"], { cwd: dir });
    assert.equal(q.stdout + q.stderr, "");
  });
});
