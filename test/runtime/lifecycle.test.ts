/**
 * `bfc container …` end to end, as root, with runc: a busybox root filesystem packed into a BFC
 * container, served through FUSE with an overlay on top, run by runc. Everything lives under one
 * fresh temp root (its config file confines the state directory and the container paths there);
 * each test deletes what it made in t.after (also when it fails), and the suite's after() hook
 * forces whatever is left (runc delete --force, lazy unmounts, SIGKILL); the last test checks that
 * the tests' own cleanups left nothing for it.
 *
 * Skipped, with the reason printed, only where root, /dev/fuse, fuse-native, runc or a static
 * busybox is unavailable.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, it, type TestContext } from "node:test";
import { Reader } from "../../src/container/reader.ts";
import type { ContainerState } from "../../src/runtime/backend.ts";
import { BackendManager } from "../../src/runtime/manager.ts";
import { mountsAtOrUnder } from "../../src/runtime/mounts.ts";
import { bfc, type Result, run, sleep } from "../fuse/fuse-helpers.ts";
import {
  alive,
  buildRootfs,
  flipBytes,
  forceCleanup,
  makeBundle,
  ociConfig,
  processesUnder,
  runtimeSkipReason,
  tempRoot,
} from "./runtime-helpers.ts";

// Every `bfc` started here (and the serving processes) compiles its modules once, not per process.
process.env.NODE_COMPILE_CACHE ??= path.join(os.tmpdir(), "node-compile-cache");

const SKIP = runtimeSkipReason();
if (SKIP) console.log(`# container runtime tests skipped: ${SKIP}`);

/** Collects what a stream receives. */
function sink(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on("data", (d: Buffer) => chunks.push(d));
  return { stream, text: () => Buffer.concat(chunks).toString() };
}

describe("bfc container (runc, FUSE, overlay)", { skip: SKIP, concurrency: false }, () => {
  let root = "";
  let cfg = "";
  let rootfs = "";
  let m: BackendManager;
  const bundles: Record<string, string> = {};

  const stateDir = () => path.join(root, "state");
  const idDir = (id: string) => path.join(stateDir(), "containers", id);
  const bfcPath = (id: string) => path.join(root, "containers", "bfc", `${id}.bfc`);

  function writeConfig(
    file: string,
    extra: Record<string, unknown> = {},
    bfcExtra: Record<string, unknown> = {},
  ) {
    fs.writeFileSync(
      file,
      JSON.stringify({
        runtime: {
          state_dir: stateDir(),
          stop_timeout: 2,
          ...extra,
          backends: {
            bfc: {
              enabled: true,
              container_path: path.join(root, "containers", "bfc"),
              compression: "zstd",
              ...bfcExtra,
            },
            dir: { enabled: true, container_path: path.join(root, "containers", "dir") },
          },
        },
      }),
    );
    return file;
  }

  /** The `bfc container` command, for what only the CLI shows (exit codes, messages, streams). */
  function ctr(args: string[], config = cfg): Promise<Result> {
    return bfc(["container", "--config", config, ...args], { timeoutMs: 60_000 });
  }

  async function waitStatus(id: string, status: string, ms = 10_000): Promise<ContainerState> {
    const end = Date.now() + ms;
    for (;;) {
      const s = await m.state(id);
      if (s.status === status) return s;
      if (Date.now() > end) assert.fail(`container ${id} still ${s.status}, not ${status}, after ${ms} ms`);
      await sleep(100);
    }
  }

  /** Runs `id` attached through the library; the exit status and what it printed. */
  async function runAttached(id: string, manager = m, bundle?: string) {
    const out = sink();
    const err = sink();
    const status = await manager.run(id, {
      bundle,
      io: { stdin: "ignore", stdout: out.stream, stderr: err.stream },
    });
    return { status, stdout: out.text(), stderr: err.text() };
  }

  /** Deletes `id` (forced) after the test, whatever happened. */
  function cleanup(t: TestContext, ...ids: string[]) {
    t.after(async () => {
      for (const id of ids) await m.delete(id, { force: true }).catch(() => {});
    });
  }

  /** Nothing of `id` is left: no mount, no serving process, no state, no container file or folder. */
  function assertGone(id: string) {
    assert.deepEqual(mountsAtOrUnder(idDir(id)), [], "mounts left");
    assert.deepEqual(processesUnder(idDir(id)), [], "serving processes left");
    assert.equal(fs.existsSync(idDir(id)), false, "state left");
    assert.equal(fs.existsSync(bfcPath(id)), false, "container file left");
    assert.equal(fs.existsSync(path.join(root, "containers", "dir", id)), false, "container folder left");
  }

  before(() => {
    root = tempRoot("bfc-runtime-");
    rootfs = path.join(root, "rootfs-src");
    buildRootfs(rootfs);
    cfg = writeConfig(path.join(root, "config.json"));
    m = BackendManager.open({ file: cfg });
    const b = (name: string, args: string[], env: string[] = []) => {
      bundles[name] = makeBundle(path.join(root, "bundles", name), ociConfig(args, env), rootfs);
    };
    b("hello", [
      "sh",
      "-c",
      // Waits for the test to say go (a file it writes through the overlay), so "running" is observable.
      "test -f /data/count && echo again; echo run >> /data/count; echo hello from the container; cat /etc/os-release; while [ ! -f /data/go ]; do sleep 0.05; done; rm /data/go; echo done",
    ]);
    b("exit7", ["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7"]);
    b("hello-now", [
      "sh",
      "-c",
      "echo run >> /data/count; echo hello from the container; cat /etc/os-release",
    ]);
    b("sleeper", ["sleep", "1000"]);
    b("side-a", ["sh", "-c", "echo $ME > /mine; sleep 1000"], ["ME=a"]);
    b("writer", [
      "sh",
      "-c",
      "echo $(cat /data/n 2>/dev/null)x > /data/n; rm -f /etc/hostname; ln -sf /data/n /data/link; cat /data/n; sleep 1000",
    ]);
    b("side-b", ["sh", "-c", "echo $ME > /mine; sleep 1000"], ["ME=b"]);
  });

  after(() => {
    if (root) forceCleanup(root, path.join(stateDir(), "runc"));
  });

  it("create packs the bundle into <id>.bfc (config.json + rootfs/); start runs it detached: created -> running -> stopped, writes survive a restart", async (t) => {
    cleanup(t, "s1");
    const created = await ctr(["create", "s1", "--bundle", bundles.hello as string]);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout.toString(), /created s1 \(bfc: .*s1\.bfc\)/);
    let s = await m.state("s1");
    assert.equal(s.status, "created");
    assert.equal(s.pid, undefined);
    assert.equal(s.bfcfs.rootfs, "unmounted");
    const r = await Reader.open(bfcPath("s1"));
    try {
      const config = JSON.parse((await r.readFile("config.json")).toString());
      assert.equal(config.root.path, "rootfs");
      assert.deepEqual(config.process.args.slice(0, 2), ["sh", "-c"]);
      assert.equal(r.stat("rootfs/bin/busybox").mode & 0o777, 0o755);
      assert.equal(r.stat("rootfs/bin/busybox").compression, "zstd");
      assert.equal(await r.readlink("rootfs/bin/sh"), "busybox");
      assert.match((await r.readFile("rootfs/etc/os-release")).toString(), /bfcfs tiny/);
    } finally {
      r.close();
    }

    const started = await ctr(["start", "s1"]);
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout.toString(), /started s1 \(pid \d+\)/);
    s = await m.state("s1");
    assert.equal(s.status, "running");
    assert.ok(alive(s.pid), "the container process runs");
    assert.equal(s.bfcfs.rootfs, "mounted");
    const bundled = JSON.parse(fs.readFileSync(path.join(s.bundle, "config.json"), "utf8"));
    assert.equal(bundled.root.path, path.join(idDir("s1"), "rootfs"));
    const go = () => fs.writeFileSync(path.join(idDir("s1"), "rootfs", "data", "go"), "");
    go();
    await waitStatus("s1", "stopped");
    const logs = await ctr(["logs", "s1"]);
    assert.equal(
      logs.stdout.toString(),
      'hello from the container\nNAME="bfcfs tiny"\nID=bfcfs-tiny\nVERSION_ID=1\ndone\n',
    );
    // The write went to the overlay's upper directory, not into the container file.
    assert.equal(fs.readFileSync(path.join(idDir("s1"), "upper", "data", "count"), "utf8"), "run\n");
    await m.stop("s1");
    assert.equal((await m.state("s1")).bfcfs.rootfs, "unmounted");
    await m.start("s1");
    go();
    await waitStatus("s1", "stopped");
    assert.match(fs.readFileSync(m.logFile("s1"), "utf8"), /done\nagain\nhello from the container/);
    const again = await Reader.open(bfcPath("s1"));
    assert.equal(again.exists("rootfs/data/count"), false);
    again.close();
    const del = await ctr(["delete", "s1"]);
    assert.equal(del.code, 0, del.stderr);
    assertGone("s1");
  });

  it("run streams the output and exits with the process's status", async (t) => {
    cleanup(t, "r1");
    const r = await ctr(["run", "r1", "--bundle", bundles.exit7 as string]);
    assert.equal(r.code, 7, r.stderr);
    assert.equal(r.stdout.toString(), "to-stdout\n");
    assert.equal(r.stderr, "to-stderr\n");
    const s = await m.state("r1");
    assert.equal(s.status, "stopped");
    assert.equal(s.bfcfs.exitStatus, 7);
    assert.equal(s.bfcfs.rootfs, "unmounted", "run unmounts when the process ends");
    assert.match(fs.readFileSync(m.logFile("r1"), "utf8"), /to-stdout/);
    // Again through the library, the container existing already.
    const again = await runAttached("r1");
    assert.deepEqual(again, { status: 7, stdout: "to-stdout\n", stderr: "to-stderr\n" });
    await m.delete("r1");
    assertGone("r1");
  });

  it("stop ends a long-running sleep: SIGTERM (ignored by PID 1), then SIGKILL after --timeout", async (t) => {
    cleanup(t, "z1");
    await m.create("z1", { bundle: bundles.sleeper });
    const s = (await m.start("z1")) as ContainerState;
    assert.equal(s.status, "running");
    const refused = await ctr(["delete", "z1"]);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /^bfc: container delete: container 'z1' is running; stop it first \(or delete --force\) \(BAD_STATE\)\n$/,
    );
    const t0 = Date.now();
    const stopped = await ctr(["stop", "--timeout", "1", "z1"]);
    const took = Date.now() - t0;
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.ok(took >= 1000 && took < 20_000, `stop took ${took} ms`);
    assert.equal((await m.state("z1")).status, "stopped");
    assert.equal(alive(s.pid), false, "the process is gone");
    assert.deepEqual(mountsAtOrUnder(idDir("z1")), []);
    await m.delete("z1");
    assertGone("z1");
  });

  it("two containers side by side never share files; delete --force stops and removes everything", async (t) => {
    cleanup(t, "side-a", "side-b");
    await m.create("side-a", { bundle: bundles["side-a"] });
    await m.create("side-b", { bundle: bundles["side-b"] });
    const a = await m.start("side-a");
    const b = await m.start("side-b");
    assert.equal(a.status, "running");
    assert.equal(b.status, "running");
    assert.notEqual(a.pid, b.pid);
    assert.notEqual(a.bfcfs.artifact, b.bfcfs.artifact);
    const mine = (id: string) => path.join(idDir(id), "upper", "mine");
    for (let i = 0; i < 50 && !(fs.existsSync(mine("side-a")) && fs.existsSync(mine("side-b"))); i++)
      await sleep(100);
    assert.equal(fs.readFileSync(mine("side-a"), "utf8"), "a\n");
    assert.equal(fs.readFileSync(mine("side-b"), "utf8"), "b\n");
    const listed = await ctr(["list", "--json"]);
    const rows = (JSON.parse(listed.stdout.toString()) as { id: string; status: string; backend: string }[])
      .filter((c) => c.id.startsWith("side-"))
      .map((c) => [c.id, c.backend, c.status]);
    assert.deepEqual(rows, [
      ["side-a", "bfc", "running"],
      ["side-b", "bfc", "running"],
    ]);
    await m.delete("side-a", { force: true });
    assertGone("side-a");
    assert.equal((await m.state("side-b")).status, "running", "the other one is untouched");
    const del = await ctr(["delete", "--force", "side-b"]);
    assert.equal(del.code, 0, del.stderr);
    assertGone("side-b");
    assert.equal(alive(a.pid), false);
    assert.equal(alive(b.pid), false);
  });

  it("invalid bundles are refused with the JSON path of the problem and leave nothing behind", async () => {
    const base = ociConfig(["true"]);
    const proc = base.process as Record<string, unknown>;
    const cases: [string, Record<string, unknown> | string | null, boolean, RegExp][] = [
      ["no-config", null, true, /has no config\.json/],
      ["bad-json", "{ not json", true, /config\.json: not valid JSON/],
      [
        "no-args",
        { ...base, process: { ...proc, args: undefined } },
        true,
        /config\.json: process\.args: is required/,
      ],
      ["empty-args", { ...base, process: { ...proc, args: [] } }, true, /process\.args: must not be empty/],
      [
        "arg-type",
        { ...base, process: { ...proc, args: ["sh", 3] } },
        true,
        /process\.args\[1\]: must be a string, got 3/,
      ],
      ["no-rootfs", base, false, /root\.path: the root filesystem '.*no-rootfs\/rootfs' does not exist/],
    ];
    for (const [name, config, withRootfs, re] of cases) {
      const dir = makeBundle(path.join(root, "bad", name), config, withRootfs ? rootfs : null);
      await assert.rejects(m.create(`bad-${name}`, { bundle: dir }), (e: Error & { reason?: string }) => {
        assert.match(e.message, re, name);
        assert.equal(e.reason, "BAD_BUNDLE");
        return true;
      });
      assertGone(`bad-${name}`);
    }
    const r = await ctr(["create", "bad-no-args", "--bundle", path.join(root, "bad", "no-args")]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^bfc: container create: .*no-args\/config\.json: process\.args: is required \(BAD_BUNDLE\)\n$/,
    );
    await assert.rejects(
      m.create("bad-x", { bundle: path.join(root, "nowhere") }),
      /bundle '.*nowhere' does not exist/,
    );
    assert.deepEqual(await m.list(), []);
  });

  it("duplicate ids are refused; of concurrent creates of one id exactly one wins", async (t) => {
    cleanup(t, "dup", "race");
    await m.create("dup", { bundle: bundles.hello });
    const again = await ctr(["create", "dup", "--bundle", bundles.exit7 as string]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /container 'dup' already exists \(ALREADY_EXISTS\)/);
    const results = await Promise.all(
      [1, 2, 3].map(() => ctr(["create", "race", "--bundle", bundles.hello as string])),
    );
    assert.deepEqual(results.map((r) => r.code).sort(), [0, 1, 1], results.map((r) => r.stderr).join(""));
    assert.equal((await m.state("race")).status, "created");
    const bad = await ctr(["create", "../x", "--bundle", bundles.hello as string]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid container id '\.\.\/x'/);
    await assert.rejects(m.state("never-made"), /container 'never-made' does not exist/);
  });

  it("checkpoint commits the writable layer into <id>.bfc; restore --from starts from it", async (t) => {
    cleanup(t, "w1", "wdir");
    await m.create("w1", { bundle: bundles.writer });
    await m.start("w1");
    const upperN = path.join(idDir("w1"), "upper", "data", "n");
    for (let i = 0; i < 100 && !fs.existsSync(upperN); i++) await sleep(50);
    // Running: frozen while its layer is read; it keeps running on that layer.
    const live = await ctr(["checkpoint", "--name", "live", "w1"]);
    assert.equal(live.code, 0, live.stderr);
    assert.match(
      live.stdout.toString(),
      /checkpoint live of w1: commit 2 \(\d+ files, \d+ directories, 1 symlinks, 1 removed; frozen while read\)/,
    );
    assert.equal((await m.state("w1")).status, "running");
    const r2 = await Reader.open(bfcPath("w1"), { commit: 2 });
    try {
      assert.equal((await r2.readFile("rootfs/data/n")).toString(), "x\n");
      assert.equal(await r2.readlink("rootfs/data/link"), "/data/n");
      assert.equal(r2.exists("rootfs/etc/hostname"), false, "the deletion is committed");
      assert.equal(r2.exists("rootfs/etc/os-release"), true);
      assert.equal(r2.stat("rootfs/bin/busybox").mode & 0o777, 0o755);
    } finally {
      r2.close();
    }
    const dup = await ctr(["checkpoint", "--name", "live", "w1"]);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /already has a checkpoint 'live' \(ALREADY_EXISTS\)/);
    const busy = await ctr(["restore", "--from", "live", "w1"]);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /'w1' is running; stop it before restoring \(BAD_STATE\)/);
    // Stopped: the layer goes into the container and is emptied.
    await m.stop("w1", { signal: "SIGKILL" });
    const stopped = await m.checkpoint("w1", { name: "stopped" });
    assert.equal(stopped.commit, 3);
    assert.equal(stopped.frozen, false);
    assert.deepEqual(fs.readdirSync(path.join(idDir("w1"), "upper")), []);
    assert.deepEqual(mountsAtOrUnder(idDir("w1")), []);
    // Restore: the file written before the checkpoint is there, and the process continues from it.
    const restored = await ctr(["restore", "--from", "live", "w1"]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.equal((await m.state("w1")).status, "running");
    for (let i = 0; i < 100 && !fs.readFileSync(m.logFile("w1"), "utf8").includes("xx\n"); i++)
      await sleep(50);
    assert.match(fs.readFileSync(m.logFile("w1"), "utf8"), /^x\nxx\n$/);
    await m.stop("w1", { signal: "SIGKILL" });
    // Commit 1 is the container as created.
    await m.restore("w1", "1");
    for (let i = 0; i < 100 && fs.readFileSync(m.logFile("w1"), "utf8").split("\n").length < 4; i++)
      await sleep(50);
    assert.match(fs.readFileSync(m.logFile("w1"), "utf8"), /^x\nxx\nx\n$/);
    const list = await m.checkpoints("w1");
    assert.deepEqual(
      list.map((c) => [c.commit, c.name, c.message ?? null]),
      [
        [5, null, "restore: commit 1"],
        [4, null, "restore: live"],
        [3, "stopped", "checkpoint: stopped"],
        [2, "live", "checkpoint: live"],
        [1, null, null],
      ],
    );
    await assert.rejects(
      m.restore("w1", "nope"),
      /no checkpoint 'nope' \(checkpoints: stopped, live; commits 1 to 5\)/,
    );
    const table = await ctr(["checkpoints", "w1"]);
    assert.match(table.stdout.toString(), /^COMMIT +CHECKPOINT +TIME\n5 +\(restore: commit 1\)/);
    await m.delete("w1", { force: true });
    assertGone("w1");
    assert.deepEqual(
      fs.readdirSync(path.join(root, "containers", "bfc")).filter((n) => n.includes("w1")),
      [],
      "no lock or temporary file left",
    );
    // The dir backend keeps no commits.
    await m.create("wdir", { bundle: bundles.exit7, backend: "dir" });
    await assert.rejects(m.checkpoint("wdir"), /the dir backend has no checkpoints/);
  });

  it("a missing runtime binary fails start clearly and leaves nothing mounted", async (t) => {
    cleanup(t, "norunc");
    const badCfg = writeConfig(path.join(root, "norunc.json"), {
      runtime_path: path.join(root, "no", "runc"),
    });
    await m.create("norunc", { bundle: bundles.hello });
    const r = await ctr(["start", "norunc"], badCfg);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /OCI runtime '.*\/no\/runc' does not exist or is not executable \(runtime\.runtime_path\) \(RUNTIME_FAILED\)/,
    );
    assert.deepEqual(mountsAtOrUnder(idDir("norunc")), []);
    assert.equal((await m.state("norunc")).status, "created");
    const onPath = BackendManager.open({
      file: writeConfig(path.join(root, "norunc2.json"), { runtime_path: "no-such-runc-binary" }),
    });
    await assert.rejects(runAttached("norunc", onPath), /'no-such-runc-binary' not found on PATH/);
    assert.deepEqual(mountsAtOrUnder(idDir("norunc")), []);
    // delete works without the runtime too
    await BackendManager.open({ file: badCfg }).delete("norunc");
    assertGone("norunc");
  });

  it("a corrupted container file: start fails with a clear error and mounts nothing", async (t) => {
    cleanup(t, "bad-index", "bad-data", "bad-data-quick");
    const deep = BackendManager.open({
      file: writeConfig(path.join(root, "deep.json"), {}, { verify: "deep" }),
    });
    // The index (at the end, before the 56-byte footer): caught when the container is opened.
    await m.create("bad-index", { bundle: bundles.hello });
    flipBytes(bfcPath("bad-index"), -100);
    const r = await ctr(["start", "bad-index"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^bfc: container start: .*\((BAD_INDEX|CRC_MISMATCH|BAD_PATH)\)\n$/);
    assert.deepEqual(mountsAtOrUnder(idDir("bad-index")), []);
    // busybox's bytes: caught by verify "deep" before anything is mounted.
    await deep.create("bad-data", { bundle: bundles.hello });
    const reader = await Reader.open(bfcPath("bad-data"));
    const e = reader.stat("rootfs/bin/busybox");
    reader.close();
    flipBytes(bfcPath("bad-data"), e.objectOffset + Math.floor(e.objectSize / 2));
    await assert.rejects(
      deep.start("bad-data"),
      /container '.*bad-data\.bfc' is damaged \(1 problem\(s\); first: rootfs\/bin\/busybox: /,
    );
    assert.deepEqual(mountsAtOrUnder(idDir("bad-data")), []);
    assert.equal((await m.state("bad-data")).status, "created", "a failed start leaves the state as it was");
    // With the default quick check the damage is found on read: the process gets EIO, never bad bytes.
    fs.copyFileSync(bfcPath("bad-data"), bfcPath("bad-data-quick"));
    await m.create("bad-data-quick");
    const quick = await runAttached("bad-data-quick");
    assert.notEqual(quick.status, 0);
    assert.match(quick.stderr, /input\/output error/i);
  });

  it("state tells the truth after crashes, and delete cleans stale mounts", async (t) => {
    cleanup(t, "crash");
    await m.create("crash", { bundle: bundles.sleeper });
    await m.start("crash");
    const servers = processesUnder(idDir("crash"));
    assert.equal(servers.length, 1, "one process serves the root");
    const recFile = path.join(idDir("crash"), "state.json");
    const rec = JSON.parse(fs.readFileSync(recFile, "utf8"));
    assert.equal(rec.mountPid, servers[0]);
    // A start interrupted after `runc create`: our record still says created, runc knows better.
    fs.writeFileSync(recFile, JSON.stringify({ ...rec, phase: "created" }));
    assert.equal((await m.state("crash")).status, "running");
    fs.writeFileSync(recFile, JSON.stringify(rec));
    // The serving process dies: the container process lives on, over a dead root.
    process.kill(servers[0] as number, "SIGKILL");
    for (let i = 0; i < 100 && alive(servers[0]); i++) await sleep(20);
    let s = await m.state("crash");
    assert.equal(s.status, "running");
    assert.equal(s.bfcfs.rootfs, "stale");
    // The container process dies behind our back: runc knows, so state says stopped.
    process.kill(s.pid as number, "SIGKILL");
    s = await waitStatus("crash", "stopped");
    assert.equal(s.pid, undefined);
    // The record loses the serving pid (as after a crash mid-write): delete finds the mounts itself.
    delete rec.mountPid;
    fs.writeFileSync(recFile, JSON.stringify(rec));
    assert.ok(mountsAtOrUnder(idDir("crash")).length >= 1, "stale mounts are there");
    await m.delete("crash");
    assertGone("crash");
  });

  it("an interrupted create is reported as such and delete removes its debris", async (t) => {
    cleanup(t, "halfway");
    fs.mkdirSync(idDir("halfway"), { recursive: true });
    fs.writeFileSync(
      path.join(idDir("halfway"), "state.json"),
      JSON.stringify({
        id: "halfway",
        backend: "bfc",
        phase: "creating",
        artifact: bfcPath("halfway"),
        sourceBundle: bundles.hello,
        annotations: {},
        created: new Date().toISOString(),
        creatorPid: 2 ** 22 + 1,
      }),
    );
    const tmp = path.join(root, "containers", "bfc", ".halfway.bfc.bfc-tmp-1-deadbeef");
    fs.mkdirSync(path.dirname(tmp), { recursive: true });
    fs.writeFileSync(tmp, "partial");
    const s = await m.state("halfway");
    assert.equal(s.status, "creating");
    assert.equal(s.bfcfs.interrupted, true);
    await assert.rejects(
      m.start("halfway"),
      /still being created \(that create was interrupted; delete it\)/,
    );
    await m.delete("halfway");
    assertGone("halfway");
    assert.equal(fs.existsSync(tmp), false, "the interrupted writer's temporary file is gone");
  });

  it("delete --keep keeps the container file; create without --bundle adopts it", async (t) => {
    cleanup(t, "kept");
    await m.create("kept", { bundle: bundles.exit7 });
    const kept = await ctr(["delete", "--keep", "kept"]);
    assert.equal(kept.code, 0, kept.stderr);
    assert.ok(fs.existsSync(bfcPath("kept")));
    await assert.rejects(
      m.create("kept", { bundle: bundles.exit7 }),
      /already exists \(kept by 'delete --keep'\?\)/,
    );
    await m.create("kept");
    assert.equal((await runAttached("kept")).status, 7);
    await m.delete("kept");
    assertGone("kept");
  });

  it("the dir backend runs the same bundle from a plain copy", async (t) => {
    cleanup(t, "d1");
    const created = await ctr([
      "create",
      "--backend",
      "dir",
      "d1",
      "--bundle",
      bundles["hello-now"] as string,
    ]);
    assert.equal(created.code, 0, created.stderr);
    const copy = path.join(root, "containers", "dir", "d1");
    assert.equal(fs.readlinkSync(path.join(copy, "rootfs", "bin", "sh")), "busybox");
    assert.equal(fs.statSync(path.join(copy, "rootfs", "bin", "busybox")).mode & 0o777, 0o755);
    const r = await runAttached("d1");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /hello from the container\nNAME="bfcfs tiny"/);
    assert.equal((await m.list()).find((c) => c.id === "d1")?.backend, "dir");
    assert.equal(
      fs.existsSync(path.join(copy, "rootfs", "data", "count")),
      false,
      "writes stay in the upper layer",
    );
    await m.delete("d1");
    assertGone("d1");
  });

  it("an encrypted container (key file) runs, its content unreadable without the key", async (t) => {
    cleanup(t, "enc");
    const key = path.join(root, "key.bin");
    fs.writeFileSync(key, Buffer.alloc(32, 7));
    const enc = BackendManager.open({
      file: writeConfig(path.join(root, "enc.json"), {}, { encryption: { key_file: key } }),
    });
    await enc.create("enc", { bundle: bundles.exit7 });
    const reader = await Reader.open(bfcPath("enc"));
    assert.equal(reader.encryptionMode, "key");
    await assert.rejects(
      reader.readFile("rootfs/etc/os-release"),
      (e: Error & { reason?: string }) => e.reason === "KEY_REQUIRED",
    );
    reader.close();
    assert.deepEqual(await runAttached("enc", enc), {
      status: 7,
      stdout: "to-stdout\n",
      stderr: "to-stderr\n",
    });
    await enc.delete("enc");
    assertGone("enc");
  });

  it("configuration errors name the file and the key", async () => {
    const bad = path.join(root, "bad-config.json");
    fs.writeFileSync(bad, JSON.stringify({ runtime: { backends: { bfc: { compresion: "zstd" } } } }));
    let r = await ctr(["list"], bad);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^bfc: container list: .*bad-config\.json: runtime\.backends\.bfc\.compresion: unknown key \(allowed here: enabled, container_path, compression, .*\) \(BAD_CONFIG\)\n$/,
    );
    // $BFC_CONFIG is used without --config
    r = await bfc(["container", "list", "--json"], { env: { BFC_CONFIG: cfg } });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.toString()), []);
  });

  it("left nothing behind", async () => {
    const r = await run("runc", ["--root", path.join(stateDir(), "runc"), "list", "-q"]);
    assert.equal(r.stdout.toString().trim(), "", "runc containers left");
    assert.deepEqual(mountsAtOrUnder(root), []);
    assert.deepEqual(processesUnder(root), []);
    assert.deepEqual(await m.list(), []);
  });
});
