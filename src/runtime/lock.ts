/**
 * A lock per container id, so two commands on one id never interleave (two `create`s, a `stop`
 * during a `start`). Node has no flock(2), so the kernel lock is held by a small child:
 * `flock FILE sh -c 'echo; exec cat'` (util-linux) takes it, says so, and keeps it until its stdin
 * closes — which also happens when this process dies, so a crash never leaves a lock behind.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { BfcError } from "../errors.ts";

export interface Lock {
  release(): Promise<void>;
}

/** Takes the lock in `file` (created if needed), waiting up to `timeoutMs`. */
export async function acquireLock(file: string, what: string, timeoutMs = 60_000): Promise<Lock> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const secs = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
  const child = spawn("flock", ["-x", "-w", secs, file, "sh", "-c", "echo locked; exec cat >/dev/null"], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on("exit", (code) => resolve(code));
    child.on("error", () => resolve(null));
  });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d: string) => {
    stderr += d;
  });
  const got = await new Promise<boolean>((resolve) => {
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => {
      out += d;
      if (out.includes("\n")) resolve(true);
    });
    child.on("error", (e) => {
      stderr ||= e.message;
      resolve(false);
    });
    child.on("close", () => resolve(false));
  });
  if (!got) {
    const code = await exited;
    if (code === 1 && stderr === "") {
      throw new BfcError(
        "EBUSY",
        "LOCKED",
        `${what} is busy: another command has held its lock for ${secs} s (${file})`,
        { path: file },
      );
    }
    throw new BfcError(
      "EIO",
      "IO_ERROR",
      `cannot lock ${what} with flock(1): ${stderr.trim() || `exit ${code}`}`,
      {
        path: file,
      },
    );
  }
  // The lock must not keep this process alive, nor its pipes.
  child.unref();
  (child.stdout as unknown as { unref?(): void }).unref?.();
  (child.stderr as unknown as { unref?(): void }).unref?.();
  let released: Promise<void> | null = null;
  return {
    release: () => {
      released ??= (async () => {
        child.ref();
        child.stdin.end();
        await exited;
      })();
      return released;
    },
  };
}

/** Runs `fn` holding the lock. */
export async function withLock<T>(
  file: string,
  what: string,
  fn: () => Promise<T>,
  timeoutMs?: number,
): Promise<T> {
  const lock = await acquireLock(file, what, timeoutMs);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
