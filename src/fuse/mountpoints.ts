import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { BfcError } from "../errors.ts";
import { hostMounts } from "./host-mounts.ts";

/** Mount points of this mount namespace whose type is FUSE, from /proc/self/mountinfo. */
export function fuseMountpoints(): Set<string> {
  const out = new Set<string>();
  for (const m of hostMounts())
    if (m.fstype === "fuse" || m.fstype.startsWith("fuse.")) out.add(m.mountpoint);
  return out;
}

/**
 * A mountpoint as the kernel's mount table names it: absolute, with symbolic links in its parent
 * folders resolved (the table holds the real path, so a mount reached through a link must be looked
 * up by that). The last component is kept as it is: a stale mountpoint cannot be resolved, and a
 * mountpoint is a folder, never a link, once mounted.
 */
export function canonicalMountpoint(mountpoint: string): string {
  const abs = path.resolve(mountpoint);
  const parent = path.dirname(abs);
  if (parent === abs) return abs;
  try {
    return path.join(fs.realpathSync(parent), path.basename(abs));
  } catch {
    return abs;
  }
}

/**
 * Checks a mountpoint before mounting: an existing, empty directory, not a stale FUSE mount left by
 * a killed process (which answers ENOTCONN) — that one is reported with the command that clears it.
 */
export function checkMountpoint(mountpoint: string): string {
  const mp = canonicalMountpoint(mountpoint);
  let st: fs.Stats;
  try {
    st = fs.statSync(mp);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOTCONN" || code === "ECONNABORTED") {
      throw new BfcError(
        "EBUSY",
        "STALE_MOUNT",
        `'${mp}' is a stale FUSE mount (the process serving it is gone); clear it with: bfc umount ${mp}`,
        { path: mp },
      );
    }
    if (code === "ENOENT")
      throw new BfcError("ENOENT", "NOT_FOUND", `mountpoint '${mp}' does not exist`, { path: mp });
    throw new BfcError(
      (code as "EACCES") ?? "EIO",
      "IO_ERROR",
      `cannot use mountpoint '${mp}': ${(e as Error).message}`,
      {
        path: mp,
      },
    );
  }
  if (!st.isDirectory())
    throw new BfcError("ENOTDIR", "NOT_A_DIRECTORY", `mountpoint '${mp}' is not a directory`, { path: mp });
  if (fuseMountpoints().has(mp)) {
    throw new BfcError("EBUSY", "ALREADY_EXISTS", `'${mp}' is already a FUSE mountpoint; unmount it first`, {
      path: mp,
    });
  }
  if (fs.readdirSync(mp).length > 0) {
    throw new BfcError("ENOTEMPTY", "ALREADY_EXISTS", `mountpoint '${mp}' is not empty`, { path: mp });
  }
  return mp;
}

/** Unmounts a FUSE mountpoint (also a stale one) with fusermount; `lazy` detaches a busy one. */
export async function unmountFuse(mountpoint: string, options: { lazy?: boolean } = {}): Promise<void> {
  const mp = canonicalMountpoint(mountpoint);
  if (!fuseMountpoints().has(mp)) {
    throw new BfcError("EINVAL", "NOT_FOUND", `'${mp}' is not a FUSE mountpoint`, { path: mp });
  }
  const tool = fs.existsSync("/usr/bin/fusermount3") ? "fusermount3" : "fusermount";
  const args = [options.lazy ? "-uz" : "-u", mp];
  await new Promise<void>((resolve, reject) => {
    execFile(tool, args, (err, _out, stderr) => {
      if (!err) {
        resolve();
        return;
      }
      const busy = /busy/i.test(stderr);
      reject(
        new BfcError(
          busy ? "EBUSY" : "EIO",
          "IO_ERROR",
          `cannot unmount '${mp}': ${stderr.trim() || err.message}${busy ? " (files are open there; --lazy detaches it now and unmounts when they close)" : ""}`,
          { path: mp },
        ),
      );
    });
  });
}
