import fs from "node:fs";
import path from "node:path";
import { BfcError, fromSystemError } from "../errors.ts";

/**
 * An exclusive update lock on a container: a lock file beside it holding the owner's pid. Two
 * updaters appending at once would interleave their objects, so a second one fails with EBUSY
 * (or waits up to `timeoutMs`). A lock left by a process that no longer exists is taken over.
 */
export class ContainerLock {
  readonly file: string;
  private held = true;

  private constructor(file: string) {
    this.file = file;
  }

  static lockPath(container: string): string {
    const abs = path.resolve(container);
    return path.join(path.dirname(abs), `.${path.basename(abs)}.bfc-lock`);
  }

  static async acquire(container: string, timeoutMs = 0): Promise<ContainerLock> {
    const file = ContainerLock.lockPath(container);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const fd = fs.openSync(
          file,
          fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL,
          0o644,
        );
        try {
          fs.writeSync(fd, `${process.pid}\n`);
        } finally {
          fs.closeSync(fd);
        }
        return new ContainerLock(file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") {
          throw fromSystemError(e, `cannot lock '${container}' for update`, container);
        }
      }
      const owner = readOwner(file);
      if (owner === null ? olderThan(file, 10_000) : !processAlive(owner)) {
        // Stale: rename it away first so two processes taking over at once cannot both win.
        const aside = `${file}.stale-${process.pid}`;
        try {
          fs.renameSync(file, aside);
          if (readOwner(aside) === owner) fs.unlinkSync(aside);
          // Someone else's fresh lock was moved by mistake: put it back.
          else fs.renameSync(aside, file);
        } catch {}
        continue;
      }
      if (Date.now() >= deadline) {
        throw new BfcError(
          "EBUSY",
          "LOCKED",
          `'${container}' is being updated by another process${owner !== null ? ` (pid ${owner})` : ""}; lock file ${file}`,
          { path: container },
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    try {
      if (readOwner(this.file) === process.pid) fs.unlinkSync(this.file);
    } catch {}
  }
}

function readOwner(file: string): number | null {
  try {
    const n = Number.parseInt(fs.readFileSync(file, "utf8").trim(), 10);
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** A lock file with no pid in it is a crash between create and write, once it is old enough. */
function olderThan(file: string, ms: number): boolean {
  try {
    return Date.now() - fs.statSync(file).mtimeMs > ms;
  } catch {
    return false;
  }
}

/** Whether process `pid` still exists and has not exited (a zombie has). */
export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  return !zombie(pid);
}

/**
 * Whether `pid` has exited but not been reaped (a killed mount process whose parent is gone, in a
 * namespace whose init does not reap): signals still reach it, yet it holds nothing any more.
 */
function zombie(pid: number): boolean {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return false; // no procfs: trust the signal
  }
  // "pid (comm) S …": comm may hold spaces and parentheses, so the state follows the last ')'.
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state === "Z" || state === "X";
}
