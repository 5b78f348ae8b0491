/**
 * A test helper process: takes a container's update lock as another updater would, says `locked` on
 * stdout, and releases it when a line arrives on stdin (or stdin closes, so a failed test never
 * leaves it holding the lock).
 */
import { ContainerLock } from "../../src/container/lock.ts";

const container = process.argv[2];
if (!container) throw new Error("usage: lock-holder.ts <container>");
const lock = await ContainerLock.acquire(container);
process.stdout.write("locked\n");
const done = (): void => {
  lock.release();
  process.stdout.write("released\n");
  process.exit(0);
};
process.stdin.once("data", done);
process.stdin.once("end", done);
