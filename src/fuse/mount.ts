import { execFile } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { BfcError } from "../errors.ts";
import type { Vfs } from "../vfs/vfs.ts";
import { hostMounts } from "./host-mounts.ts";
import { createOperations } from "./operations.ts";

export interface FuseMountOptions {
  /**
   * The served tree never changes (containers, zips): the kernel may cache attributes, names,
   * negative lookups and file pages for an hour, and the mount is read-only to the kernel too.
   */
  immutable?: boolean;
  allowOther?: boolean;
  debug?: boolean;
  uid?: number;
  gid?: number;
  /** Shown as the source in /proc/mounts and `df`. */
  fsname?: string;
  /** Seconds between checks that the mount is still there (it goes when someone unmounts it). */
  pollSeconds?: number;
}

export interface FuseMount {
  readonly mountpoint: string;
  /** Unmounts (idempotent); resolves once the kernel has let go. */
  unmount(): Promise<void>;
  /** Resolves when the mount is gone, whoever unmounted it. */
  readonly closed: Promise<void>;
}

interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
  _fuseOptions(): string;
}
type FuseClass = (new (
  mnt: string,
  ops: object,
  opts: object,
) => FuseInstance) & {
  unmount(mnt: string, cb: (err: Error | null) => void): void;
};

let fuseClass: FuseClass | undefined;

/** fuse-native is loaded on first mount only: the library works without libfuse installed. */
function loadFuse(): FuseClass {
  if (fuseClass) return fuseClass;
  const require = createRequire(import.meta.url);
  try {
    const Fuse = require("fuse-native") as FuseClass;
    // An instance's unmount runs this static (`fusermount -uz`) and releases its native session
    // (which holds the event loop) only if that succeeds. When the mount is already gone (bfc
    // umount, or fusermount from elsewhere) fusermount fails: count that as done, or the process
    // never exits.
    const unmount = Fuse.unmount.bind(Fuse);
    Fuse.unmount = (mnt, cb) =>
      unmount(mnt, (err) => cb(err && fuseMountpoints().has(path.resolve(mnt)) ? err : null));
    fuseClass = Fuse;
  } catch (e) {
    const msg = (e as Error).message;
    const hint = /libfuse\.so/.test(msg)
      ? "install libfuse2 (Debian: apt-get install libfuse2 fuse3)"
      : "is the fuse-native package installed?";
    throw new BfcError("ENOTSUP", "UNSUPPORTED", `FUSE is not available: ${msg}; ${hint}`, { cause: e });
  }
  return fuseClass;
}

/** Mount points of this mount namespace whose type is FUSE, from /proc/self/mountinfo. */
export function fuseMountpoints(): Set<string> {
  const out = new Set<string>();
  for (const m of hostMounts())
    if (m.fstype === "fuse" || m.fstype.startsWith("fuse.")) out.add(m.mountpoint);
  return out;
}

/**
 * Checks a mountpoint before mounting: an existing, empty directory, not a stale FUSE mount left by
 * a killed process (which answers ENOTCONN) — that one is reported with the command that clears it.
 */
export function checkMountpoint(mountpoint: string): string {
  const mp = path.resolve(mountpoint);
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

/** Serves `vfs`'s root at `mountpoint` through FUSE until unmounted. */
export async function mountFuse(
  vfs: Vfs,
  mountpoint: string,
  options: FuseMountOptions = {},
): Promise<FuseMount> {
  const Fuse = loadFuse();
  const mp = checkMountpoint(mountpoint);
  const extra: string[] = ["use_ino", "subtype=bfc"];
  if (options.fsname) extra.push(`fsname=${options.fsname.replace(/[,\\]/g, "_")}`);
  if (options.immutable)
    extra.push("ro", "kernel_cache", "entry_timeout=3600", "attr_timeout=3600", "negative_timeout=3600");
  else extra.push("entry_timeout=1", "attr_timeout=1");
  if (options.allowOther) extra.push("default_permissions");

  // fuse-native builds its -o list from a fixed set of flags; the rest is appended here.
  class BfcFuse extends Fuse {
    override _fuseOptions(): string {
      const base = super._fuseOptions();
      return base ? `${base},${extra.join(",")}` : `-o${extra.join(",")}`;
    }
  }
  const ops = createOperations(vfs, {
    debug: options.debug,
    uid: options.uid,
    gid: options.gid,
    immutable: options.immutable,
  });
  const fuse = new BfcFuse(mp, ops, {
    force: false,
    mkdir: false,
    allowOther: options.allowOther,
    debug: options.debug,
    // fuse-native would arm a timer per request (a measurable cost per lookup) and answer EIO when
    // it fires; a first read of a large entry legitimately takes seconds (it is verified whole).
    timeout: false,
  });
  await new Promise<void>((resolve, reject) => {
    fuse.mount((err) => {
      if (err) {
        reject(
          new BfcError("EIO", "IO_ERROR", `cannot mount at '${mp}': ${err.message}`, {
            path: mp,
            cause: err,
          }),
        );
      } else resolve();
    });
  });

  let done = false;
  let resolveClosed: () => void = () => {};
  const closed = new Promise<void>((r) => {
    resolveClosed = r;
  });
  const finish = (): void => {
    if (done) return;
    done = true;
    clearInterval(poll);
    resolveClosed();
  };
  // Someone else may unmount (bfc umount, fusermount -u): notice and let go of the session.
  const poll = setInterval(
    () => {
      if (!fuseMountpoints().has(mp)) {
        fuse.unmount(() => finish());
      }
    },
    (options.pollSeconds ?? 1) * 1000,
  );
  poll.unref();

  return {
    mountpoint: mp,
    closed,
    unmount: () =>
      new Promise<void>((resolve, reject) => {
        if (done) {
          resolve();
          return;
        }
        fuse.unmount((err) => {
          if (err && fuseMountpoints().has(mp)) {
            reject(
              new BfcError("EBUSY", "IO_ERROR", `cannot unmount '${mp}': ${err.message}`, {
                path: mp,
                cause: err,
              }),
            );
            return;
          }
          finish();
          resolve();
        });
      }),
  };
}

/** Unmounts a FUSE mountpoint (also a stale one) with fusermount; `lazy` detaches a busy one. */
export async function unmountFuse(mountpoint: string, options: { lazy?: boolean } = {}): Promise<void> {
  const mp = path.resolve(mountpoint);
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
