/**
 * The state directory: one folder per container id holding our record of it (state.json), the
 * bundle handed to the OCI runtime, the overlay's upper and work directories, the mountpoints and
 * the logs; beside them runc's own state root and the per-id lock files. Records are replaced
 * atomically (temporary file + rename), so a crash leaves the old record or the new one.
 */
import fs from "node:fs";
import path from "node:path";
import { BfcError } from "../errors.ts";
import { mountsAtOrUnder } from "./mounts.ts";

/** How far our side of the lifecycle got; the process side is asked of runc. */
export type Phase = "creating" | "created" | "started";

export interface ContainerRecord {
  id: string;
  backend: string;
  phase: Phase;
  /** The container file or folder holding the root filesystem and config.json. */
  artifact: string;
  /** The bundle it was created from, or null when an existing container file was adopted. */
  sourceBundle: string | null;
  annotations: Record<string, string>;
  /** ISO 8601 times. */
  created: string;
  started?: string;
  finished?: string;
  /** The process's exit status, when it was observed (attached runs). */
  exitStatus?: number;
  /** The process that ran `create` (to tell an interrupted create from one in progress). */
  creatorPid?: number;
  /** The process serving the read-only root, when one does. */
  mountPid?: number;
}

export interface ContainerPaths {
  dir: string;
  record: string;
  /** The bundle handed to the OCI runtime (config.json with root.path = rootfs). */
  bundle: string;
  /** Where the backend's read-only root is mounted, when it needs a mount. */
  lower: string;
  upper: string;
  work: string;
  /** The overlay: the container's root filesystem. */
  rootfs: string;
  /** The container process's stdout and stderr. */
  log: string;
  mountLog: string;
  runcLog: string;
}

export class StateStore {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  get containersDir(): string {
    return path.join(this.root, "containers");
  }

  /** runc's --root: its records of our containers only. */
  get runcRoot(): string {
    return path.join(this.root, "runc");
  }

  lockFile(id: string): string {
    return path.join(this.root, "locks", `${id}.lock`);
  }

  paths(id: string): ContainerPaths {
    const dir = path.join(this.containersDir, id);
    return {
      dir,
      record: path.join(dir, "state.json"),
      bundle: path.join(dir, "bundle"),
      lower: path.join(dir, "lower"),
      upper: path.join(dir, "upper"),
      work: path.join(dir, "work"),
      rootfs: path.join(dir, "rootfs"),
      log: path.join(dir, "container.log"),
      mountLog: path.join(dir, "mount.log"),
      runcLog: path.join(dir, "runc.log"),
    };
  }

  /** Whether anything is left for `id` (a record, or the debris of an interrupted create). */
  exists(id: string): boolean {
    return fs.existsSync(this.paths(id).dir);
  }

  /** Our record, or null when there is none; a damaged record is an error naming the way out. */
  read(id: string): ContainerRecord | null {
    const file = this.paths(id).record;
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw new BfcError("EIO", "IO_ERROR", `cannot read the state of '${id}': ${(e as Error).message}`, {
        path: file,
        cause: e,
      });
    }
    try {
      const rec = JSON.parse(text) as ContainerRecord;
      if (rec.id !== id || typeof rec.backend !== "string" || typeof rec.phase !== "string")
        throw new Error("fields");
      return rec;
    } catch (e) {
      throw new BfcError(
        "EIO",
        "BAD_STATE",
        `the state record of '${id}' (${file}) is damaged; 'bfc container delete --force ${id}' removes it`,
        { path: file, cause: e },
      );
    }
  }

  write(rec: ContainerRecord): void {
    const p = this.paths(rec.id);
    fs.mkdirSync(p.dir, { recursive: true });
    const tmp = `${p.record}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, `${JSON.stringify(rec, null, 2)}\n`);
    fs.renameSync(tmp, p.record);
  }

  /** Every id with a state folder, sorted. */
  ids(): string[] {
    try {
      return fs
        .readdirSync(this.containersDir, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
        .sort();
    } catch {
      return [];
    }
  }

  /** Removes the id's folder, never recursing into a mount left beneath it. */
  remove(id: string): void {
    const dir = this.paths(id).dir;
    const left = mountsAtOrUnder(dir);
    if (left.length > 0) {
      throw new BfcError(
        "EBUSY",
        "IO_ERROR",
        `cannot remove '${dir}': '${left[0]?.mountpoint}' is still mounted`,
        {
          path: dir,
        },
      );
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
