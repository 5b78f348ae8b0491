/**
 * The OCI runtime binary (runc, or anything with its command line: crun, youki), run with its own
 * state root under our state directory so its container list is ours alone.
 */
import { type ChildProcess, execFile, type StdioOptions, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { BfcError } from "../errors.ts";

/** What `runc state` reports. */
export interface RuncState {
  id: string;
  pid: number;
  status: "creating" | "created" | "running" | "stopped" | "paused";
  bundle: string;
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** The last error line of runc's output, without its logrus decoration. */
function runcMessage(text: string): string {
  const lines = text.trim().split("\n").filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i] as string;
    try {
      const j = JSON.parse(line) as { level?: string; msg?: string };
      if (j.level === "error" && j.msg) return j.msg;
    } catch {
      const m = /msg="((?:[^"\\]|\\.)*)"/.exec(line);
      if (m) return (m[1] as string).replace(/\\"/g, '"');
      if (line.trim()) return line.trim();
    }
  }
  return "";
}

export class Runc {
  /** As configured: a bare name (looked up on PATH) or a path. */
  readonly binary: string;
  /** runc's --root. */
  readonly root: string;
  private resolved: string | null = null;

  constructor(binary: string, root: string) {
    this.binary = binary;
    this.root = root;
  }

  /** The binary's path; fails clearly when it cannot be found or run. */
  locate(): string {
    if (this.resolved) return this.resolved;
    const candidates = this.binary.includes("/")
      ? [this.binary]
      : (process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
          .split(":")
          .filter(Boolean)
          .map((d) => path.join(d, this.binary));
    for (const c of candidates) {
      try {
        fs.accessSync(c, fs.constants.X_OK);
        if (fs.statSync(c).isFile()) {
          this.resolved = c;
          return c;
        }
      } catch {
        // try the next one
      }
    }
    throw new BfcError(
      "ENOENT",
      "RUNTIME_FAILED",
      this.binary.includes("/")
        ? `OCI runtime '${this.binary}' does not exist or is not executable (runtime.runtime_path)`
        : `OCI runtime '${this.binary}' not found on PATH (install runc, or set runtime.runtime_path)`,
      { path: this.binary },
    );
  }

  private exec(args: string[]): Promise<Result> {
    const bin = this.locate();
    return new Promise((resolve) => {
      execFile(bin, ["--root", this.root, ...args], { encoding: "utf8" }, (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: unknown }) | null;
        if (e && typeof e.code === "string") {
          resolve({ code: -1, stdout: "", stderr: e.message });
          return;
        }
        resolve({ code: e ? Number(e.code ?? 1) : 0, stdout, stderr });
      });
    });
  }

  private async must(what: string, id: string, args: string[]): Promise<Result> {
    const r = await this.exec(args);
    if (r.code !== 0) {
      throw new BfcError(
        "EIO",
        "RUNTIME_FAILED",
        `${path.basename(this.binary)} ${what} '${id}' failed: ${runcMessage(r.stderr) || `exit status ${r.code}`}`,
      );
    }
    return r;
  }

  /** runc's record of the container, or null when it has none. */
  async state(id: string): Promise<RuncState | null> {
    const r = await this.exec(["state", id]);
    if (r.code !== 0) {
      if (/does not exist|not exist/i.test(r.stderr)) return null;
      throw new BfcError(
        "EIO",
        "RUNTIME_FAILED",
        `${path.basename(this.binary)} state '${id}' failed: ${runcMessage(r.stderr) || `exit status ${r.code}`}`,
      );
    }
    return JSON.parse(r.stdout) as RuncState;
  }

  /**
   * `runc create`: the container's init waits for `start`. Its stdout and stderr are `output`
   * (the container log), so runc's own messages also go to `logFile` (JSON), read on failure.
   */
  async create(id: string, bundle: string, output: number, logFile: string): Promise<void> {
    const bin = this.locate();
    fs.writeFileSync(logFile, "");
    const code = await new Promise<number>((resolve) => {
      const child = spawn(
        bin,
        ["--root", this.root, "--log", logFile, "--log-format", "json", "create", "--bundle", bundle, id],
        { stdio: ["ignore", output, output] },
      );
      child.on("error", () => resolve(-1));
      child.on("close", (c) => resolve(c ?? -1));
    });
    if (code !== 0) {
      let log = "";
      try {
        log = fs.readFileSync(logFile, "utf8");
      } catch {
        // nothing logged
      }
      throw new BfcError(
        "EIO",
        "RUNTIME_FAILED",
        `${path.basename(this.binary)} create '${id}' failed: ${runcMessage(log) || `exit status ${code}`}`,
      );
    }
  }

  async start(id: string): Promise<void> {
    await this.must("start", id, ["start", id]);
  }

  /** Freezes every process of the container (cgroup freezer). */
  async pause(id: string): Promise<void> {
    await this.must("pause", id, ["pause", id]);
  }

  async resume(id: string): Promise<void> {
    await this.must("resume", id, ["resume", id]);
  }

  /** Sends a signal to the container's init (and with `all`, to every process in it). */
  async kill(id: string, signal: string, all = false): Promise<void> {
    await this.must("kill", id, ["kill", ...(all ? ["--all"] : []), id, signal]);
  }

  /** Forgets a container (force: kills it first); a container runc does not know is fine. */
  async delete(id: string, force = false): Promise<void> {
    const r = await this.exec(["delete", ...(force ? ["--force"] : []), id]);
    if (r.code !== 0 && !/does not exist|not exist/i.test(r.stderr)) {
      throw new BfcError(
        "EIO",
        "RUNTIME_FAILED",
        `${path.basename(this.binary)} delete '${id}' failed: ${runcMessage(r.stderr) || `exit status ${r.code}`}`,
      );
    }
  }

  /** `runc run` in the foreground: creates, starts and waits; its exit status is the process's. */
  run(id: string, bundle: string, stdio: StdioOptions): ChildProcess {
    return spawn(this.locate(), ["--root", this.root, "run", "--bundle", bundle, id], { stdio });
  }
}
