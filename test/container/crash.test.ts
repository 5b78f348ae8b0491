/**
 * Crash tests that really crash: a child process commits in a loop and is killed with SIGKILL at
 * random moments (mid-object, mid-index, between index and footer…). Every time, the container
 * opens at a complete commit no older than the last one the child reported, deep verify passes,
 * and the tree is exactly that commit's. The next child takes the dead one's lock over.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { it } from "node:test";
import { Reader, verify, Writer } from "../../src/index.ts";
import { prng, ROOT, tempDir } from "../helpers.ts";
import { expectedFile, expectedPaths } from "./fixtures/commit-model.ts";

const CHILD = path.join(ROOT, "test/container/fixtures/commit-loop.ts");

/** Runs the child and kills it `delayMs` after its `starts`-th "start" line (a commit in flight). */
function runAndKill(
  file: string,
  starts: number,
  delayMs: number,
): Promise<{ last: number; midCommit: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, file], { stdio: ["ignore", "pipe", "pipe"] });
    let last = 0;
    let err = "";
    let armed = false;
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      for (const m of out.matchAll(/committed (\d+)/g)) last = Math.max(last, Number(m[1]));
      if (!armed && (out.match(/start \d+/g)?.length ?? 0) >= starts) {
        armed = true;
        setTimeout(() => child.kill("SIGKILL"), delayMs);
      }
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (signal !== "SIGKILL") reject(new Error(`child exited ${code}: ${err}`));
      else {
        const started = [...out.matchAll(/start (\d+)/g)].map((m) => Number(m[1]));
        resolve({ last, midCommit: started.length > 0 && started[started.length - 1]! > last });
      }
    });
    // A child that never commits (stuck) is a failure, not a hang.
    setTimeout(() => child.kill("SIGKILL"), 20_000).unref();
  });
}

it("SIGKILL at random points of a commit loop never loses a complete commit", {
  timeout: 180_000,
}, async () => {
  const dir = tempDir("bfc-crash-");
  const file = path.join(dir, "c.bfc");
  const w = await Writer.create(file);
  await w.addFile("seed.txt", Buffer.from("seed"));
  await w.finish();
  const rnd = prng(42);
  let reported = 1;
  const kills = 12;
  const tornSeen: number[] = [];
  let killedMidCommit = 0;
  for (let k = 0; k < kills; k++) {
    const t0 = Date.now();
    const { last, midCommit } = await runAndKill(file, 1 + Math.floor(rnd() * 2), Math.floor(rnd() * 300));
    if (midCommit) killedMidCommit++;
    if (process.env.DEBUG_CRASH) console.log(k, last, midCommit, Date.now() - t0);
    reported = Math.max(reported, last);
    const r = await Reader.open(file);
    try {
      assert.ok(r.commit >= reported, `opened commit ${r.commit}, child reported ${reported}`);
      if (r.tornTail > 0) tornSeen.push(r.tornTail);
      assert.deepEqual(
        [...r.entries()].map((e) => e.path),
        expectedPaths(r.commit),
      );
      for (const e of r.entries()) {
        if (e.type !== "file" || e.path === "seed.txt") continue;
        const n = Number(e.path.replace(/^(old\/)?f/, ""));
        assert.ok((await r.readFile(e.path)).equals(expectedFile(n)), e.path);
      }
      const v = await verify(r, { deep: true });
      assert.equal(v.ok, true, JSON.stringify(v.problems));
      reported = r.commit;
    } finally {
      r.close();
    }
  }
  // The kills must have hit commits in flight, not only the gaps between them.
  assert.ok(killedMidCommit >= 4, `kills during a commit: ${killedMidCommit} of ${kills}`);
  process.stdout.write(`# ${killedMidCommit} kills during a commit, ${tornSeen.length} left a torn tail\n`);
  assert.ok(reported > 5);
  assert.ok(!fs.readdirSync(dir).some((n) => n.includes("bfc-commit") || n.includes("bfc-tmp")));
});
