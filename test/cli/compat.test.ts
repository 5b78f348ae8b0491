/**
 * Every reference CLI invocation in ../shared/vectors/MANIFEST.md, run with `bfc` on the same
 * containers: same listings and extraction output; where we deliberately differ (docs/cli.md), the
 * difference itself is asserted.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { sha256, tempDir, VECTOR_PASSWORD } from "../helpers.ts";
import { bfc, errorLines, lines, MANIFEST, manifestBlock } from "./cli-helpers.ts";

/** Our info output with the lines the reference does not print taken out (and its container mtime masked). */
function referenceView(out: string): string[] {
  const extra = /^(UUID|Block size|Features|Encrypted): |^ {2}Compressed files: \d+$/;
  const kept: string[] = [];
  let skipping = false;
  for (const l of lines(out)) {
    if (l.startsWith("Compressed files (")) {
      skipping = true;
      continue;
    }
    if (skipping) {
      if (l === "") skipping = false;
      continue;
    }
    if (!extra.test(l)) kept.push(l);
  }
  return kept.map((l) => l.replace(/^Modified: .* UTC$/, "Modified: <mtime>"));
}

/** sha256 of extracted files from a manifest section: path → hash, plus symlinks. */
function expectedHashes(section: string): { files: Map<string, string>; links: Map<string, string> } {
  const block = MANIFEST.split(section)[1]
    .split("sha256 of extracted regular files, and symlinks:")[1]
    .split("```")[1];
  const files = new Map<string, string>();
  const links = new Map<string, string>();
  for (const l of block.trim().split("\n")) {
    const link = /^symlink \.\/(\S+) -> (\S+)$/.exec(l);
    if (link) links.set(link[1], link[2]);
    else {
      const [hash, p] = l.split(/\s+\.\//);
      files.set(p, hash);
    }
  }
  return { files, links };
}

for (const name of ["plain.bfc", "zstd.bfc", "password.bfc"]) {
  const section = `## containers/${name}`;
  describe(`reference invocations on containers/${name}`, () => {
    it(`bfc list -lsc containers/${name}: identical output`, () => {
      const want = manifestBlock(`### bfc list -lsc containers/${name}`);
      const r = bfc(["list", "-lsc", `containers/${name}`]);
      assert.equal(r.code, want.code);
      assert.deepEqual(lines(r.stdout), want.stdout);
      assert.equal(r.stderr, "");
    });

    it(`bfc info -d containers/${name}: the reference's lines, plus UUID/features/encryption`, () => {
      const want = manifestBlock(`### bfc info -d containers/${name}`);
      const r = bfc(["info", "-d", `containers/${name}`]);
      assert.equal(r.code, 0);
      assert.deepEqual(referenceView(r.stdout), referenceView(want.stdout.join("\n")));
      assert.match(r.stdout, /^UUID: [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/m);
      assert.match(r.stdout, /^Block size: 4096$/m);
      const enc = name === "password.bfc" ? "yes, with a password" : "no";
      assert.match(r.stdout, new RegExp(`^Encrypted: ${enc}`, "m"));
    });

    it(`bfc extract -k -C OUT containers/${name}: identical output and files`, () => {
      const out = tempDir();
      const args = ["extract", "-k", "-C", out];
      if (name === "password.bfc") args.push("-p", VECTOR_PASSWORD);
      args.push(`containers/${name}`);
      const want = manifestBlock("### extract", section);
      const r = bfc(args);
      assert.equal(r.stderr, "");
      assert.equal(r.code, 0);
      assert.deepEqual(lines(r.stdout), want.stdout);
      const { files, links } = expectedHashes(section);
      assert.equal(files.size, 13);
      for (const [p, hash] of files) assert.equal(sha256(fs.readFileSync(path.join(out, p))), hash, p);
      for (const [p, target] of links) assert.equal(fs.readlinkSync(path.join(out, p)), target);
      assert.equal(fs.statSync(path.join(out, "input/secret.txt")).mode & 0o777, 0o600);
      assert.equal(
        fs.statSync(path.join(out, "input/random.bin")).mtime.toISOString(),
        "2023-06-07T08:09:10.000Z",
      );
      // Unlike the reference, directory times are restored too.
      assert.equal(fs.statSync(path.join(out, "input/docs")).mtime.toISOString(), "2024-03-04T05:06:07.000Z");
    });

    it(`bfc verify --deep containers/${name}: succeeds (the reference's false CRC mismatch is fixed)`, () => {
      const args = ["verify", "--deep", `containers/${name}`];
      if (name === "password.bfc") args.push("-p", VECTOR_PASSWORD);
      const r = bfc(args);
      assert.equal(r.stderr, "");
      assert.equal(r.code, 0);
      const plain = manifestBlock("### bfc verify --deep containers/plain.bfc");
      const norm = (ls: string[]) =>
        ls.map((l) => l.replace(/\d+\.\d\d seconds/, "N seconds").replace(name, "X"));
      assert.deepEqual(norm(lines(r.stdout)), norm(plain.stdout.map((l) => l.replace("plain.bfc", name))));
    });
  });
}

describe("encrypted container without or with wrong credentials", () => {
  it("extract without a password: same output, 13 per-file errors, the same files left", () => {
    const out = tempDir();
    const want = manifestBlock("### bfc extract -k -C $OUT containers/password.bfc   (no password)");
    const r = bfc(["extract", "-k", "-C", out, "containers/password.bfc"]);
    assert.equal(r.code, 1);
    assert.deepEqual(lines(r.stdout), want.stdout);
    const errs = errorLines(r.stderr, "extract");
    assert.equal(errs.length, 13);
    assert.ok(errs.every((e) => e.reason === "KEY_REQUIRED"));
    assert.match(errs[0].what, /'input\/a63.txt' is encrypted/);
    const left: string[] = [];
    const walk = (d: string) => {
      for (const e of fs
        .readdirSync(path.join(out, d), { withFileTypes: true })
        .sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const rel = d ? `${d}/${e.name}` : e.name;
        left.push(`./${rel}`);
        if (e.isDirectory()) walk(rel);
      }
    };
    walk("");
    const leftWant = MANIFEST.split("Left on disk afterwards (failed files are unlinked):")[1].split(
      "```",
    )[1];
    assert.deepEqual(left, leftWant.trim().split("\n"));
  });

  it("a wrong password fails every file with AUTH_FAILED, one line each, exit 1", () => {
    const out = tempDir();
    const r = bfc([
      "extract",
      "-k",
      "-C",
      out,
      "-p",
      "wrong",
      "containers/password.bfc",
      "input/hello.txt",
      "input/docs",
    ]);
    assert.equal(r.code, 1);
    assert.equal(lines(r.stdout).at(-1), "Extracted 5 entries with 3 errors");
    const errs = errorLines(r.stderr, "extract");
    assert.deepEqual(
      errs.map((e) => e.reason),
      ["AUTH_FAILED", "AUTH_FAILED", "AUTH_FAILED"],
    );
    assert.equal(fs.existsSync(path.join(out, "input/hello.txt")), false);
  });

  it("deep verify with a wrong password says so in one line", () => {
    const r = bfc(["verify", "--deep", "-p", "wrong", "containers/password.bfc"]);
    assert.equal(r.code, 1);
    assert.deepEqual(errorLines(r.stderr, "verify"), [
      {
        what: "wrong password or key: none of the 13 encrypted files could be authenticated",
        reason: "AUTH_FAILED",
      },
    ]);
    assert.match(r.stdout, /^Verification failed after \d+\.\d\d seconds$/m);
  });

  it("deep verify without a password reports the unchecked entries (KEY_REQUIRED), exit 1", () => {
    const r = bfc(["verify", "--deep", "containers/password.bfc"]);
    assert.equal(r.code, 1);
    assert.deepEqual(
      errorLines(r.stderr, "verify").map((e) => e.reason),
      ["KEY_REQUIRED"],
    );
  });
});

describe("corrupted copies", () => {
  it("verify corrupt-content.bfc (shallow): valid, as the reference", () => {
    const want = manifestBlock("bfc verify corrupt/corrupt-content.bfc (shallow):");
    const r = bfc(["verify", "corrupt/corrupt-content.bfc"]);
    assert.equal(r.code, 0);
    const norm = (ls: string[]) => ls.map((l) => l.replace(/\d+\.\d\d seconds/, "N seconds"));
    assert.deepEqual(norm(lines(r.stdout)), norm(want.stdout));
  });

  it("verify --deep corrupt-content.bfc: fails naming the file and the checksum, exit 1", () => {
    const want = manifestBlock("bfc verify --deep corrupt/corrupt-content.bfc:");
    const r = bfc(["verify", "--deep", "corrupt/corrupt-content.bfc"]);
    assert.equal(r.code, want.code);
    const norm = (ls: string[]) => ls.map((l) => l.replace(/\d+\.\d\d seconds/, "N seconds"));
    assert.deepEqual(norm(lines(r.stdout)), norm(want.stdout));
    const errs = errorLines(r.stderr, "verify");
    assert.equal(errs.length, 1);
    assert.equal(errs[0].reason, "CRC_MISMATCH");
    assert.match(errs[0].what, /^'input\/hello.txt': checksum mismatch/);
  });

  it("extract -k -C OUT corrupt-content.bfc input/hello.txt: one error, file removed, exit 1", () => {
    const out = tempDir();
    const want = manifestBlock("bfc extract -k -C $OUT corrupt/corrupt-content.bfc input/hello.txt:");
    const r = bfc(["extract", "-k", "-C", out, "corrupt/corrupt-content.bfc", "input/hello.txt"]);
    assert.equal(r.code, 1);
    assert.deepEqual(lines(r.stdout), want.stdout);
    assert.deepEqual(
      errorLines(r.stderr, "extract").map((e) => e.reason),
      ["CRC_MISMATCH"],
    );
    assert.equal(fs.existsSync(path.join(out, "input/hello.txt")), false);
  });

  for (const [file, reason] of [
    ["corrupt/corrupt-footer.bfc", "CRC_MISMATCH"],
    ["corrupt/truncated-no-footer.bfc", "TRUNCATED"],
  ]) {
    for (const deep of [false, true]) {
      it(`verify${deep ? " --deep" : ""} ${file}: one clean error line, nothing on stdout, exit 1`, () => {
        const r = bfc(deep ? ["verify", "--deep", file] : ["verify", file]);
        assert.equal(r.code, 1);
        assert.equal(r.stdout, "");
        const errs = errorLines(r.stderr, "verify");
        assert.equal(errs.length, 1);
        assert.equal(errs[0].reason, reason);
        assert.ok(errs[0].what.includes(file));
      });
    }
  }

  it("list, info, extract and cat on a corrupted container fail cleanly", () => {
    for (const args of [
      ["list", "corrupt/corrupt-footer.bfc"],
      ["info", "corrupt/truncated-no-footer.bfc"],
      ["extract", "-C", tempDir(), "corrupt/corrupt-footer.bfc"],
      ["cat", "corrupt/corrupt-content.bfc", "input/hello.txt"],
      ["stat", "corrupt/truncated-no-footer.bfc", "input"],
    ]) {
      const r = bfc(args);
      assert.equal(r.code, 1, args.join(" "));
      assert.equal(r.stdout, "", args.join(" "));
      assert.equal(errorLines(r.stderr, args[0]).length, 1, r.stderr);
    }
  });
});
