/**
 * Every command and option: golden text (TZ=UTC) for list and info, JSON documents, cat, stat,
 * extract's options, exit codes, usage errors, help and version, and the built dist/cli/main.js.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { rewriteVerifyProgress } from "../../src/cli/argv.ts";
import { ROOT, sha256, tempDir, VECTOR_PASSWORD, VECTORS, writeTree } from "../helpers.ts";
import { bfc, bfcRaw, errorLines, lines } from "./cli-helpers.ts";

const PLAIN = "containers/plain.bfc";
const ZSTD = "containers/zstd.bfc";
const PASSWORD = "containers/password.bfc";

describe("list", () => {
  it("short formats with a prefix: path, -s, -c, -sc (golden)", () => {
    const golden: Record<string, string[]> = {
      "": ["input/docs", "input/docs/guide", "input/docs/guide/intro.txt", "input/docs/notes.txt"],
      "-s": [
        "      0B input/docs",
        "      0B input/docs/guide",
        "    108B input/docs/guide/intro.txt",
        "     25B input/docs/notes.txt",
      ],
      "-c": [
        "input/docs",
        "input/docs/guide",
        "0x711e2400 input/docs/guide/intro.txt",
        "0x0cf92bb1 input/docs/notes.txt",
      ],
      "-sc": [
        "      0B input/docs",
        "      0B input/docs/guide",
        "    108B 0x711e2400 input/docs/guide/intro.txt",
        "     25B 0x0cf92bb1 input/docs/notes.txt",
      ],
      "-l": [
        "drwxr-xr-x       0B 2024-03-04 05:06 input/docs",
        "drwxr-xr-x       0B 2024-03-04 05:06 input/docs/guide",
        "-rw-r--r--     108B 2024-01-02 03:04 input/docs/guide/intro.txt",
        "-rw-r--r--      25B 2024-01-02 03:04 input/docs/notes.txt",
      ],
    };
    for (const [flags, want] of Object.entries(golden)) {
      const args = flags ? ["list", flags, PLAIN, "input/docs/"] : ["list", PLAIN, "input/docs"];
      const r = bfc(args);
      assert.equal(r.code, 0);
      assert.deepEqual(lines(r.stdout), want, flags);
    }
  });

  it("long options, options after the arguments, and local time (TZ)", () => {
    const r = bfc(["list", PLAIN, "input/hello.txt", "--long", "--checksum"]);
    assert.deepEqual(lines(r.stdout), ["-rw-r--r--      12B 2024-01-02 03:04 0x0662bd9b input/hello.txt"]);
    const ny = bfc(["list", "-l", PLAIN, "input/hello.txt"], { env: { TZ: "America/New_York" } });
    assert.deepEqual(lines(ny.stdout), ["-rw-r--r--      12B 2024-01-01 22:04 input/hello.txt"]);
  });

  it("a prefix matches whole components only; nothing matched is an error (exit 1)", () => {
    const r = bfc(["list", PLAIN, "input/hello"]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.deepEqual(errorLines(r.stderr, "list"), [
      { what: "no entries found matching 'input/hello'", reason: "NOT_FOUND" },
    ]);
  });

  it("--json: one document with every entry's fields", () => {
    const r = bfc(["list", "--json", ZSTD]);
    assert.equal(r.code, 0);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.container, ZSTD);
    assert.equal(doc.prefix, null);
    assert.equal(doc.entries.length, 20);
    const c = doc.entries.find((e: { path: string }) => e.path === "input/compressible.txt");
    assert.deepEqual(c, {
      path: "input/compressible.txt",
      type: "file",
      mode: 0o100644,
      permissions: "0644",
      modeString: "-rw-r--r--",
      size: 262144,
      mtime: "2024-01-02T03:04:05.000000000Z",
      mtimeNs: "1704164645000000000",
      crc32c: "0xd0a95411",
      compression: "zstd",
      encrypted: false,
      storedSize: 4366,
      payloadSize: 4302,
      offset: 4879,
    });
    const link = doc.entries.find((e: { type: string }) => e.type === "symlink");
    assert.equal(link.target, "hello.txt");
    const d = doc.entries.find((e: { path: string }) => e.path === "input");
    assert.equal(d.crc32c, null);
  });

  it("stops quietly when the reader of a pipe goes away", () => {
    const r = spawnSync(
      "sh",
      ["-c", `"${process.execPath}" "${path.join(ROOT, "src/cli/main.ts")}" list ${PLAIN} | head -1`],
      {
        cwd: VECTORS,
        encoding: "utf8",
      },
    );
    assert.equal(r.stdout, "input\n");
    assert.equal(r.stderr, "");
  });
});

describe("info", () => {
  it("container summary (golden, reference lines plus ours)", () => {
    const r = bfc(["info", PLAIN]);
    assert.equal(r.code, 0);
    const out = lines(r.stdout);
    assert.equal(out[0], "Container: containers/plain.bfc");
    assert.equal(out[1], "Container size: 1.3 MiB (1318017 bytes)");
    assert.match(out[2], /^Modified: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    assert.match(out[3], /^UUID: [0-9a-f-]{36}$/);
    assert.deepEqual(out.slice(4), [
      "Block size: 4096",
      "Features: none",
      "Encrypted: no",
      "",
      "Summary:",
      "  Total entries: 20",
      "  Files: 13",
      "  Directories: 6",
      "  Symlinks: 1",
      "  Uncompressed size: 1.3 MiB (1311190 bytes)",
      "  Stored size: 1.3 MiB (1312054 bytes)",
      "  Storage ratio: 100.1%",
    ]);
  });

  it("one entry (golden, as the reference plus the payload size)", () => {
    const r = bfc(["info", ZSTD, "input/compressible.txt"]);
    assert.equal(r.code, 0);
    assert.deepEqual(lines(r.stdout), [
      "Entry: input/compressible.txt",
      "Type: Regular file",
      "Mode: -rw-r--r-- (00644)",
      "Size: 256.0 KiB (262144 bytes)",
      "Compression: zstd",
      "Encryption: none",
      "Stored size: 4.3 KiB (4366 bytes)",
      "Storage ratio: 1.7%",
      "Compression ratio: 98.3%",
      "CRC32C: 0xd0a95411",
      "Object offset: 4879",
      "Modified: 2024-01-02 03:04:05 UTC",
      "Payload size: 4.2 KiB (4302 bytes)",
    ]);
    const d = bfc(["info", PLAIN, "input"]);
    assert.deepEqual(lines(d.stdout), [
      "Entry: input",
      "Type: Directory",
      "Mode: drwxr-xr-x (00755)",
      "Size: 0 bytes",
      "Modified: 2024-03-04 05:06:07 UTC",
    ]);
    const l = bfc(["info", PLAIN, "input/hello-link"]);
    assert.deepEqual(lines(l.stdout).slice(1), [
      "Type: Symlink",
      "Mode: lrwxrwxrwx (00777)",
      "Size: 9 bytes",
      "Modified: 2024-02-03 04:05:06 UTC",
      "Target: hello.txt",
    ]);
    const e = bfc(["info", PLAIN, "input/empty.txt"]);
    assert.match(e.stdout, /^Storage ratio: 100\.0%$/m);
  });

  it("-d on a compressed container lists the compression of each compressed file", () => {
    const r = bfc(["info", "--detailed", ZSTD]);
    assert.match(r.stdout, /^ {2}zstd 1\.6% 4\.2 KiB \(4302 bytes\) input\/compressible\.txt$/m);
    assert.match(r.stdout, /^ {2}Compressed files: 3$/m);
    assert.match(r.stdout, /^Features: zstd$/m);
  });

  it("a missing entry exits 1 (the reference exits 0)", () => {
    const r = bfc(["info", PLAIN, "input/nope"]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.deepEqual(errorLines(r.stderr, "info"), [
      { what: "no such entry: 'input/nope'", reason: "NOT_FOUND" },
    ]);
  });

  it("--json: container document, and an entry document", () => {
    const doc = JSON.parse(bfc(["info", "--json", "-d", PASSWORD]).stdout);
    assert.equal(doc.encryption, "password");
    assert.equal(doc.blockSize, 4096);
    assert.deepEqual(doc.features, ["aead"]);
    assert.match(doc.uuid, /^[0-9a-f-]{36}$/);
    assert.equal(doc.summary.files, 13);
    assert.equal(doc.summary.encryptedFiles, 13);
    assert.equal(doc.summary.storedSize, 1312418);
    assert.equal(doc.entries.length, 20);
    assert.equal(doc.entries[1].encrypted, true);
    const plain = JSON.parse(bfc(["info", "--json", PLAIN]).stdout);
    assert.equal(plain.entries, undefined);
    assert.equal(plain.encryption, "none");
    const one = JSON.parse(bfc(["info", "--json", PLAIN, "input/run.sh"]).stdout);
    assert.equal(one.permissions, "0755");
  });
});

describe("stat and cat", () => {
  it("stat prints everything recorded about an entry (golden), --json the same as info's entry", () => {
    const r = bfc(["stat", ZSTD, "input/compressible.txt"]);
    assert.equal(r.code, 0);
    assert.deepEqual(lines(r.stdout), [
      "    File: input/compressible.txt",
      "    Type: regular file",
      "    Size: 262144",
      "    Mode: 0644 (-rw-r--r--)",
      "Modified: 2024-01-02 03:04:05.000000000 +0000",
      "  CRC32C: 0xd0a95411",
      "  Stored: 4366 bytes, payload 4302 bytes",
      "   Codec: compression zstd, not encrypted",
      "  Offset: 4879",
    ]);
    const j = JSON.parse(bfc(["stat", "--json", PLAIN, "input/hello-link"]).stdout);
    assert.equal(j.type, "symlink");
    assert.equal(j.target, "hello.txt");
    const missing = bfc(["stat", PLAIN, "nope"]);
    assert.equal(missing.code, 1);
    assert.equal(errorLines(missing.stderr, "stat")[0].reason, "NOT_FOUND");
    const notDir = bfc(["stat", PLAIN, "input/hello.txt/x"]);
    assert.equal(errorLines(notDir.stderr, "stat")[0].reason, "NOT_A_DIRECTORY");
  });

  it("cat writes contents in order, follows symlinks, decrypts with a password", () => {
    const r = bfcRaw(["cat", ZSTD, "input/hello-link", "input/compressible.txt"]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.subarray(0, 12).toString(), "Hello, BFC!\n");
    assert.equal(r.stdout.length, 12 + 262144);
    const big = bfcRaw(["cat", "-p", VECTOR_PASSWORD, PASSWORD, "input/random.bin"]);
    assert.equal(sha256(big.stdout), "8e2ccac7a8fe833770a778f4919bc04174866c9863273f9b9bcf0d061a57b4a9");
  });

  it("cat: a directory, a missing file, a missing key or a corrupt file fail with exit 1; others still print", () => {
    const r = bfc(["cat", PLAIN, "input/docs", "input/hello.txt", "nope"]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "Hello, BFC!\n");
    assert.deepEqual(
      errorLines(r.stderr, "cat").map((e) => e.reason),
      ["IS_A_DIRECTORY", "NOT_FOUND"],
    );
    const k = bfc(["cat", PASSWORD, "input/hello.txt"]);
    assert.equal(k.code, 1);
    assert.equal(errorLines(k.stderr, "cat")[0].reason, "KEY_REQUIRED");
    const c = bfc(["cat", "corrupt/corrupt-content.bfc", "input/hello.txt"]);
    assert.equal(c.stdout, "");
    assert.equal(errorLines(c.stderr, "cat")[0].reason, "CRC_MISMATCH");
  });
});

describe("extract options", () => {
  it("without -k each entry is written by its base name (as the reference)", () => {
    const out = tempDir();
    const r = bfc(["extract", "-C", out, PLAIN, "input/docs"]);
    assert.equal(r.code, 0);
    assert.deepEqual(lines(r.stdout), [
      "Created: docs/",
      "Created: guide/",
      "Extracted: intro.txt",
      "Extracted: notes.txt",
      "Successfully extracted 4 entries",
    ]);
    assert.deepEqual(fs.readdirSync(out).sort(), ["docs", "guide", "intro.txt", "notes.txt"]);
    const again = bfc(["extract", "-C", out, PLAIN, "input/docs"]);
    assert.equal(again.code, 1);
    assert.deepEqual(lines(again.stdout), ["Extracted 4 entries with 2 errors"]);
    assert.deepEqual(errorLines(again.stderr, "extract"), [
      { what: "'intro.txt' already exists; use -f to overwrite", reason: "ALREADY_EXISTS" },
      { what: "'notes.txt' already exists; use -f to overwrite", reason: "ALREADY_EXISTS" },
    ]);
    const forced = bfc(["extract", "-f", "-C", out, PLAIN, "input/docs"]);
    assert.equal(forced.code, 0);
    assert.deepEqual(lines(forced.stdout), [
      "Extracted: intro.txt",
      "Extracted: notes.txt",
      "Successfully extracted 4 entries",
    ]);
  });

  it("lines come in container order although symlinks are created last", () => {
    const dir = tempDir();
    writeTree(path.join(dir, "src"), { "b/h": "h", "c.txt": "c", "z.txt": "z" });
    fs.symlinkSync("z.txt", path.join(dir, "src", "a-link"));
    fs.symlinkSync("../z.txt", path.join(dir, "src", "b", "l"));
    assert.equal(bfc(["create", "-q", "t.bfc", "src"], { cwd: dir }).code, 0);
    const r = bfc(["extract", "-k", "-C", "out", "t.bfc"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(r.stdout), [
      "Created: src/",
      "Extracted: src/a-link -> z.txt",
      "Created: src/b/",
      "Extracted: src/b/h",
      "Extracted: src/b/l -> ../z.txt",
      "Extracted: src/c.txt",
      "Extracted: src/z.txt",
      "Successfully extracted 7 entries",
    ]);
    assert.equal(fs.readlinkSync(path.join(dir, "out/src/b/l")), "../z.txt");
    // A failure is reported in its place too.
    fs.rmSync(path.join(dir, "out/src/c.txt"));
    fs.mkdirSync(path.join(dir, "out/src/c.txt"));
    const again = bfc(["extract", "-k", "-f", "-C", "out", "t.bfc"], { cwd: dir });
    assert.equal(again.code, 1);
    assert.deepEqual(lines(again.stdout), [
      "Extracted: src/a-link -> z.txt",
      "Extracted: src/b/h",
      "Extracted: src/b/l -> ../z.txt",
      "Extracted: src/z.txt",
      "Extracted 7 entries with 1 errors",
    ]);
    assert.deepEqual(errorLines(again.stderr, "extract"), [
      { what: "'src/c.txt' exists and is a directory", reason: "ALREADY_EXISTS" },
    ]);
  });

  it("-C creates a missing directory; a relative -K is read before -C applies", () => {
    const dir = tempDir();
    writeTree(dir, { "s.txt": "secret", "key.bin": Buffer.alloc(32, 3) });
    assert.equal(bfc(["create", "-q", "-k", "key.bin", "k.bfc", "s.txt"], { cwd: dir }).code, 0);
    const r = bfc(["extract", "-C", "new/deeper", "-K", "key.bin", "k.bfc"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(dir, "new/deeper/s.txt"), "utf8"), "secret");
    const wrong = bfc(["extract", "-f", "-C", "new/deeper", "-p", "pw", "k.bfc"], { cwd: dir });
    assert.equal(wrong.code, 1);
    assert.equal(errorLines(wrong.stderr, "extract")[0].reason, "BAD_KEY");
  });

  it("paths matching nothing are reported and make the exit code 1; the others are extracted", () => {
    const out = tempDir();
    const r = bfc(["extract", "-k", "-C", out, PLAIN, "input/hello.txt", "input/nope"]);
    assert.equal(r.code, 1);
    assert.deepEqual(lines(r.stdout), ["Extracted: input/hello.txt", "Successfully extracted 1 entries"]);
    assert.deepEqual(errorLines(r.stderr, "extract"), [
      { what: "no entry matches 'input/nope'", reason: "NOT_FOUND" },
    ]);
    const none = bfc(["extract", "-C", out, PLAIN, "nope"]);
    assert.equal(none.code, 1);
    assert.equal(none.stdout, "");
    assert.equal(
      errorLines(none.stderr, "extract").at(-1)?.what,
      "no entries found matching the specified paths",
    );
  });

  it("-q prints nothing on success; -v adds Verbose lines", () => {
    const out = tempDir();
    const q = bfc(["-q", "extract", "-C", out, PLAIN, "input/hello.txt"]);
    assert.equal(q.code, 0);
    assert.equal(q.stdout + q.stderr, "");
    const v = bfc(["extract", "-C", out, "-f", PLAIN, "input/hello.txt", "--verbose"]);
    assert.match(v.stderr, /^Verbose: Opening container: containers\/plain\.bfc$/m);
  });
});

describe("verify options", () => {
  it("the reference's -p (progress) still works: before --deep, or before the container alone", () => {
    assert.deepEqual(rewriteVerifyProgress(["verify", "-p", "--deep", "x.bfc"]), [
      "verify",
      "--progress",
      "--deep",
      "x.bfc",
    ]);
    assert.deepEqual(rewriteVerifyProgress(["-v", "verify", "--deep", "-p", "x.bfc"]), [
      "-v",
      "verify",
      "--deep",
      "--progress",
      "x.bfc",
    ]);
    assert.deepEqual(rewriteVerifyProgress(["verify", "x.bfc", "-p"]), ["verify", "x.bfc", "--progress"]);
    assert.deepEqual(rewriteVerifyProgress(["verify", "-p", "pw", "x.bfc"]), ["verify", "-p", "pw", "x.bfc"]);
    assert.deepEqual(rewriteVerifyProgress(["verify", "x.bfc", "-p", "pw"]), ["verify", "x.bfc", "-p", "pw"]);
    assert.deepEqual(rewriteVerifyProgress(["verify", "-K", "k", "-p", "x.bfc"]), [
      "verify",
      "-K",
      "k",
      "--progress",
      "x.bfc",
    ]);
    assert.deepEqual(rewriteVerifyProgress(["extract", "-p", "x.bfc"]), ["extract", "-p", "x.bfc"]);
    const r = bfc(["verify", "-p", "--deep", ZSTD]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Verification successful$/m);
    const pw = bfc(["verify", "--deep", PASSWORD, "-p", VECTOR_PASSWORD]);
    assert.equal(pw.code, 0, pw.stderr);
  });

  it("--json reports ok, counts and problems; -q prints nothing", () => {
    const ok = JSON.parse(bfc(["verify", "--json", "--deep", ZSTD]).stdout);
    assert.equal(ok.ok, true);
    assert.equal(ok.deep, true);
    assert.equal(ok.entries, 20);
    assert.equal(ok.checked, 20);
    assert.equal(ok.bytes, 1311190);
    assert.deepEqual(ok.problems, []);
    const bad = bfc(["verify", "--json", "--deep", "corrupt/corrupt-content.bfc"]);
    assert.equal(bad.code, 1);
    const doc = JSON.parse(bad.stdout);
    assert.equal(doc.ok, false);
    assert.deepEqual(doc.problems[0].path, "input/hello.txt");
    assert.equal(doc.problems[0].reason, "CRC_MISMATCH");
    const q = bfc(["-q", "verify", PLAIN]);
    assert.equal(q.code, 0);
    assert.equal(q.stdout + q.stderr, "");
    const env = bfc(["verify", "--json", "--deep", PASSWORD], { env: { BFC_PASSWORD: VECTOR_PASSWORD } });
    assert.equal(JSON.parse(env.stdout).ok, true);
  });
});

describe("usage, help and version", () => {
  it("bfc --help, help, and each command's --help print usage on stdout, exit 0", () => {
    const top = bfc(["--help"]);
    assert.equal(top.code, 0);
    for (const c of ["create", "list", "extract", "info", "verify", "cat", "stat", "help"]) {
      assert.match(top.stdout, new RegExp(`^ {2}${c}\\b`, "m"), c);
    }
    assert.equal(bfc(["help"]).stdout, top.stdout);
    for (const c of ["create", "list", "extract", "info", "verify", "cat", "stat"]) {
      const r = bfc([c, "--help"]);
      assert.equal(r.code, 0, c);
      assert.match(r.stdout, new RegExp(`^Usage: bfc ${c} `, "m"), c);
      assert.match(r.stdout, /Examples:/, c);
      assert.equal(bfc(["help", c]).stdout, r.stdout, c);
      assert.equal(bfc(["-h", c]).code, 0);
    }
    // A command run by name loads only its own module; help still sees every command.
    const all = [
      ...["create", "list", "extract", "info", "verify", "digest", "cat", "stat", "add", "rm", "mv"],
      ...["log", "recover", "compact", "limits", "sign", "keygen", "mount", "umount", "disk", "import"],
      "container",
    ];
    for (const c of all) assert.match(top.stdout, new RegExp(`^ {2}${c}\\b`, "m"), c);
    assert.equal(bfc(["--help", "mount"]).stdout, top.stdout, "help before a command is the full help");
    for (const c of ["keygen", "mount", "import", "container"]) {
      assert.equal(bfc([c, "--help"]).stdout, bfc(["help", c]).stdout, c);
    }
    assert.match(bfc(["extract", "--help"]).stdout, /-K, --keyfile <file>/);
    assert.match(bfc(["verify", "-h"]).stdout, /--progress/);
  });

  it("--version prints three lines, exit 0", () => {
    const r = bfc(["--version"]);
    assert.equal(r.code, 0);
    const out = lines(r.stdout);
    assert.equal(out.length, 3);
    assert.match(out[0], /^bfc version \d+\.\d+\.\d+$/);
  });

  it("usage errors exit 2 with one line; no command shows usage on stderr", () => {
    const cases: [string[], string | null][] = [
      [["frobnicate"], null],
      [["list"], "list"],
      [["list", "-z", PLAIN], "list"],
      [["list", PLAIN, "a", "b"], "list"],
      [["create", "-c"], "create"],
      [["extract", "-p", "a", "-K", "b", PLAIN], "extract"],
      [["verify"], "verify"],
      [["cat", PLAIN], "cat"],
      [["stat", PLAIN], "stat"],
      [["--bogus"], null],
    ];
    for (const [args, cmd] of cases) {
      const r = bfc(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stdout, "", args.join(" "));
      const errs = errorLines(r.stderr, cmd);
      assert.equal(errs.length, 1);
      assert.equal(errs[0].reason, "USAGE");
    }
    const none = bfc([]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^Usage: bfc /);
  });

  it("global options work before and after the command", () => {
    assert.match(bfc(["-v", "list", PLAIN]).stderr, /^Verbose: Listed 20 entries$/m);
    assert.match(bfc(["list", PLAIN, "-v"]).stderr, /^Verbose: Listed 20 entries$/m);
  });

  it("a missing or unreadable container is one clean line, exit 1", () => {
    for (const c of ["list", "info", "verify", "extract"]) {
      const r = bfc([c, "no-such.bfc"]);
      assert.equal(r.code, 1, c);
      assert.deepEqual(errorLines(r.stderr, c), [
        { what: "cannot open container 'no-such.bfc': no such file or directory", reason: "ENOENT" },
      ]);
    }
    const dir = bfc(["list", "containers"]);
    assert.equal(dir.code, 1);
    assert.equal(errorLines(dir.stderr, "list").length, 1);
  });
});

describe("the built command", () => {
  it("dist/cli/main.js runs (built when missing or older than the sources)", () => {
    const main = path.join(ROOT, "dist/cli/main.js");
    const newest = (d: string): number =>
      Math.max(
        ...fs
          .readdirSync(d, { withFileTypes: true })
          .map((e) =>
            e.isDirectory() ? newest(path.join(d, e.name)) : fs.statSync(path.join(d, e.name)).mtimeMs,
          ),
      );
    if (!fs.existsSync(main) || fs.statSync(main).mtimeMs < newest(path.join(ROOT, "src"))) {
      execFileSync(
        process.execPath,
        [path.join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"],
        {
          cwd: ROOT,
          stdio: "pipe",
        },
      );
    }
    assert.ok(fs.readFileSync(main, "utf8").startsWith("#!/usr/bin/env node\n"));
    const r = bfc(["list", "-lsc", PLAIN], { script: main });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(lines(r.stdout).length, 20);
    const v = bfc(["verify", "--deep", ZSTD], { script: main });
    assert.equal(v.code, 0, v.stderr);
  });
});
