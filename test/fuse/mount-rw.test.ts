/**
 * `bfc mount --rw`: a container served read-write through the kernel, changed by ordinary tools run
 * as child processes (sh, cp, mv, rm, ln, chmod, touch, truncate, dd), compared with the same
 * changes made to a plain folder; then the commits it made are read back with the library and the
 * CLI. The serving process is also killed with SIGKILL, at chosen and at random moments: the
 * container then holds every change fsync'ed before, nothing torn, and verifies deeply.
 *
 * Every mount lives under one fresh temp root and is released in t.after (also when a test fails);
 * skipped, with the reason printed, only where /dev/fuse is absent or no FUSE backend can run.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { Container } from "../../src/container/container.ts";
import { type Entry, Reader } from "../../src/container/reader.ts";
import { verify } from "../../src/container/verify.ts";
import { Writer } from "../../src/container/writer.ts";
import { prng, randomBytes, sha256 } from "../helpers.ts";
import {
  bfc,
  FUSERMOUNT,
  fuseSkipReason,
  generateTree,
  mountsUnder,
  run,
  SuiteRoot,
  servingPids,
  sh,
  sleep,
  umountCli,
  waitFor,
} from "./fuse-helpers.ts";

const SKIP = fuseSkipReason();
if (SKIP) console.log(`# bfc mount --rw tests skipped: ${SKIP}`);

/** What a shell session does, run once in a plain folder and once in the mount (cwd); $1: 3 MB of data. */
const SESSION = `set -e
echo new > new.txt
mkdir -p made/deeper/still
printf 'nested\\n' > made/deeper/still/n.txt
mv hello.txt made/hello-moved.txt
mv "with space" "renamed dir"
rm -r docs/guide
rm many/file-003.bin
rmdir empty-dir
ln -s made/hello-moved.txt new-link
chmod 700 run.sh
chmod 750 made
touch -d '2001-02-03 04:05:06.5' new.txt
truncate -s 5000 many/file-001.txt
truncate -s 10 a/b/c/d/deep.bin
dd if=/dev/zero of=many/file-002.txt bs=1 count=7 seek=3 conv=notrunc status=none
echo appended >> secret.txt
cp -r a copy-of-a
cat "$1" > big.bin
cp big.bin big-copy.bin
mv big-copy.bin made/
: > emptied.txt
ln -sf run.sh link-to-file
`;

/** type, mode, size (files), link target and path of everything under `dir`, sorted. */
async function shape(dir: string): Promise<string[]> {
  const r = await run("find", [dir, "-mindepth", "1", "-printf", "%y %m %s %l %P\\0"]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .toString("utf8")
    .split("\0")
    .filter(Boolean)
    .map((rec) => {
      const [y, m, s, ...rest] = rec.split(" ");
      return [y, m, y === "d" ? "-" : s, ...rest].join(" ");
    })
    .sort();
}

/** sha256 of every regular file under `dir` (by relative path), read by a child process. */
async function hashes(dir: string): Promise<string[]> {
  const r = await sh(`cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum`, [dir]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.toString("utf8").split("\n").filter(Boolean);
}

function entriesOf(r: Reader): Entry[] {
  return Array.from({ length: r.count }, (_, i) => r.entryAt(i));
}

async function buildBfc(srcDir: string, file: string): Promise<void> {
  const w = await Writer.create(file, { compression: "zstd" });
  await w.addTree(srcDir, "");
  await w.finish();
}

describe("bfc mount --rw (FUSE)", { skip: SKIP ?? false }, () => {
  let root: SuiteRoot;
  let src: string;

  before(() => {
    root = new SuiteRoot("bfc-fuse-rw-");
    src = root.path("src");
    generateTree(src);
  });

  after(async () => {
    await root?.cleanup();
  });

  /** `bfc mount --rw` in the background; unmounted after the test unless it was already. */
  async function mountRw(t: TestContext, file: string, name: string, args: string[] = []): Promise<string> {
    const mnt = root.mountpoint(name);
    t.after(() => root.release(mnt));
    const r = await bfc(["mount", "--rw", ...args, file, mnt]);
    assert.equal(r.code, 0, `bfc mount --rw failed: ${r.stderr}`);
    assert.ok(mountsUnder(mnt).includes(mnt), "not mounted");
    return mnt;
  }

  /** SIGKILL the serving process of `mnt`, then detach the dead mount as a user would. */
  async function killServer(mnt: string): Promise<void> {
    const pids = servingPids(root.dir, mnt);
    assert.equal(pids.length, 1, "one serving process");
    process.kill(pids[0] as number, "SIGKILL");
    assert.ok(await waitFor(() => servingPids(root.dir, mnt).length === 0, 5000), "server survived SIGKILL");
    const r = await bfc(["umount", mnt]);
    if (mountsUnder(mnt).includes(mnt)) await run(FUSERMOUNT, ["-uz", mnt]);
    assert.ok(!mountsUnder(mnt).includes(mnt), `dead mount still attached (${r.stderr.trim()})`);
  }

  /** Deep verify of the latest commit; `tornOk`: a kill may have landed inside a commit. */
  async function deepVerify(file: string, options: { key?: Buffer; tornOk?: boolean } = {}): Promise<void> {
    const { tornOk, ...open } = options;
    const r = await Reader.open(file, open);
    try {
      if (!tornOk) assert.equal(r.tornTail, 0, "no torn tail after a clean commit");
      const report = await verify(r, { deep: true });
      assert.equal(report.ok, true, JSON.stringify(report.problems.slice(0, 3)));
    } finally {
      r.close();
    }
  }

  it("a shell session on the mount equals the same session on a folder, during and after unmount; unchanged content is not rewritten", async (t) => {
    const file = root.path("session.bfc");
    await buildBfc(src, file);
    const before = fs.statSync(file).size;
    const plain = root.path("session-plain");
    assert.equal((await run("cp", ["-a", src, plain])).code, 0);
    const big = root.path("big-source.bin");
    fs.writeFileSync(big, randomBytes(3_000_000, 3));
    const host = await sh(SESSION, [big], { cwd: plain });
    assert.equal(host.code, 0, host.stderr);

    const mnt = await mountRw(t, file, "session", ["--commit-interval", "0"]);
    const done = await sh(SESSION, [big], { cwd: mnt });
    assert.equal(done.code, 0, done.stderr);
    assert.deepEqual(await shape(mnt), await shape(plain), "the live mount");
    assert.deepEqual(await hashes(mnt), await hashes(plain));
    const touched = await run("stat", ["-c", "%y", path.join(mnt, "new.txt")]);
    assert.equal(touched.stdout.toString().trim(), "2001-02-03 04:05:06.500000000 +0000");
    await umountCli(root, mnt);

    // One commit at unmount, over the original one; the reference-visible layout is checked by
    // the commit tests, here what the mount made: the same tree, read back by extraction.
    const r = await Reader.open(file);
    try {
      assert.equal(r.commit, 2);
      assert.equal(r.commits().length, 2);
    } finally {
      r.close();
    }
    const out = root.path("session-extracted");
    const x = await bfc(["extract", "-k", file, "-C", out]);
    assert.equal(x.code, 0, x.stderr);
    assert.deepEqual(await shape(out), await shape(plain), "the committed tree");
    assert.deepEqual(await hashes(out), await hashes(plain));
    await deepVerify(file);
    // New content (stored as is: no -c): big.bin and its copy, the copied folder, a few small
    // files, and the new index. Everything else (moved and renamed files too) was carried over.
    // Checked by where each file's bytes are: before the old end for what the session left alone
    // or only chmod'ed; after it for what it wrote.
    const rd = await Reader.open(file);
    try {
      const rewritten = ["a/b/c/d/deep.bin", "many/file-001.txt", "many/file-002.txt"];
      let carried = 0;
      for (const e of entriesOf(rd)) {
        if (e.type !== "file" || e.size === 0) continue;
        const at = rd.payloadRange(rd.find(e.path)).offset;
        // Moved files (mv hello.txt, mv "with space") keep their objects too: the index records
        // the name each object was written under.
        const moved = e.path === "made/hello-moved.txt" || e.path.startsWith("renamed dir/");
        if (moved) assert.notEqual(rd.objectName(rd.find(e.path)), e.path, `${e.path}: under its old name`);
        const left = moved || /^(a|docs|many|ünïcödé)\//.test(e.path) || e.path === "run.sh";
        if (left && !rewritten.includes(e.path)) {
          assert.ok(at < before, `${e.path}: carried over, not written again`);
          carried++;
        } else assert.ok(at >= before, `${e.path}: new content, written by the commit`);
      }
      assert.ok(carried > 150, `${carried} files carried over`);
    } finally {
      rd.close();
    }
    assert.ok(fs.statSync(file).size - before < 8_000_000);
    // The older commit still reads as the original tree.
    const old = root.path("session-old");
    assert.equal((await bfc(["extract", "-k", "--commit", "1", file, "-C", old])).code, 0);
    assert.deepEqual(await hashes(old), await hashes(src));
  });

  it("fsync commits at once; SIGKILL loses only what was not synced, never the container", async (t) => {
    const file = root.path("kill.bfc");
    await buildBfc(src, file);
    const mnt = await mountRw(t, file, "kill", ["--commit-interval", "0"]);
    const synced = randomBytes(200_000, 7);
    fs.writeFileSync(root.path("synced.bin"), synced);
    let r = await sh(
      `set -e; dd if="$1" of="$2/synced.bin" bs=64k conv=fsync status=none; echo gone > "$2/unsynced.txt"; rm "$2/hello.txt"`,
      [root.path("synced.bin"), mnt],
    );
    assert.equal(r.code, 0, r.stderr);
    await killServer(mnt);

    const rd = await Reader.open(file);
    try {
      assert.equal(rd.commit, 2, "the fsync made one commit");
      assert.equal(rd.tornTail, 0);
      const names = new Set(entriesOf(rd).map((e) => e.path));
      assert.ok(names.has("synced.bin"));
      assert.ok(!names.has("unsynced.txt"), "a change after the last fsync is not committed");
      assert.ok(names.has("hello.txt"), "an unsynced removal is not committed");
      assert.equal(sha256(await rd.readFile("synced.bin")), sha256(synced));
    } finally {
      rd.close();
    }
    await deepVerify(file);

    // The dead mount left its lock and scratch folder behind: the next mount takes over.
    const again = await mountRw(t, file, "kill-again", ["--commit-interval", "0"]);
    assert.equal(fs.readFileSync(path.join(again, "synced.bin")).length, synced.length);
    r = await sh(`echo later > "$1/later.txt"`, [again]);
    assert.equal(r.code, 0, r.stderr);
    await umountCli(root, again);
    const leftovers = fs.readdirSync(path.dirname(file)).filter((n) => n.startsWith(".kill.bfc.bfc-scratch"));
    assert.deepEqual(leftovers, [], "stale scratch folders are removed");
    const c = await bfc(["cat", file, "later.txt"]);
    assert.equal(c.stdout.toString(), "later\n");
    await deepVerify(file);
  });

  it("killed at random moments while files are written and committed every second: every commit is whole", async (t) => {
    const file = root.path("storm.bfc");
    await buildBfc(src, file);
    const next = prng(0xdead);
    let lastCommit = 1;
    let everSeen = 0;
    for (let round = 0; round < 4; round++) {
      const mnt = await mountRw(t, file, `storm${round}`, ["--commit-interval", "1"]);
      // Each file is written under a temporary name and renamed into place, so any committed
      // snapshot holds only whole files; content is a function of the name.
      const writer = sh(
        `i=0; while :; do i=$((i+1)); n="r${round}-$i"; head -c $((i * 997 % 50000 + 1)) /dev/zero | tr '\\0' x > "$1/.$n.tmp" && mv "$1/.$n.tmp" "$1/$n.dat" || exit 0; [ $((i % 25)) -eq 0 ] && sync "$1/$n.dat"; done`,
        [mnt],
        { timeoutMs: 30_000 },
      );
      await sleep(800 + Math.floor(next() * 2200));
      await killServer(mnt);
      await writer;
      const rd = await Reader.open(file);
      try {
        assert.ok(rd.commit >= lastCommit, "commits only ever grow");
        lastCommit = rd.commit;
        for (const e of entriesOf(rd)) {
          if (!e.path.endsWith(".dat")) {
            assert.ok(!e.path.endsWith(".tmp") || e.size >= 0);
            continue;
          }
          everSeen++;
          const i = Number(/-(\d+)\.dat$/.exec(e.path)?.[1]);
          const data = await rd.readFile(e.path);
          assert.equal(data.length, ((i * 997) % 50000) + 1, `${e.path}: whole`);
          assert.ok(
            data.every((b) => b === 0x78),
            `${e.path}: right bytes`,
          );
        }
      } finally {
        rd.close();
      }
      // A kill inside a commit leaves its objects after the last footer: the commit before it is
      // what the container holds (the next mount takes the tail off).
      await deepVerify(file, { tornOk: true });
    }
    assert.ok(everSeen > 0, "some files were committed before the kills");
    assert.ok(lastCommit > 1);
  });

  it("resource limits answer EDQUOT to the writing process and leave the container as it was", async (t) => {
    const file = root.path("limits.bfc");
    await buildBfc(src, file);
    const r0 = await Reader.open(file);
    // Every entry but directories counts as a file.
    const files = entriesOf(r0).filter((e) => e.type !== "directory").length;
    r0.close();
    const c = await Container.openForUpdate(file);
    c.setLimits({ maxFiles: files + 2, maxFileSize: 400_000 });
    await c.commit();
    c.close();
    const mnt = await mountRw(t, file, "limits", ["--commit-interval", "0"]);
    let r = await sh(`cd "$1" && echo 1 > one && echo 2 > two && echo 3 > three`, [mnt]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /three: Disk quota exceeded/);
    r = await sh(`head -c 500000 /dev/zero > "$1/one"`, [mnt]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Disk quota exceeded/);
    // As with a disk quota: the writes that fit were taken, the one that would pass the limit not.
    const kept = fs.statSync(path.join(mnt, "one")).size;
    assert.ok(kept <= 400_000 && kept > 0, `${kept} bytes kept`);
    await umountCli(root, mnt);
    const rd = await Reader.open(file);
    try {
      const names = new Set(entriesOf(rd).map((e) => e.path));
      assert.ok(names.has("one") && names.has("two") && !names.has("three"));
      assert.equal(rd.stat("one").size, kept);
    } finally {
      rd.close();
    }
    await deepVerify(file);
  });

  it("bfc umount commits first: on a full disk it fails and stays mounted, and nothing is lost", async (t) => {
    // A 1 MiB tmpfs holds the container: 300 small files are taken (staged in memory), then the
    // commit at `bfc umount` finds no room.
    const small = root.path("small-fs");
    fs.mkdirSync(small);
    const tmpfs = await run("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", small]);
    if (tmpfs.code !== 0) {
      t.skip(`cannot mount a tmpfs here: ${tmpfs.stderr.trim()}`);
      return;
    }
    try {
      const file = path.join(small, "c.bfc");
      const w = await Writer.create(file, { compression: "none" });
      await w.addFile("first.txt", Buffer.from("first\n"));
      await w.finish();
      const log = root.path("full.log");
      const mnt = await mountRw(t, file, "full", ["--commit-interval", "1", "--log", log]);
      const written = new Map<string, Buffer>();
      for (let k = 0; k < 300; k++) {
        const data = randomBytes(4000, 7000 + k);
        fs.writeFileSync(path.join(mnt, `f${k}.bin`), data);
        written.set(`f${k}.bin`, data);
      }
      // The timer's commits fail meanwhile: the mount's log says so once, not at every attempt.
      const warnings = () =>
        (fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "").match(
          /cannot commit to .*ENOSPC.*tries again/g,
        ) ?? [];
      assert.ok(await waitFor(() => warnings().length > 0, 5000), "the failing timer commit is logged");
      await sleep(2500);
      assert.equal(warnings().length, 1, fs.readFileSync(log, "utf8"));
      const before = fs.statSync(file).size;
      let r = await bfc(["umount", mnt]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /cannot commit the changes made in .*ENOSPC.*stays mounted/);
      assert.ok(mountsUnder(mnt).includes(mnt), "still mounted");
      for (const [name, data] of written) assert.deepEqual(fs.readFileSync(path.join(mnt, name)), data, name);
      assert.equal(fs.statSync(file).size, before, "the failed commit left no bytes behind");
      // Room made: the same command now commits and unmounts.
      assert.equal((await run("mount", ["-o", "remount,size=16m", small])).code, 0);
      r = await bfc(["umount", mnt]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(!mountsUnder(mnt).includes(mnt));
      const rd = await Reader.open(file);
      try {
        assert.equal(rd.count, 301);
        for (const [name, data] of written) assert.deepEqual(await rd.readFile(name), data, name);
      } finally {
        rd.close();
      }
      await deepVerify(file);
    } finally {
      await run("umount", ["-l", small]);
    }
  });

  it("a key-encrypted container stays encrypted: new files are written with its key", async (t) => {
    const file = root.path("secret.bfc");
    const key = randomBytes(32, 42);
    const keyfile = root.path("secret.key");
    fs.writeFileSync(keyfile, key);
    const w = await Writer.create(file, { compression: "zstd", key });
    await w.addTree(src, "");
    await w.finish();
    const mnt = await mountRw(t, file, "secret", ["-K", keyfile, "-c", "zstd", "--commit-interval", "0"]);
    const r = await sh(`echo classified > "$1/new.txt" && cat "$1/hello.txt"`, [mnt]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), "hello world\n");
    await umountCli(root, mnt);
    const rd = await Reader.open(file, { key });
    try {
      const e = entriesOf(rd).find((x) => x.path === "new.txt");
      assert.ok(e?.encrypted, "the new file is encrypted");
      assert.equal((await rd.readFile("new.txt")).toString(), "classified\n");
    } finally {
      rd.close();
    }
    assert.equal(fs.readFileSync(file).includes(Buffer.from("classified")), false, "no plaintext on disk");
    await deepVerify(file, { key });
  });

  it("refuses --rw where it cannot apply, and read-write options without --rw", async () => {
    const file = root.path("opts.bfc");
    await buildBfc(src, file);
    const mnt = root.mountpoint("opts");
    let r = await bfc(["mount", "--rw", "--commit", "1", file, mnt]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--rw shows the latest commit/);
    r = await bfc(["mount", "--rw", src, mnt]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--rw applies to BFC containers only/);
    r = await bfc(["mount", "--commit-interval", "5", file, mnt]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /apply to read-write mounts \(--rw\) only/);
    r = await bfc(["mount", "--rw", "--commit-interval", "soon", file, mnt]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--commit-interval must be a number of seconds/);
    assert.deepEqual(mountsUnder(mnt), []);
  });

  it("leaves no mount or serving process behind", () => {
    assert.deepEqual(mountsUnder(root.dir), []);
    assert.deepEqual(servingPids(root.dir), []);
    assert.deepEqual(root.leaks, []);
  });
});
