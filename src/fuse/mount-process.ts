/**
 * A FUSE mount served by a `bfc mount --foreground` process of its own: detached from the process
 * that starts it (the mount outlives it), its output appended to a log, readiness reported on a pipe
 * (fd 3). Used by `bfc mount` in the background and by the container runtime. Serving processes are
 * also found in /proc by their command line, so teardown never depends on a recorded pid.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BfcError, type ErrnoCode, type Reason } from "../errors.ts";

/** The `bfc` entry point beside this module (main.ts from source, main.js in dist/). */
export function cliEntry(): string {
  const here = fileURLToPath(import.meta.url);
  return path.join(path.dirname(here), "..", "cli", `main${path.extname(here)}`);
}

export interface MountProcessOptions {
  source: string;
  mountpoint: string;
  /** Further `bfc mount` options (--type, --keyfile, --allow-other, …). */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Where the serving process's stdout and stderr go (appended); discarded when absent. */
  log?: string;
}

/**
 * Starts the serving process and resolves with its pid once the mount is ready. A failed mount
 * rejects with the serving process's own error and reason, once that process has exited.
 */
export async function startMountProcess(o: MountProcessOptions): Promise<number> {
  const env: NodeJS.ProcessEnv = { ...(o.env ?? process.env) };
  // Compiling (and type-stripping) the modules costs the serving process ~1 s of CPU at each
  // start; Node's compile cache (keyed by content) cuts that to a fraction.
  env.NODE_COMPILE_CACHE ??= path.join(os.tmpdir(), "node-compile-cache");
  const args = [cliEntry(), "mount", "--foreground", "--ready-fd", "3", ...(o.args ?? [])];
  args.push("--", o.source, o.mountpoint);
  const log = o.log ? fs.openSync(o.log, "a") : "ignore";
  const child = spawn(process.execPath, args, { detached: true, env, stdio: ["ignore", log, log, "pipe"] });
  if (typeof log === "number") fs.closeSync(log);
  const pipe = child.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
  const answer = await new Promise<string>((resolve) => {
    let text = "";
    pipe.setEncoding("utf8");
    pipe.on("data", (d: string) => {
      text += d;
      if (text.includes("\n")) resolve(text);
    });
    pipe.on("end", () => resolve(text));
    child.on("error", (e) => resolve(JSON.stringify({ error: e.message, reason: "IO_ERROR" })));
    child.on("exit", (code) =>
      resolve(
        text || JSON.stringify({ error: `the mount process exited with status ${code}`, reason: "IO_ERROR" }),
      ),
    );
  });
  pipe.destroy();
  child.unref();
  let msg: { ok?: boolean; error?: string; reason?: string };
  try {
    msg = JSON.parse(answer.split("\n")[0] as string);
  } catch {
    msg = { error: `unexpected answer from the mount process: ${answer.slice(0, 200)}`, reason: "IO_ERROR" };
  }
  if (!msg.ok) {
    // The failed mount process is on its way out; return only once it is gone (up to 5 s).
    if (child.pid !== undefined) await waitGone([child.pid], 5000);
    const reason = (msg.reason ?? "IO_ERROR") as Reason;
    const code: ErrnoCode = reason === "NOT_FOUND" ? "ENOENT" : reason === "STALE_MOUNT" ? "EBUSY" : "EIO";
    throw new BfcError(code, reason, msg.error ?? "mount failed", { path: o.source });
  }
  return child.pid as number;
}

/** Processes (other than this one) whose command line `match`es, from /proc. */
export function processesWhere(match: (argv: string[]) => boolean): number[] {
  const out: number[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync("/proc");
  } catch {
    return out;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let argv: string[];
    try {
      argv = fs.readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    // (a zombie's cmdline is empty, so whatever matches here is alive)
    if (match(argv)) out.push(Number(name));
  }
  return out;
}

/** Processes serving `mountpoint`: a `mount` command line naming it. */
export function mountProcesses(mountpoint: string): number[] {
  return processesWhere((argv) => argv.includes("mount") && argv.includes(mountpoint));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8") !== "";
  } catch {
    return false;
  }
}

/** Whether every process in `pids` exited within `ms` (zombies count as exited). */
export async function waitGone(pids: number[], ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (!pids.some(alive)) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
}

function signal(pids: number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // gone
    }
  }
}

/** Ends the processes serving `mountpoint`: SIGTERM (they unmount and exit), SIGKILL after `ms`. */
export async function stopMountProcesses(mountpoint: string, ms = 3000): Promise<void> {
  const pids = mountProcesses(mountpoint);
  if (pids.length === 0) return;
  signal(pids, "SIGTERM");
  if (await waitGone(pids, ms)) return;
  signal(pids, "SIGKILL");
  await waitGone(pids, 2000);
}
