import { BfcError } from "../errors.ts";
import {
  type FuseSource,
  isRecipe,
  kernelBackendUnavailable,
  type MountSpec,
  mountKernel,
  openRecipe,
} from "./kernel-mount.ts";
import { checkMountpoint } from "./mountpoints.ts";

export { canonicalMountpoint, checkMountpoint, fuseMountpoints, unmountFuse } from "./mountpoints.ts";
export type { FuseSource, MountSpec };

export type FuseBackend = "kernel" | "native";

export interface FuseMountOptions {
  /**
   * The served tree never changes (containers, zips): the kernel may cache attributes, names,
   * negative lookups, listings and file pages for an hour, and the mount is read-only to the kernel
   * too.
   */
  immutable?: boolean;
  allowOther?: boolean;
  debug?: boolean;
  uid?: number;
  gid?: number;
  /** Shown as the source in /proc/mounts and `df`. */
  fsname?: string;
  /**
   * "kernel": speak the FUSE kernel protocol on /dev/fuse from worker threads (needs root);
   * "native": fuse-native (libfuse 2, works unprivileged through fusermount). Default: kernel where
   * it can be used, else native.
   */
  backend?: FuseBackend;
  /** Kernel backend, immutable recipes: serving threads (default: one per core). */
  threads?: number;
  /** Kernel backend: when directory listings carry attributes (see HandlerOptions.readdirplus). */
  readdirplus?: "adaptive" | "always" | "auto" | "never";
  /** Native backend: seconds between checks that the mount is still there. */
  pollSeconds?: number;
}

export interface FuseMount {
  readonly mountpoint: string;
  readonly backend: FuseBackend;
  /** Unmounts (idempotent); resolves once the kernel has let go. */
  unmount(): Promise<void>;
  /** Resolves when the mount is gone, whoever unmounted it. */
  readonly closed: Promise<void>;
}

/**
 * Serves `source` at `mountpoint` through FUSE until unmounted: a live VFS, or the recipe of one
 * (which lets the kernel backend serve an immutable source from one thread per core).
 */
export async function mountFuse(
  source: FuseSource,
  mountpoint: string,
  options: FuseMountOptions = {},
): Promise<FuseMount> {
  const mp = checkMountpoint(mountpoint);
  if (options.backend !== "native") {
    const why = kernelBackendUnavailable();
    if (why === undefined) {
      try {
        return await mountKernel(source, mp, options);
      } catch (e) {
        if (options.backend === "kernel" || (e as BfcError).reason !== "UNSUPPORTED") throw e;
        if (options.debug) process.stderr.write(`bfc mount: ${(e as Error).message}; using fuse-native\n`);
      }
    } else if (options.backend === "kernel") {
      throw new BfcError("ENOTSUP", "UNSUPPORTED", `the kernel FUSE backend cannot be used here: ${why}`);
    }
  }
  // fuse-native (and libfuse) are loaded only when this fallback is taken.
  const { mountNative } = await import("./native-mount.ts");
  if (!isRecipe(source)) return mountNative(source, mp, options);
  const vfs = await openRecipe(source);
  let m: FuseMount;
  try {
    m = await mountNative(vfs, mp, options);
  } catch (e) {
    await vfs.unmountAll();
    throw e;
  }
  return { ...m, closed: m.closed.then(() => vfs.unmountAll()), unmount: m.unmount };
}
