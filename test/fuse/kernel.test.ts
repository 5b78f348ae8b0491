/**
 * The kernel-protocol backend through real mounts: a directory too large for one READDIRPLUS reply
 * (offsets across chunks), many parallel readers against several serving threads, a writable VFS
 * served by this process (every write operation from a shell), SIGINT in the foreground, and the
 * fuse-native fallback still serving the same tree. Leak checks as in mount.test.ts.
 *
 * Skipped, with the reason printed, where the kernel backend cannot run (no /dev/fuse, not root).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { Writer } from "../../src/container/writer.ts";
import { kernelBackendUnavailable } from "../../src/fuse/kernel-mount.ts";
import { mountFuse } from "../../src/fuse/mount.ts";
import { createVfs } from "../../src/vfs/index.ts";
import { sha256 } from "../helpers.ts";
import {
  bfc,
  generateTree,
  mountsUnder,
  nativeSkipReason,
  run,
  SuiteRoot,
  servingPids,
  sh,
  sha256sums,
  spawnForeground,
  type TreeInfo,
  umountCli,
  waitFor,
} from "./fuse-helpers.ts";

const SKIP = kernelBackendUnavailable() ?? (fs.existsSync("/dev/fuse") ? undefined : "/dev/fuse is absent");
if (SKIP) console.log(`# kernel-protocol FUSE tests skipped: ${SKIP}`);
const NATIVE_SKIP = nativeSkipReason();

/** Names of the huge directory: long enough that it needs several 1 MiB READDIRPLUS replies. */
const HUGE = 20_000;
const hugeName = (k: number) =>
  `entry-${String(k).padStart(6, "0")}-${"n".repeat(k % 40)}${k % 13 ? "" : " ü"}`;

describe("bfc mount, kernel protocol", { skip: SKIP ?? false }, () => {
  let root: SuiteRoot;
  let src: string;
  let tree: TreeInfo;
  let container: string;
  let expected: Map<string, string>;

  before(async () => {
    root = new SuiteRoot("bfc-kfuse-");
    src = root.path("src");
    tree = generateTree(src);
    fs.mkdirSync(path.join(src, "huge"));
    for (let k = 0; k < HUGE; k++) fs.writeFileSync(path.join(src, "huge", hugeName(k)), `${k}\n`);
    container = root.path("tree.bfc");
    const w = await Writer.create(container, { compression: "zstd" });
    await w.addTree(src, "");
    await w.finish();
    expected = new Map(tree.files.map((f) => [f, sha256(fs.readFileSync(path.join(src, f)))]));
  });

  after(async () => {
    await root?.cleanup();
  });

  async function mount(t: TestContext, name: string, args: string[] = []): Promise<string> {
    const mnt = root.mountpoint(name);
    t.after(() => root.release(mnt));
    const r = await bfc(["mount", ...args, container, mnt]);
    assert.equal(r.code, 0, `bfc mount failed: ${r.stderr}`);
    assert.ok(mountsUnder(mnt).includes(mnt));
    return mnt;
  }

  it(`a directory of ${HUGE.toLocaleString("en-US")} entries lists completely, in order, with attributes`, async (t) => {
    const mnt = await mount(t, "huge");
    // ls -f: raw directory order, "." and ".." included; the server's order is byte order
    const ls = await run("ls", ["-f", path.join(mnt, "huge")]);
    assert.equal(ls.code, 0, ls.stderr);
    const names = ls.stdout.toString("utf8").split("\n").filter(Boolean);
    const want = Array.from({ length: HUGE }, (_, k) => hugeName(k)).sort((a, b) =>
      Buffer.compare(Buffer.from(a), Buffer.from(b)),
    );
    assert.deepEqual(names, [".", "..", ...want]);
    // the listing gave the kernel every entry's attributes: sizes straight from the cache
    const stat = await sh('cd "$1" && find . -type f -printf "%s %P\\n" | sort', [path.join(mnt, "huge")]);
    const sizes = stat.stdout.toString("utf8").split("\n").filter(Boolean);
    assert.equal(sizes.length, HUGE);
    for (const line of sizes.slice(0, 500)) {
      const [size, name] = [line.slice(0, line.indexOf(" ")), line.slice(line.indexOf(" ") + 1)];
      assert.equal(Number(size), fs.statSync(path.join(src, "huge", name)).size, name);
    }
    await umountCli(root, mnt);
  });

  it("32 parallel readers against 4 serving threads hash every file right", async (t) => {
    const log = root.path("threads.log");
    const mnt = await mount(t, "threads", ["--threads", "4", "--debug", "--log", log]);
    const results = await Promise.all(Array.from({ length: 32 }, () => sha256sums(mnt, tree.files)));
    for (const got of results) assert.deepEqual(got, expected);
    await umountCli(root, mnt);
    assert.match(fs.readFileSync(log, "utf8"), /serving .* with 4 threads \(kernel protocol\)/);
  });

  it("SIGINT in the foreground unmounts and exits 0", async (t) => {
    const mnt = root.mountpoint("sigint");
    t.after(() => root.release(mnt));
    const fg = spawnForeground(root, [container, mnt]);
    assert.ok(await waitFor(() => mountsUnder(mnt).includes(mnt), 15_000), "mount did not appear");
    const cat = await run("cat", [path.join(mnt, "hello.txt")]);
    assert.equal(cat.stdout.toString(), "hello world\n");
    process.kill(fg.pid, "SIGINT");
    const end = await fg.exited;
    assert.equal(end.code, 0, end.stderr);
    assert.deepEqual(mountsUnder(mnt), []);
  });

  it("the fuse-native backend (--fuse-backend native) serves the same tree", {
    skip: NATIVE_SKIP ?? false,
  }, async (t) => {
    const mnt = await mount(t, "native", ["--fuse-backend", "native"]);
    assert.deepEqual(await sha256sums(mnt, tree.files), expected);
    const ls = await run("ls", ["-f", path.join(mnt, "huge")]);
    assert.equal(ls.stdout.toString("utf8").split("\n").filter(Boolean).length, HUGE + 2);
    await umountCli(root, mnt);
  });

  it("a writable memory VFS served by this process: every write a shell makes lands in the VFS", async (t) => {
    const vfs = createVfs();
    vfs.mountSync("memory", "/");
    vfs.mkdirSync("/pre");
    vfs.writeFileSync("/pre/old.txt", "old\n");
    const mnt = root.mountpoint("memory");
    const m = await mountFuse(vfs, mnt, { backend: "kernel" });
    const stop = () => m.unmount();
    root.inProcess.add(stop);
    t.after(async () => {
      root.inProcess.delete(stop);
      await m.unmount();
    });
    assert.equal(m.backend, "kernel");
    const script = `
      set -e
      cd "$1"
      mkdir -p a/b
      printf 'hello\\n' > a/b/f.txt
      printf 'more\\n' >> a/b/f.txt
      dd if=/dev/zero of=a/zeros bs=4096 count=300 status=none
      truncate -s 5000 a/zeros
      chmod 600 a/b/f.txt
      touch -m -d @1600000000 a/b/f.txt
      ln -s b/f.txt a/link
      mv pre/old.txt a/renamed.txt
      rmdir pre
      cat a/link
      mv a/b a/c
      rm a/zeros
      ls -A a
    `;
    const r = await sh(script, [mnt]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), "hello\nmore\nc\nlink\nrenamed.txt\n");
    assert.equal(vfs.readFileSync("/a/c/f.txt", "utf8"), "hello\nmore\n");
    const st = vfs.statSync("/a/c/f.txt");
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.mtimeMs, 1_600_000_000_000);
    assert.equal(vfs.readlinkSync("/a/link"), "b/f.txt");
    assert.equal(vfs.readFileSync("/a/renamed.txt", "utf8"), "old\n");
    assert.deepEqual(vfs.readdirSync("/"), ["a"]);
    assert.equal(vfs.existsSync("/a/zeros"), false);
    const bad = await sh('cd "$1" && rmdir a', [mnt]);
    assert.match(bad.stderr, /not empty/);
    await m.unmount();
    assert.deepEqual(mountsUnder(mnt), []);
  });

  it("leaves no mounts and no serving processes behind", async () => {
    assert.ok(
      await waitFor(() => servingPids(root.dir).length === 0, 5000),
      `alive: ${servingPids(root.dir)}`,
    );
    assert.deepEqual(mountsUnder(root.dir), []);
    assert.deepEqual(root.leaks, []);
  });
});
