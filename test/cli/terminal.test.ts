/**
 * What needs a terminal: progress bars and the password prompt, run in a pseudo-terminal through
 * util-linux `script` (skipped where it is missing); the prompt's key handling and the text formats
 * as unit tests.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { EventEmitter } from "node:events";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import {
  fixed1,
  fullModeString,
  humanSize,
  modeString,
  octalMode,
  percent,
  shortSize,
} from "../../src/cli/format.ts";
import { PromptCancelled, promptPassword } from "../../src/cli/password.ts";
import { Writer } from "../../src/index.ts";
import { tempDir, VECTOR_PASSWORD, VECTORS } from "../helpers.ts";
import { bfc, MAIN } from "./cli-helpers.ts";

const hasScript = spawnSync("script", ["--version"]).status === 0;

function quote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/** Runs bfc in a pseudo-terminal; each answer is typed once its prompt appears. Resolves with all output. */
function inPty(args: string[], opts: { cwd?: string; answers?: [string, string][] } = {}): Promise<string> {
  const cmd = [process.execPath, MAIN, ...args].map(quote).join(" ");
  return new Promise((resolve, reject) => {
    const child = spawn("script", ["-qec", cmd, "/dev/null"], {
      cwd: opts.cwd ?? VECTORS,
      env: { ...process.env, TZ: "UTC", COLUMNS: "120" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const answers = [...(opts.answers ?? [])];
    let out = "";
    let from = 0;
    const timer = setTimeout(() => child.kill(), 20000);
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const next = answers[0];
      if (!next) return;
      const at = out.indexOf(next[0], from);
      if (at >= 0) {
        from = at + next[0].length;
        answers.shift();
        child.stdin.write(next[1]);
      }
    });
    child.on("error", reject);
    child.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
    if (answers.length === 0) child.stdin.end();
  });
}

describe("progress bar", { skip: !hasScript && "util-linux 'script' is not installed" }, () => {
  it("drawn on a terminal with --progress (bytes, entries, rate, ETA), then cleared", async () => {
    const out = tempDir();
    const text = await inPty(["extract", "--progress", "-k", "-C", out, "containers/zstd.bfc"]);
    assert.match(
      text,
      /Extracting \[[=-]+\] +\d+% \| [\d.]+ \S+\/1\.3 MiB \| \d+\/20 entries \| [\d.]+ \S+\/s \| ETA/,
    );
    assert.match(text, /Successfully extracted 20 entries/);
    assert.ok(fs.existsSync(path.join(out, "input/random.bin")));
  });

  it("never for short work without --progress, with -q, or with --no-progress", async () => {
    for (const args of [
      ["verify", "--deep", "containers/plain.bfc"],
      ["-q", "verify", "--progress", "containers/plain.bfc"],
      ["verify", "--no-progress", "containers/plain.bfc"],
    ]) {
      const text = await inPty(args);
      assert.doesNotMatch(text, /Verifying \[/, args.join(" "));
    }
  });

  it("never when stderr is not a terminal, even with --progress", () => {
    const r = bfc(["verify", "--progress", "--deep", "containers/plain.bfc"]);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, "");
  });

  it("create and verify draw it too", async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, "f.txt"), "x".repeat(100000));
    const c = await inPty(["create", "--progress", "c.bfc", "f.txt"], { cwd: dir });
    assert.match(c, /Adding \[/);
    assert.match(c, /Container 'c.bfc' created successfully\./);
    const v = await inPty(["verify", "--progress", "--deep", "c.bfc"], { cwd: dir });
    assert.match(v, /Verifying \[/);
  });
});

describe("password prompt", () => {
  it("on a terminal, asks without echo and decrypts", { skip: !hasScript && "no 'script'" }, async () => {
    const out = tempDir();
    const text = await inPty(["extract", "-k", "-C", out, "containers/password.bfc", "input/hello.txt"], {
      answers: [["Password for 'containers/password.bfc': ", `${VECTOR_PASSWORD}\r`]],
    });
    assert.doesNotMatch(text, /horse/);
    assert.match(text, /Successfully extracted 1 entries/);
    assert.equal(fs.readFileSync(path.join(out, "input/hello.txt"), "utf8"), "Hello, BFC!\n");
  });

  it("create --ask-password asks twice and refuses a mismatch", {
    skip: !hasScript && "no 'script'",
  }, async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, "s.txt"), "s");
    const bad = await inPty(["create", "--ask-password", "c.bfc", "s.txt"], {
      cwd: dir,
      answers: [
        ["Password: ", "one\r"],
        ["Repeat password: ", "two\r"],
      ],
    });
    assert.match(bad, /bfc: create: the passwords do not match \(BAD_KEY\)/);
    assert.equal(fs.existsSync(path.join(dir, "c.bfc")), false);
    const good = await inPty(["create", "--ask-password", "c.bfc", "s.txt"], {
      cwd: dir,
      answers: [
        ["Password: ", "one\r"],
        ["Repeat password: ", "one\r"],
      ],
    });
    assert.match(good, /created successfully/);
    assert.equal(bfc(["cat", "-p", "one", "c.bfc", "s.txt"], { cwd: dir }).stdout, "s");
  });

  it("handles backspace, Ctrl-U and Ctrl-C; restores the terminal mode", async () => {
    class FakeTty extends EventEmitter {
      isTTY = true;
      isRaw = false;
      modes: boolean[] = [];
      setRawMode(m: boolean) {
        this.isRaw = m;
        this.modes.push(m);
      }
      setEncoding() {}
      resume() {}
      pause() {}
    }
    const written: string[] = [];
    const output = { write: (s: string) => written.push(s) };
    const t = new FakeTty();
    const p = promptPassword("Password: ", t, output);
    t.emit("data", "abX\u007fc");
    t.emit("data", "\u0015se");
    t.emit("data", "cret\rtrailing");
    assert.equal(await p, "secret");
    assert.deepEqual(t.modes, [true, false]);
    assert.deepEqual(written, ["Password: ", "\n"]);
    const t2 = new FakeTty();
    const p2 = promptPassword("Password: ", t2, output);
    t2.emit("data", "ab\u0003");
    await assert.rejects(p2, PromptCancelled);
    assert.equal(t2.isRaw, false);
  });
});

describe("text formats", () => {
  it("sizes round as printf's %.1f does (ties to even)", () => {
    assert.equal(fixed1(1.25), "1.2");
    assert.equal(fixed1(1.75), "1.8");
    assert.equal(fixed1(0.05 + 1), "1.1");
    assert.equal(fixed1(-1.25), "-1.2");
    assert.equal(shortSize(1023), "1023B");
    assert.equal(shortSize(1024), "1.0K");
    assert.equal(shortSize(1280), "1.2K");
    assert.equal(shortSize(262144), "256.0K");
    assert.equal(shortSize(1048576), "1.0M");
    assert.equal(shortSize(3 * 1024 ** 3), "3.0G");
    assert.equal(humanSize(12), "12 bytes");
    assert.equal(humanSize(1318017), "1.3 MiB (1318017 bytes)");
    assert.equal(humanSize(5 * 1024 ** 3), "5.0 GiB (5368709120 bytes)");
    assert.equal(percent(1, 0), "100.0%");
    assert.equal(percent(4366, 262144), "1.7%");
  });

  it("mode strings: list's plain triplets, info's s/S/t/T", () => {
    assert.equal(modeString(0o104755), "-rwxr-xr-x");
    assert.equal(fullModeString(0o104755), "-rwsr-xr-x");
    assert.equal(fullModeString(0o102644), "-rw-r-Sr--");
    assert.equal(fullModeString(0o041777), "drwxrwxrwt");
    assert.equal(fullModeString(0o041776), "drwxrwxrwT");
    assert.equal(fullModeString(0o120777), "lrwxrwxrwx");
    assert.equal(octalMode(0o100644), "00644");
    assert.equal(octalMode(0o104755), "04755");
  });
});

describe("empty container", () => {
  it("list says 'Container is empty' (exit 0), extract extracts nothing (exit 0)", async () => {
    const dir = tempDir();
    const w = await Writer.create(path.join(dir, "e.bfc"));
    await w.finish();
    const l = bfc(["list", "e.bfc"], { cwd: dir });
    assert.equal(l.code, 0);
    assert.equal(l.stdout, "Container is empty\n");
    const x = bfc(["extract", "-C", "out", "e.bfc"], { cwd: dir });
    assert.equal(x.code, 0);
    assert.equal(x.stdout, "Successfully extracted 0 entries\n");
    const i = bfc(["info", "e.bfc"], { cwd: dir });
    assert.match(i.stdout, /^ {2}Total entries: 0$/m);
  });
});
