/**
 * The host mounts a started container needs, and their teardown: the overlay that gives the
 * read-only lower layer a writable upper directory, the mount table they are read from, and how a
 * mountpoint's health is judged (a FUSE mount whose server died answers ENOTCONN/ECONNABORTED).
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import { BfcError } from "../errors.ts";
import { hostMounts, mountsAtOrUnder } from "../fuse/host-mounts.ts";

export { mountsAtOrUnder };

export type MountHealth = "mounted" | "stale" | "unmounted";

/** Whether `dir` is a mountpoint, and whether the filesystem there still answers. */
export function mountHealth(dir: string): MountHealth {
  if (!hostMounts().some((m) => m.mountpoint === dir)) return "unmounted";
  try {
    fs.statSync(dir);
    fs.readdirSync(dir);
    return "mounted";
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOTCONN" || code === "ECONNABORTED" || code === "EIO") return "stale";
    return "mounted";
  }
}

function execTool(file: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: "utf8" }, (err, _out, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: unknown }) | null;
      if (e && typeof e.code === "string") resolve({ code: -1, stderr: e.message });
      else resolve({ code: e ? Number(e.code ?? 1) : 0, stderr: stderr.trim() });
    });
  });
}

/** Overlay option values cannot hold these (the kernel splits on them). */
function checkOverlayPath(p: string): void {
  if (/[,:\\\n]/.test(p)) {
    throw new BfcError(
      "EINVAL",
      "INVALID_ARGUMENT",
      `'${p}' cannot be used in an overlay mount (',', ':', '\\' and newlines are not allowed; choose other container_path/state_dir)`,
      { path: p },
    );
  }
}

/** overlayfs: `lower` read-only, changes in `upper` (whiteouts for deletions), `work` its scratch. */
export async function mountOverlay(
  lower: string,
  upper: string,
  work: string,
  target: string,
): Promise<void> {
  for (const p of [lower, upper, work, target]) checkOverlayPath(p);
  const r = await execTool("mount", [
    "-t",
    "overlay",
    "overlay",
    "-o",
    // No redirects, no metadata-only copy-ups: every change is a plain entry of the upper
    // directory, which is what a checkpoint reads (overlay-layer.ts).
    `lowerdir=${lower},upperdir=${upper},workdir=${work},redirect_dir=off,metacopy=off,index=off`,
    target,
  ]);
  if (r.code !== 0) {
    throw new BfcError(
      "EIO",
      "IO_ERROR",
      `cannot mount the overlay at '${target}': ${r.stderr || `exit ${r.code}`}`,
      {
        path: target,
      },
    );
  }
}

/**
 * Unmounts whatever is mounted at `dir` (any type, also a stale FUSE mount); a busy one is
 * detached lazily so teardown always completes. Nothing mounted is fine.
 */
export async function unmountAll(dir: string): Promise<void> {
  for (const m of mountsAtOrUnder(dir)) {
    let r = await execTool("umount", [m.mountpoint]);
    if (r.code !== 0 && hostMounts().some((x) => x.mountpoint === m.mountpoint)) {
      r = await execTool("umount", ["-l", m.mountpoint]);
      if (r.code !== 0 && hostMounts().some((x) => x.mountpoint === m.mountpoint)) {
        throw new BfcError("EBUSY", "IO_ERROR", `cannot unmount '${m.mountpoint}': ${r.stderr}`, {
          path: m.mountpoint,
        });
      }
    }
  }
}
