import { createRequire } from "node:module";
import path from "node:path";
import { BfcError } from "../errors.ts";
import type { Vfs } from "../vfs/vfs.ts";
import type { FuseMount, FuseMountOptions } from "./mount.ts";
import { fuseMountpoints } from "./mountpoints.ts";
import { createOperations } from "./operations.ts";

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

/**
 * Serves `vfs`'s root at `mp` (checked by the caller) through fuse-native (libfuse 2): the fallback
 * where the kernel protocol cannot be spoken directly (not root). Every request crosses from a
 * libfuse thread to the JS thread and back.
 */
export async function mountNative(vfs: Vfs, mp: string, options: FuseMountOptions = {}): Promise<FuseMount> {
  const Fuse = loadFuse();
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
    backend: "native",
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
