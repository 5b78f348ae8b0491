/**
 * The commands that change a container or read its history, run as the real `bfc` command: add, rm,
 * mv, log, --commit N on the reading commands, recover, compact, limits, sign/keygen/verify --pubkey,
 * the update lock, and their help. Fixtures are made with the library (fast, and not what is under
 * test); results are read back with the library's Reader. Every failure must leave the container
 * byte for byte as it was.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { crc32c } from "../../src/codec/crc32c.ts";
import { Container } from "../../src/container/container.ts";
import { rootDigest } from "../../src/container/digest.ts";
import { ContainerLock } from "../../src/container/lock.ts";
import { Reader, type ReaderOptions } from "../../src/container/reader.ts";
import { Writer, type WriterOptions } from "../../src/container/writer.ts";
import { tempDir, writeTree } from "../helpers.ts";
import { bfc, errorLines, lines, MAIN, type RunResult } from "./cli-helpers.ts";

const MTIME = new Date("2024-05-06T07:08:09Z");
/** One temporary root for the file (removed at exit); each test works in a directory of its own. */
const ROOT = tempDir("bfc-update-cli-");

function freshDir(): string {
  return fs.mkdtempSync(path.join(ROOT, "t-"));
}
const PASSWORD = "update password";

/** A fresh directory with a container `c.bfc` holding `files` (path → content; "d/" → directory). */
async function setup(
  files: Record<string, string>,
  options: WriterOptions = {},
): Promise<{ dir: string; file: string }> {
  const dir = freshDir();
  const file = path.join(dir, "c.bfc");
  const w = await Writer.create(file, { workers: 1, ...options });
  for (const [p, content] of Object.entries(files)) {
    if (p.endsWith("/")) await w.addDirectory(p.slice(0, -1), { mode: 0o755, mtime: MTIME });
    else await w.addFile(p, Buffer.from(content), { mode: 0o644, mtime: MTIME });
  }
  await w.finish();
  return { dir, file };
}

/** Applies one library commit (for fixtures with history). */
async function libCommit(file: string, change: (c: Container) => Promise<void> | void, message?: string) {
  const c = await Container.openForUpdate(file);
  try {
    await change(c);
    await c.commit({ message });
  } finally {
    c.close();
  }
}

/** `bfc …` run in `dir` (so messages show the relative names the test passed). */
function run(dir: string, args: string[], env?: Record<string, string>): RunResult {
  return bfc(args, { cwd: dir, env });
}

function ok(r: RunResult): RunResult {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
  return r;
}

/** Asserts the exit code and a single error line with `reason`; returns its text. */
function failed(r: RunResult, command: string, code: number, reason: string): string {
  assert.equal(r.code, code, `expected exit ${code}, got ${r.code}: ${r.stderr}`);
  const errs = errorLines(r.stderr, command);
  assert.equal(errs.length, 1, r.stderr);
  assert.equal(errs[0]?.reason, reason, r.stderr);
  return errs[0]?.what ?? "";
}

/** The container's bytes, and after a failure: the same bytes, and no lock or temporary file left. */
function unchanged(file: string): () => void {
  const before = fs.readFileSync(file);
  const names = fs.readdirSync(path.dirname(file)).sort();
  return () => {
    assert.ok(fs.readFileSync(file).equals(before), "the container changed");
    assert.deepEqual(fs.readdirSync(path.dirname(file)).sort(), names, "files left beside the container");
  };
}

async function open(file: string, options: ReaderOptions = {}): Promise<Reader> {
  return Reader.open(file, options);
}

/** Paths of a commit (default: the latest). */
async function paths(file: string, options: ReaderOptions = {}): Promise<string[]> {
  const r = await open(file, options);
  try {
    return [...r.entries()].map((e) => e.path);
  } finally {
    r.close();
  }
}

async function digestOf(file: string, options: ReaderOptions = {}): Promise<string> {
  const r = await open(file, options);
  try {
    return (await rootDigest(r)).digest;
  } finally {
    r.close();
  }
}

async function content(file: string, p: string, options: ReaderOptions = {}): Promise<string> {
  const r = await open(file, options);
  try {
    return (await r.readFile(p)).toString();
  } finally {
    r.close();
  }
}

const COMMITTED =
  /^Committed (\d+) to '[^']+': (\d+) entries, (\d+) written, (\d+) unchanged, \+(\d+) bytes\.$/;

describe("bfc add", () => {
  it("files, a directory merged into one already there, a symlink, -m: one new commit", async () => {
    const { dir, file } = await setup({ "site/": "", "site/index.html": "old", "site/keep.txt": "keep" });
    writeTree(path.join(dir, "in"), {
      "site/index.html": "new index",
      "site/css/a.css": "body{}",
      "notes.txt": "notes",
      link: { link: "site/index.html" },
    });
    const size = fs.statSync(file).size;
    const r = ok(run(dir, ["add", "-m", "update site", "c.bfc", "in/site", "in/notes.txt", "in/link"]));
    const m = COMMITTED.exec(lines(r.stdout)[0] ?? "");
    assert.ok(m, r.stdout);
    assert.equal(m[1], "2");
    assert.equal(Number(m[2]), 7); // site, site/css, site/css/a.css, site/index.html, site/keep.txt, notes.txt, link
    assert.equal(Number(m[3]) + Number(m[4]), 7);
    assert.equal(Number(m[5]), fs.statSync(file).size - size);
    assert.equal(r.stderr, "");
    assert.deepEqual(await paths(file), [
      "link",
      "notes.txt",
      "site",
      "site/css",
      "site/css/a.css",
      "site/index.html",
      "site/keep.txt",
    ]);
    assert.equal(await content(file, "site/index.html"), "new index");
    assert.equal(await content(file, "site/keep.txt"), "keep");
    assert.equal(await content(file, "site/css/a.css"), "body{}");
    const rd = await open(file);
    assert.equal(rd.commit, 2);
    assert.equal(rd.extension.commitInfo?.message, "update site");
    assert.equal(rd.stat("link").type, "symlink");
    assert.equal(rd.readlinkSync("link"), "site/index.html");
    rd.close();
    // The first commit is still there as it was.
    assert.equal(await content(file, "site/index.html", { commit: 1 }), "old");
    ok(run(dir, ["verify", "--deep", "c.bfc"]));
  });

  it("-C/--into stores under a directory (created with its parents); -c zstd compresses", async () => {
    const { dir, file } = await setup({ "a.txt": "a" });
    const text = "compressible line of text\n".repeat(400);
    fs.writeFileSync(path.join(dir, "big.txt"), text);
    ok(run(dir, ["add", "-C", "docs/deep", "-c", "zstd", "c.bfc", "big.txt"]));
    ok(run(dir, ["add", "--into", "docs/", "c.bfc", "big.txt"]));
    const r = await open(file);
    assert.deepEqual(
      [...r.entries()].map((e) => e.path),
      ["a.txt", "docs", "docs/big.txt", "docs/deep", "docs/deep/big.txt"],
    );
    const z = r.stat("docs/deep/big.txt");
    assert.equal(z.compression, "zstd");
    assert.ok(z.storedSize < text.length / 4, `stored ${z.storedSize} of ${text.length}`);
    assert.equal(r.stat("docs/big.txt").compression, "none");
    assert.equal((await r.readFile("docs/deep/big.txt")).toString(), text);
    assert.equal(r.commit, 3);
    r.close();
  });

  it("errors: duplicate stored names, a missing input, a missing container, bad options", async () => {
    const { dir, file } = await setup({ "a.txt": "a" });
    writeTree(dir, { "x/same.txt": "1", "y/same.txt": "2" });
    const same = unchanged(file);
    const dup = failed(run(dir, ["add", "c.bfc", "x/same.txt", "y/same.txt"]), "add", 1, "DUPLICATE_PATH");
    assert.equal(dup, "inputs 'x/same.txt' and 'y/same.txt' would both be stored as 'same.txt'");
    const missing = failed(run(dir, ["add", "c.bfc", "x/same.txt", "nope.txt"]), "add", 1, "ENOENT");
    assert.match(missing, /'nope\.txt'/);
    failed(run(dir, ["add", "-C", "../out", "c.bfc", "x/same.txt"]), "add", 1, "BAD_PATH");
    failed(run(dir, ["add", "-C", "a.txt", "c.bfc", "x/same.txt"]), "add", 1, "NOT_A_DIRECTORY");
    same();
    failed(run(dir, ["add", "none.bfc", "x/same.txt"]), "add", 1, "ENOENT");
    assert.equal(fs.existsSync(path.join(dir, "none.bfc")), false);
    failed(run(dir, ["add", "-c", "lz4", "c.bfc", "x/same.txt"]), "add", 2, "USAGE");
    failed(run(dir, ["add", "-l", "23", "-c", "zstd", "c.bfc", "x/same.txt"]), "add", 2, "USAGE");
    failed(run(dir, ["add", "--wait", "soon", "c.bfc", "x/same.txt"]), "add", 2, "USAGE");
    failed(run(dir, ["add", "c.bfc"]), "add", 2, "USAGE");
    // The container cannot take itself in: as a file, or inside a directory given as input.
    const self = failed(run(dir, ["add", "c.bfc", "x/same.txt", "c.bfc"]), "add", 2, "USAGE");
    assert.equal(self, "input 'c.bfc' is the container itself");
    const parent = `../${path.basename(dir)}`;
    const holder = failed(run(dir, ["add", "c.bfc", parent]), "add", 2, "USAGE");
    assert.equal(holder, `the container 'c.bfc' is inside the input '${parent}'; it cannot hold itself`);
    same();
  });

  it("encrypted: -p, --password-file and $BFC_PASSWORD; without a key or with a wrong one nothing changes", async () => {
    const { dir, file } = await setup({ "a.txt": "secret a" }, { password: PASSWORD });
    writeTree(dir, { "one.txt": "one", "two.txt": "two", "three.txt": "three", pw: `${PASSWORD}\n` });
    const same = unchanged(file);
    failed(run(dir, ["add", "c.bfc", "one.txt"]), "add", 1, "KEY_REQUIRED");
    failed(run(dir, ["add", "-p", "wrong", "c.bfc", "one.txt"]), "add", 1, "AUTH_FAILED");
    failed(run(dir, ["add", "c.bfc", "one.txt"], { BFC_PASSWORD: "wrong" }), "add", 1, "AUTH_FAILED");
    same();
    ok(run(dir, ["add", "-p", PASSWORD, "c.bfc", "one.txt"]));
    ok(run(dir, ["add", "--password-file", "pw", "c.bfc", "two.txt"]));
    ok(run(dir, ["add", "c.bfc", "three.txt"], { BFC_PASSWORD: PASSWORD }));
    // A moved encrypted file is re-encrypted under its new path.
    ok(run(dir, ["mv", "-p", PASSWORD, "c.bfc", "a.txt", "moved.txt"]));
    const r = await open(file, { password: PASSWORD });
    assert.equal(r.commit, 5);
    const want: Record<string, string> = {
      "moved.txt": "secret a",
      "one.txt": "one",
      "three.txt": "three",
      "two.txt": "two",
    };
    assert.deepEqual(
      [...r.entries()].map((e) => [e.path, e.encrypted]),
      Object.keys(want).map((p) => [p, true]),
    );
    for (const [p, c] of Object.entries(want)) assert.equal((await r.readFile(p)).toString(), c);
    r.close();
  });
});

describe("bfc rm", () => {
  it("-r removes a subtree, -f ignores missing paths; without -r a non-empty directory is an error", async () => {
    const { dir, file } = await setup({
      "a.txt": "a",
      "d/": "",
      "d/x.txt": "x",
      "d/sub/y.txt": "y",
      "e/": "",
      "keep.txt": "k",
    });
    const same = unchanged(file);
    const notEmpty = failed(run(dir, ["rm", "c.bfc", "d"]), "rm", 1, "NOT_EMPTY");
    assert.equal(notEmpty, "cannot remove 'd': directory not empty");
    assert.equal(failed(run(dir, ["rm", "c.bfc", "zz"]), "rm", 1, "NOT_FOUND"), "'zz': no such entry");
    // All or nothing: a.txt is not removed when a later path fails.
    failed(run(dir, ["rm", "c.bfc", "a.txt", "zz"]), "rm", 1, "NOT_FOUND");
    failed(run(dir, ["rm", "c.bfc"]), "rm", 2, "USAGE");
    same();
    const f = ok(run(dir, ["rm", "-f", "-m", "drop a", "c.bfc", "zz", "a.txt"]));
    assert.match(lines(f.stdout)[0] ?? "", COMMITTED);
    ok(run(dir, ["rm", "-r", "c.bfc", "d", "e"]));
    assert.deepEqual(await paths(file), ["keep.txt"]);
    const nothing = ok(run(dir, ["rm", "-f", "c.bfc", "zz"]));
    assert.deepEqual(lines(nothing.stdout), ["Nothing to commit; 'c.bfc' is unchanged (commit 3)."]);
    assert.deepEqual(await paths(file, { commit: 2 }), ["d", "d/sub/y.txt", "d/x.txt", "e", "keep.txt"]);
  });
});

describe("bfc mv", () => {
  it("into a directory, over a file, a directory with its subtree; into itself is an error", async () => {
    const { dir, file } = await setup({
      "a.txt": "a",
      "b.txt": "b",
      "dir/": "",
      "dir/c.txt": "c",
      "dir/sub/": "",
    });
    ok(run(dir, ["mv", "c.bfc", "a.txt", "dir"]));
    assert.equal(await content(file, "dir/a.txt"), "a");
    ok(run(dir, ["mv", "c.bfc", "b.txt", "dir/c.txt"]));
    assert.equal(await content(file, "dir/c.txt"), "b");
    assert.deepEqual(await paths(file), ["dir", "dir/a.txt", "dir/c.txt", "dir/sub"]);
    const same = unchanged(file);
    const self = failed(run(dir, ["mv", "c.bfc", "dir", "dir/sub/inner"]), "mv", 1, "INVALID_ARGUMENT");
    assert.match(self, /into itself/);
    failed(run(dir, ["mv", "c.bfc", "dir", "dir/sub"]), "mv", 1, "INVALID_ARGUMENT");
    failed(run(dir, ["mv", "c.bfc", "nope", "x"]), "mv", 1, "NOT_FOUND");
    failed(run(dir, ["mv", "c.bfc", "dir/a.txt", "no/such/dir/a.txt"]), "mv", 1, "NOT_FOUND");
    failed(run(dir, ["mv", "c.bfc", "dir/a.txt"]), "mv", 2, "USAGE");
    same();
    ok(run(dir, ["mv", "c.bfc", "dir", "top"]));
    assert.deepEqual(await paths(file), ["top", "top/a.txt", "top/c.txt", "top/sub"]);
    assert.equal(await content(file, "top/c.txt"), "b");
    ok(run(dir, ["verify", "--deep", "c.bfc"]));
  });
});

describe("bfc log", () => {
  it("text and --json, newest first, with the messages given by -m", async () => {
    const { dir, file } = await setup({ "a.txt": "a" });
    fs.writeFileSync(path.join(dir, "b.txt"), "b");
    ok(run(dir, ["add", "-m", "add b", "c.bfc", "b.txt"]));
    ok(run(dir, ["rm", "c.bfc", "a.txt"]));
    const text = ok(run(dir, ["log", "c.bfc"]));
    const l = lines(text.stdout);
    assert.equal(l.length, 3);
    const time = "\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{9} \\+0000";
    assert.match(l[0] ?? "", new RegExp(`^commit 3  ${time}  1 entries  \\+\\d+ bytes$`));
    assert.match(l[1] ?? "", new RegExp(`^commit 2  ${time}  2 entries  \\+\\d+ bytes  add b$`));
    assert.match(l[2] ?? "", /^commit 1 {2}- {2}1 entries {2}\+\d+ bytes$/);
    const doc = JSON.parse(ok(run(dir, ["log", "--json", "c.bfc"])).stdout);
    assert.deepEqual(Object.keys(doc), ["commits", "torn_tail"]);
    assert.equal(doc.torn_tail, 0);
    assert.deepEqual(
      doc.commits.map((c: { commit: number; message: string | null; entries: number; signed: boolean }) => [
        c.commit,
        c.message,
        c.entries,
        c.signed,
      ]),
      [
        [3, null, 1, false],
        [2, "add b", 2, false],
        [1, null, 1, false],
      ],
    );
    for (const c of doc.commits) {
      assert.deepEqual(Object.keys(c), ["commit", "time_ns", "message", "entries", "end", "bytes", "signed"]);
    }
    assert.match(doc.commits[0].time_ns, /^\d+$/);
    assert.equal(doc.commits[2].time_ns, null);
    // Commit sizes add up to the file: each is what it appended after the previous one.
    const size = fs.statSync(file).size;
    assert.equal(doc.commits[0].end, size);
    assert.equal(4096 + doc.commits.reduce((s: number, c: { bytes: number }) => s + c.bytes, 0), size);
    for (const [k, c] of doc.commits.entries()) {
      assert.match(l[k] ?? "", new RegExp(`  \\+${c.bytes} bytes`));
    }
    failed(run(dir, ["log", "none.bfc"]), "log", 1, "ENOENT");
  });
});

describe("--commit N on the reading commands", () => {
  it("list, cat, stat, info, extract, verify and digest read that commit; out of range is exit 1, malformed exit 2", async () => {
    const { dir, file } = await setup({ "a.txt": "one" });
    await libCommit(file, async (c) => {
      await c.addFile("a.txt", Buffer.from("two!"), { mtime: MTIME });
      await c.addFile("b.txt", Buffer.from("bee"), { mtime: MTIME });
    });
    await libCommit(file, (c) => c.remove("a.txt"), "drop a");
    assert.deepEqual(lines(ok(run(dir, ["list", "--commit", "1", "c.bfc"])).stdout), ["a.txt"]);
    assert.deepEqual(lines(ok(run(dir, ["list", "c.bfc", "--commit", "2"])).stdout), ["a.txt", "b.txt"]);
    assert.deepEqual(lines(ok(run(dir, ["list", "c.bfc"])).stdout), ["b.txt"]);
    assert.equal(ok(run(dir, ["cat", "--commit", "1", "c.bfc", "a.txt"])).stdout, "one");
    assert.equal(ok(run(dir, ["cat", "--commit", "2", "c.bfc", "a.txt", "b.txt"])).stdout, "two!bee");
    failed(run(dir, ["cat", "c.bfc", "a.txt"]), "cat", 1, "NOT_FOUND");
    assert.equal(
      JSON.parse(ok(run(dir, ["stat", "--json", "--commit", "1", "c.bfc", "a.txt"])).stdout).size,
      3,
    );
    const info = lines(ok(run(dir, ["info", "--commit", "2", "c.bfc"])).stdout);
    assert.ok(info.includes("Commit: 2 (not the latest)"), info.join("\n"));
    assert.ok(info.includes("  Total entries: 2"), info.join("\n"));
    const latest = lines(ok(run(dir, ["info", "c.bfc"])).stdout);
    assert.ok(latest.includes("Commit: 3 (drop a)"), latest.join("\n"));
    assert.equal(JSON.parse(ok(run(dir, ["info", "--json", "--commit", "1", "c.bfc"])).stdout).commit, 1);
    const out = path.join(dir, "out");
    ok(run(dir, ["extract", "-k", "-C", "out", "--commit", "1", "c.bfc"]));
    assert.deepEqual(fs.readdirSync(out), ["a.txt"]);
    assert.equal(fs.readFileSync(path.join(out, "a.txt"), "utf8"), "one");
    assert.match(
      ok(run(dir, ["verify", "--deep", "--commit", "1", "c.bfc"])).stdout,
      /Verification successful/,
    );
    const d1 = lines(ok(run(dir, ["digest", "--commit", "1", "c.bfc"])).stdout)[0];
    assert.equal(d1, await digestOf(file, { commit: 1 }));
    const d3 = lines(ok(run(dir, ["digest", "c.bfc"])).stdout)[0];
    assert.notEqual(d1, d3);
    assert.equal(lines(ok(run(dir, ["digest", "--commit", "3", "c.bfc"])).stdout)[0], d3);

    const commands: [string, ...string[]][] = [
      ["list"],
      ["cat", "b.txt"],
      ["stat", "b.txt"],
      ["info"],
      ["extract", "-C", "out2"],
      ["verify"],
      ["digest"],
    ];
    for (const [cmd, ...rest] of commands) {
      const far = failed(run(dir, [cmd, "--commit", "4", "c.bfc", ...rest]), cmd, 1, "NOT_FOUND");
      assert.equal(far, "container 'c.bfc' has no commit 4");
    }
    for (const [k, bad] of ["0", "x", "1.5", "-1", "2a", ""].entries()) {
      const [cmd, ...rest] = commands[k % commands.length] as [string, ...string[]];
      const r = run(dir, [cmd, `--commit=${bad}`, "c.bfc", ...rest]);
      assert.match(failed(r, cmd, 2, "USAGE"), /--commit must be a commit number/, `${cmd} --commit=${bad}`);
      assert.equal(r.stdout, "");
    }
    assert.equal(fs.existsSync(path.join(dir, "out2")), false);
  });
});

describe("bfc recover", () => {
  it("a torn tail (garbage after the last commit): readers skip it, --dry-run reports, recover cuts it", async () => {
    const { dir, file } = await setup({ "a.txt": "a" });
    await libCommit(file, (c) => c.addFile("b.txt", Buffer.from("b")));
    const complete = fs.readFileSync(file);
    // The leftovers of an interrupted commit: objects with no index or footer after them.
    const garbage = Buffer.concat([Buffer.from("BFCFv1\0\0"), Buffer.alloc(700, 0x5a)]);
    fs.appendFileSync(file, garbage);
    const list = ok(run(dir, ["list", "c.bfc"]));
    assert.deepEqual(lines(list.stdout), ["a.txt", "b.txt"]);
    const warning = `bfc: list: warning: ${garbage.length} bytes after the last complete commit belong to an interrupted commit; 'bfc recover' removes them`;
    assert.deepEqual(lines(list.stderr), [warning]);
    const info = lines(ok(run(dir, ["info", "c.bfc"])).stdout);
    assert.ok(
      info.includes(
        `Torn tail: ${garbage.length} bytes of an interrupted commit ('bfc recover' removes them)`,
      ),
    );
    assert.equal(JSON.parse(ok(run(dir, ["log", "--json", "c.bfc"])).stdout).torn_tail, garbage.length);

    const same = unchanged(file);
    const dry = ok(run(dir, ["recover", "--dry-run", "c.bfc"]));
    assert.deepEqual(lines(dry.stdout), [
      `Would remove ${garbage.length} bytes after commit 2 (offset ${complete.length}).`,
    ]);
    same();
    const r = ok(run(dir, ["recover", "c.bfc"]));
    assert.deepEqual(lines(r.stdout), [
      `Removed ${garbage.length} bytes of an interrupted commit; 'c.bfc' is at commit 2.`,
    ]);
    const after = fs.readFileSync(file);
    assert.ok(after.equals(complete), "recover must cut exactly the torn tail");
    // The reference's view: the last 56 bytes are a footer whose index lies right before it and
    // whose checksum matches.
    const footer = after.subarray(after.length - 56);
    assert.equal(footer.subarray(0, 8).toString("latin1"), "BFCFIDX\0");
    assert.equal(footer.subarray(48).toString("latin1"), "BFCFEND\0");
    const indexSize = Number(footer.readBigUInt64LE(8));
    const indexOffset = Number(footer.readBigUInt64LE(20));
    assert.equal(indexOffset + indexSize, after.length - 56);
    assert.equal(crc32c(after.subarray(indexOffset, indexOffset + indexSize)), footer.readUInt32LE(16));
    assert.deepEqual(lines(ok(run(dir, ["recover", "c.bfc"])).stdout), [
      "'c.bfc' ends with a complete commit (2); nothing to recover.",
    ]);
    assert.equal(ok(run(dir, ["list", "c.bfc"])).stderr, "");
  });

  it("a commit cut short inside its index: recover returns to the previous commit", async () => {
    const { dir, file } = await setup({ "a.txt": "a" });
    const first = fs.statSync(file).size;
    await libCommit(file, (c) => c.addFile("b.txt", Buffer.from("b")));
    fs.truncateSync(file, fs.statSync(file).size - 60);
    assert.deepEqual(lines(ok(run(dir, ["list", "c.bfc"])).stdout), ["a.txt"]);
    ok(run(dir, ["recover", "c.bfc"]));
    assert.equal(fs.statSync(file).size, first);
    ok(run(dir, ["verify", "--deep", "c.bfc"]));
    failed(run(dir, ["recover", "none.bfc"]), "recover", 1, "ENOENT");
  });
});

describe("bfc compact", () => {
  async function history(): Promise<{ dir: string; file: string }> {
    const s = await setup({ "a.txt": "a".repeat(300), "d/": "", "d/x.txt": "x" });
    await libCommit(s.file, (c) => c.addFile("a.txt", Buffer.from("A".repeat(500))), "replace a");
    await libCommit(s.file, (c) => c.remove("d", { recursive: true }), "drop d");
    await libCommit(s.file, (c) => c.rename("a.txt", "b.txt"));
    return s;
  }

  it("--keep-history -o: log and every --commit N listing and digest stay the same", async () => {
    const { dir, file } = await history();
    const same = unchanged(file);
    const r = ok(run(dir, ["compact", "--keep-history", "-o", "kh.bfc", "c.bfc"]));
    assert.match(
      lines(r.stdout)[0] ?? "",
      /^Compacted 'kh\.bfc': \d+ -> \d+ bytes \([-+]\d+\), 4 commits, 1 entries\.$/,
    );
    fs.unlinkSync(path.join(dir, "kh.bfc"));
    same();
    ok(run(dir, ["compact", "--keep-history", "-o", "kh.bfc", "c.bfc"]));
    const strip = (doc: { commits: Record<string, unknown>[] }) =>
      doc.commits.map(({ end: _e, bytes: _b, ...rest }) => rest);
    const before = JSON.parse(ok(run(dir, ["log", "--json", "c.bfc"])).stdout);
    const after = JSON.parse(ok(run(dir, ["log", "--json", "kh.bfc"])).stdout);
    assert.equal(after.commits.length, 4);
    assert.deepEqual(strip(after), strip(before));
    for (let n = 1; n <= 4; n++) {
      const want = ok(run(dir, ["list", "-l", "-c", "--commit", String(n), "c.bfc"])).stdout;
      assert.equal(
        ok(run(dir, ["list", "-l", "-c", "--commit", String(n), "kh.bfc"])).stdout,
        want,
        `commit ${n}`,
      );
      const want2 = await digestOf(file, { commit: n });
      assert.equal(await digestOf(path.join(dir, "kh.bfc"), { commit: n }), want2, `digest of commit ${n}`);
    }
    failed(run(dir, ["compact", "-o", "kh.bfc", "c.bfc"]), "compact", 1, "ALREADY_EXISTS");
    ok(run(dir, ["compact", "-f", "-o", "kh.bfc", "c.bfc"]));
    assert.equal(JSON.parse(ok(run(dir, ["log", "--json", "kh.bfc"])).stdout).commits.length, 1);
  });

  it("in place: only the live objects of the latest commit remain; nothing else is left behind", async () => {
    const { dir, file } = await history();
    const listing = ok(run(dir, ["list", "-l", "-c", "c.bfc"])).stdout;
    const digest = await digestOf(file);
    const size = fs.statSync(file).size;
    const r = ok(run(dir, ["compact", "c.bfc"]));
    const after = fs.statSync(file).size;
    assert.deepEqual(lines(r.stdout), [
      `Compacted 'c.bfc': ${size} -> ${after} bytes (-${size - after}), 1 commit, 1 entries.`,
    ]);
    assert.ok(after < size);
    assert.equal(ok(run(dir, ["list", "-l", "-c", "c.bfc"])).stdout, listing);
    assert.equal(await digestOf(file), digest);
    const rd = await open(file);
    assert.equal(rd.commits().length, 1);
    rd.close();
    assert.deepEqual(fs.readdirSync(dir), ["c.bfc"]);
    ok(run(dir, ["verify", "--deep", "c.bfc"]));
    failed(run(dir, ["compact", "none.bfc"]), "compact", 1, "ENOENT");
  });
});

describe("bfc limits", () => {
  const LIMITS_JSON = ["limits", "usage"];

  it("show (text and --json), set, exceed with add (nothing changes), set below usage, --clear", async () => {
    const { dir, file } = await setup({ "a.txt": "aaaa", "d/": "", "d/b.txt": "bb" });
    const size = fs.statSync(file).size;
    const show = ok(run(dir, ["limits", "c.bfc"]));
    assert.deepEqual(lines(show.stdout), [
      "files                        2 / unlimited",
      "directories                  1 / unlimited",
      "total bytes                  6 / unlimited",
      "largest file                 4 / unlimited",
    ]);
    const none = JSON.parse(ok(run(dir, ["limits", "--json", "c.bfc"])).stdout);
    assert.deepEqual(Object.keys(none), LIMITS_JSON);
    assert.deepEqual(none, {
      limits: { max_files: null, max_directories: null, max_total_bytes: null, max_file_size: null },
      usage: { files: 2, directories: 1, total_bytes: 6, largest_file: 4 },
    });
    assert.equal(fs.statSync(file).size, size, "showing limits does not commit");

    const set = ok(run(dir, ["limits", "c.bfc", "--max-files", "3", "--max-bytes", "1k", "--max-dirs", "2"]));
    assert.match(lines(set.stdout)[0] ?? "", COMMITTED);
    assert.equal(lines(set.stdout)[1], "files                        2 / 3");
    const doc = JSON.parse(ok(run(dir, ["limits", "--json", "c.bfc"])).stdout);
    assert.deepEqual(doc.limits, {
      max_files: 3,
      max_directories: 2,
      max_total_bytes: 1024,
      max_file_size: null,
    });
    const rd = await open(file);
    assert.equal(rd.extension.commitInfo?.message, "limits");
    rd.close();

    writeTree(dir, { "f1.txt": "1", "f2.txt": "2", "big.bin": Buffer.alloc(2000) });
    const same = unchanged(file);
    const files = failed(run(dir, ["add", "c.bfc", "f1.txt", "f2.txt"]), "add", 1, "RESOURCE_LIMIT_EXCEEDED");
    assert.equal(files, "'f2.txt': maxFiles limit exceeded (4 > 3)");
    const bytes = failed(run(dir, ["add", "c.bfc", "big.bin"]), "add", 1, "RESOURCE_LIMIT_EXCEEDED");
    assert.match(bytes, /maxTotalBytes limit exceeded \(2006 > 1024\)/);
    const dirs = failed(
      run(dir, ["add", "-C", "x/y", "c.bfc", "f1.txt"]),
      "add",
      1,
      "RESOURCE_LIMIT_EXCEEDED",
    );
    assert.match(dirs, /maxDirectories limit exceeded \(3 > 2\)/);
    const below = failed(
      run(dir, ["limits", "c.bfc", "--max-files", "1"]),
      "limits",
      1,
      "RESOURCE_LIMIT_EXCEEDED",
    );
    assert.equal(below, "maxFiles limit 1 is below what the container holds (2)");
    failed(run(dir, ["limits", "c.bfc", "--max-bytes", "5"]), "limits", 1, "RESOURCE_LIMIT_EXCEEDED");
    // Bad values are usage errors, found before the container is even opened.
    failed(run(dir, ["limits", "c.bfc", "--max-files", "many"]), "limits", 2, "USAGE");
    failed(run(dir, ["limits", "none.bfc", "--max-file-size", "1x"]), "limits", 2, "USAGE");
    same();
    ok(run(dir, ["add", "c.bfc", "f1.txt"]));

    // Setting with --json prints the one document and nothing else.
    const one = JSON.parse(
      ok(run(dir, ["limits", "--json", "c.bfc", "--max-file-size", "1K", "--max-files", "unlimited"])).stdout,
    );
    assert.deepEqual(one.limits, {
      max_files: null,
      max_directories: 2,
      max_total_bytes: 1024,
      max_file_size: 1024,
    });
    assert.deepEqual(one.usage, { files: 3, directories: 1, total_bytes: 7, largest_file: 4 });
    ok(run(dir, ["limits", "--clear", "c.bfc"]));
    const cleared = JSON.parse(ok(run(dir, ["limits", "--json", "c.bfc"])).stdout);
    assert.deepEqual(cleared.limits, none.limits);
    ok(run(dir, ["add", "c.bfc", "f2.txt", "big.bin"]));
  });
});

describe("bfc keygen, sign, verify --pubkey", () => {
  it("keygen writes a key pair once; it never overwrites and never leaves half a pair", async () => {
    const dir = freshDir();
    const r = ok(run(dir, ["keygen", "k.pem", "k.pub"]));
    assert.deepEqual(lines(r.stdout), ["Wrote k.pem (keep it secret) and k.pub"]);
    assert.equal(fs.statSync(path.join(dir, "k.pem")).mode & 0o777, 0o600);
    assert.match(fs.readFileSync(path.join(dir, "k.pem"), "utf8"), /^-----BEGIN PRIVATE KEY-----\n/);
    assert.match(fs.readFileSync(path.join(dir, "k.pub"), "utf8"), /^-----BEGIN PUBLIC KEY-----\n/);
    const key = fs.readFileSync(path.join(dir, "k.pem"));
    failed(run(dir, ["keygen", "k.pem", "other.pub"]), "keygen", 1, "EEXIST");
    failed(run(dir, ["keygen", "other.pem", "k.pub"]), "keygen", 1, "EEXIST");
    assert.deepEqual(fs.readdirSync(dir).sort(), ["k.pem", "k.pub"]);
    assert.ok(fs.readFileSync(path.join(dir, "k.pem")).equals(key));
    failed(run(dir, ["keygen", "only-one.pem"]), "keygen", 2, "USAGE");
  });

  it("sign -m; verify with the right key, another key, an unsigned or later commit, tampered content", async () => {
    const { dir, file } = await setup({ "a.txt": "signed content", "b.txt": "other" });
    ok(run(dir, ["keygen", "k.pem", "k.pub"]));
    ok(run(dir, ["keygen", "other.pem", "other.pub"]));
    const unsigned = run(dir, ["verify", "--pubkey", "k.pub", "c.bfc"]);
    assert.equal(
      failed(unsigned, "verify", 1, "SIGNATURE_INVALID"),
      "signature check failed: commit 1 is not signed",
    );
    assert.match(unsigned.stdout, /Verification failed after/);

    const same = unchanged(file);
    failed(run(dir, ["sign", "c.bfc"]), "sign", 2, "USAGE");
    failed(run(dir, ["sign", "--key", "k.pub", "c.bfc"]), "sign", 1, "BAD_KEY");
    failed(run(dir, ["sign", "--key", "none.pem", "c.bfc"]), "sign", 1, "ENOENT");
    same();
    const s = ok(run(dir, ["sign", "--key", "k.pem", "-m", "release 1.0", "c.bfc"]));
    const out = lines(s.stdout);
    assert.equal(out[0], "Signed commit 2 of 'c.bfc'");
    assert.equal(out[1], `root digest ${await digestOf(file)}`);
    const pub = /^public key {2}([0-9a-f]{64})$/.exec(out[2] ?? "")?.[1];
    assert.ok(pub, out[2]);
    assert.match(lines(ok(run(dir, ["log", "c.bfc"])).stdout)[0] ?? "", / {2}\[signed\] {2}release 1\.0$/);

    const good = ok(run(dir, ["verify", "--pubkey", "k.pub", "c.bfc"]));
    assert.ok(lines(good.stdout).includes(`Signature valid (Ed25519 key ${pub})`), good.stdout);
    const json = JSON.parse(
      ok(run(dir, ["verify", "--json", "--deep", "--pubkey", "k.pub", "c.bfc"])).stdout,
    );
    assert.deepEqual(json.signature, { ok: true, key: pub });
    assert.equal(json.ok, true);
    const other = run(dir, ["verify", "--pubkey", "other.pub", "c.bfc"]);
    assert.equal(
      failed(other, "verify", 1, "SIGNATURE_INVALID"),
      "signature check failed: the commit was signed with a different key",
    );
    // A key file that cannot be read fails before any verification output.
    const missing = run(dir, ["verify", "--pubkey", "none.pub", "c.bfc"]);
    failed(missing, "verify", 1, "ENOENT");
    assert.equal(missing.stdout, "");
    fs.writeFileSync(path.join(dir, "junk.pub"), "not a key\n");
    failed(run(dir, ["verify", "--pubkey", "junk.pub", "c.bfc"]), "verify", 1, "BAD_KEY");

    // One content byte changed in a copy: the signed digest no longer matches.
    const tampered = fs.readFileSync(file);
    const at = tampered.indexOf("signed content");
    assert.ok(at > 0);
    tampered[at] ^= 0x20;
    fs.writeFileSync(path.join(dir, "t.bfc"), tampered);
    const t = run(dir, ["verify", "--pubkey", "k.pub", "t.bfc"]);
    assert.equal(t.code, 1);
    assert.match(
      failed(t, "verify", 1, "CRC_MISMATCH"),
      /^cannot check the signature: 'a\.txt': checksum mismatch/,
    );
    assert.match(t.stdout, /Verification failed after/);
    const tj = run(dir, ["verify", "--json", "--pubkey", "k.pub", "t.bfc"]);
    assert.equal(tj.code, 1);
    const tdoc = JSON.parse(tj.stdout);
    assert.equal(tdoc.ok, false);
    assert.deepEqual(tdoc.signature, { ok: false, key: pub });
    assert.deepEqual(
      tdoc.problems.map((p: { path: string | null; reason: string }) => [p.path, p.reason]),
      [["a.txt", "CRC_MISMATCH"]],
    );

    // Any later commit drops the signature; the signed commit still verifies.
    fs.writeFileSync(path.join(dir, "new.txt"), "new");
    ok(run(dir, ["add", "c.bfc", "new.txt"]));
    const later = run(dir, ["verify", "--pubkey", "k.pub", "c.bfc"]);
    assert.equal(
      failed(later, "verify", 1, "SIGNATURE_INVALID"),
      "signature check failed: commit 3 is not signed",
    );
    ok(run(dir, ["verify", "--pubkey", "k.pub", "--commit", "2", "c.bfc"]));
  });
});

/** `bfc …` as a child process that runs alongside the test; stderr is readable while it runs. */
function spawnBfc(dir: string, args: string[]): { stderr: () => string; done: Promise<RunResult> } {
  const child = spawn(process.execPath, [MAIN, ...args], { cwd: dir, env: { ...process.env, TZ: "UTC" } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const done = new Promise<RunResult>((resolve) => {
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
  return { stderr: () => stderr, done };
}

/** A helper process holding the container's update lock until release() (see lock-holder.ts). */
async function holdLock(file: string): Promise<{ pid: number; release: () => Promise<void> }> {
  const child = spawn(process.execPath, [path.join(import.meta.dirname, "lock-holder.ts"), file], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  let out = "";
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("locked\n")) resolve();
    });
    child.on("exit", (code) => reject(new Error(`lock holder exited (${code}) before locking`)));
  });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  return {
    pid: child.pid ?? -1,
    release: async () => {
      child.stdin.end("release\n");
      await exited;
    },
  };
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

describe("the update lock", () => {
  it("a second updater fails with LOCKED while a live process holds the lock; --wait succeeds once it is released", async () => {
    const { dir, file } = await setup({ "a.txt": "a" });
    writeTree(dir, { "b.txt": "b", "c.txt": "c" });
    const holder = await holdLock(file);
    let released = false;
    try {
      const same = unchanged(file);
      const what = failed(run(dir, ["add", "c.bfc", "b.txt"]), "add", 1, "LOCKED");
      assert.match(
        what,
        new RegExp(`^'c\\.bfc' is being updated by another process \\(pid ${holder.pid}\\); lock file `),
      );
      failed(run(dir, ["rm", "c.bfc", "a.txt"]), "rm", 1, "LOCKED");
      failed(run(dir, ["compact", "c.bfc"]), "compact", 1, "LOCKED");
      failed(run(dir, ["recover", "c.bfc"]), "recover", 1, "LOCKED");
      same();
      // Readers need no lock.
      assert.deepEqual(lines(ok(run(dir, ["list", "c.bfc"])).stdout), ["a.txt"]);

      const waiting = spawnBfc(dir, ["add", "-v", "--wait", "60", "c.bfc", "b.txt"]);
      // Released only once the updater is at the lock, so it really has to wait for it.
      assert.ok(
        await until(() => waiting.stderr().includes("Opening container for update"), 120_000),
        waiting.stderr(),
      );
      await new Promise((r) => setTimeout(r, 300));
      await holder.release();
      released = true;
      const r = await waiting.done;
      assert.equal(r.code, 0, r.stderr);
      assert.match(lines(r.stdout)[0] ?? "", COMMITTED);
    } finally {
      if (!released) await holder.release();
    }
    assert.deepEqual(await paths(file), ["a.txt", "b.txt"]);
    // A lock left by a process that is gone is taken over.
    const gone = spawn(process.execPath, ["-e", ""]);
    const pid = gone.pid ?? 0;
    await new Promise((r) => gone.on("exit", r));
    fs.writeFileSync(ContainerLock.lockPath(file), `${pid}\n`);
    ok(run(dir, ["add", "c.bfc", "c.txt"]));
    assert.deepEqual(await paths(file), ["a.txt", "b.txt", "c.txt"]);
    assert.equal(fs.existsSync(ContainerLock.lockPath(file)), false);
  });
});

describe("--help of the update commands", () => {
  const help: Record<string, string[]> = {
    add: ["<container>", "<inputs...>", "--into", "--message", "--compression", "--password-file", "--wait"],
    rm: ["<paths...>", "--recursive", "--force", "--message", "--wait"],
    mv: ["<from>", "<to>", "--message", "--wait"],
    log: ["<container>", "--json", "--commit N"],
    recover: ["<container>", "--dry-run"],
    compact: ["--keep-history", "--output", "--force", "--wait"],
    limits: ["--max-files", "--max-dirs", "--max-bytes", "--max-file-size", "--clear", "--json"],
    sign: ["--key", "--message", "verify --pubkey"],
    keygen: ["<private>", "<public>"],
    // The reading commands share --commit <n>; verify stands for them.
    verify: ["--pubkey", "--commit <n>", "--root"],
  };
  it("each exits 0 and names its options", () => {
    for (const [cmd, words] of Object.entries(help)) {
      const r = ok(bfc([cmd, "--help"]));
      assert.ok(r.stdout.startsWith(`Usage: bfc ${cmd} `), r.stdout);
      for (const w of words) assert.ok(r.stdout.includes(w), `${cmd} --help lacks ${w}`);
      assert.equal(r.stderr, "");
    }
  });
});
