/**
 * The backend plugin contract. A backend owns how a container's root filesystem is stored (a BFC
 * container file, a plain folder, …) and carries the container through the OCI lifecycle. The
 * manager (manager.ts) holds the per-id lock around every call, so a backend never sees two
 * operations on one id at once.
 */
import type { Readable, Writable } from "node:stream";
import type { OciState, OciStatus } from "./oci-spec.ts";

export interface ContainerInfo {
  id: string;
  backend: string;
  status: OciStatus | "paused";
  pid?: number;
  /** ISO 8601. */
  created: string;
  /** The container file or folder. */
  artifact: string;
  /** Its size on disk in bytes. */
  diskBytes: number;
}

/** The state document: OCI fields plus what this runtime knows beyond them (under `bfcfs`). */
export interface ContainerState extends Omit<OciState, "status"> {
  status: OciStatus | "paused";
  bfcfs: {
    backend: string;
    artifact: string;
    /** Whether the root filesystem is mounted, and answering ("stale": a serving process died). */
    rootfs: "mounted" | "stale" | "unmounted";
    sourceBundle: string | null;
    created: string;
    started?: string;
    finished?: string;
    exitStatus?: number;
    /** A `create` that was interrupted (its process is gone): only `delete` applies. */
    interrupted?: boolean;
  };
}

export interface CreateOptions {
  /**
   * The OCI bundle to pack. Without it an existing container file or folder at the backend's
   * path for this id is adopted (kept by `delete --keep`, or copied from another machine).
   */
  bundle?: string;
}

export interface AttachedIo {
  stdin: Readable | "inherit" | "ignore";
  stdout: Writable;
  stderr: Writable;
}

export interface StartOptions {
  /** Run attached: the process's output goes to these streams (and the log) instead of the log only. */
  attach?: AttachedIo;
}

export interface StartResult {
  state: ContainerState;
  /** Attached starts: resolves with the exit status when the process ends. */
  exited?: Promise<number>;
}

export interface StopOptions {
  /** Seconds to wait after `signal` before SIGKILL (default from the configuration). */
  timeout?: number;
  /** The first signal (default SIGTERM). */
  signal?: string;
  /** An exit status already observed by an attached run, to record. */
  exitStatus?: number;
}

export interface DeleteOptions {
  /** Stop a created or running container first (SIGKILL) instead of refusing. */
  force?: boolean;
  /** Keep the container file or folder (only the runtime state goes). */
  keep?: boolean;
}

export interface CheckpointOptions {
  /** Letters, digits, `_`, `.`, `-`, not all digits (default `checkpoint-<commit>`). */
  name?: string;
}

export interface CheckpointResult {
  name: string;
  /** The commit of the container that holds it. */
  commit: number;
  /** Whether the process was frozen while the layer was read (a running container). */
  frozen: boolean;
  files: number;
  directories: number;
  symlinks: number;
  removed: number;
  /** Upper-layer entries a container cannot hold (devices, FIFOs, sockets), left out. */
  skipped: string[];
}

export interface RestoreOptions {
  /** A checkpoint's name, or a commit number (1 = the container as created). */
  from: string;
}

export interface CheckpointInfo {
  commit: number;
  /** The checkpoint's name; null for commits that are not checkpoints. */
  name: string | null;
  message?: string;
  time?: string;
}

export interface Backend {
  readonly name: string;
  /** Why this backend cannot run containers on this machine, or null when it can. */
  unavailable(): string | null;
  /** Ids of the containers this backend holds (by their records). */
  list(): Promise<ContainerInfo[]>;
  createContainer(id: string, options: CreateOptions): Promise<ContainerState>;
  startContainer(id: string, options?: StartOptions): Promise<StartResult>;
  stopContainer(id: string, options?: StopOptions): Promise<ContainerState>;
  deleteContainer(id: string, options?: DeleteOptions): Promise<void>;
  state(id: string): Promise<ContainerState>;
  /** The file holding the process's output. */
  logFile(id: string): string;
  /**
   * Filesystem checkpoints (optional): the writable layer committed into the stored root under a
   * name; `restore` makes a checkpoint (or any commit) the root again and starts the container.
   */
  checkpoint?(id: string, options?: CheckpointOptions): Promise<CheckpointResult>;
  restore?(id: string, options: RestoreOptions): Promise<ContainerState>;
  checkpoints?(id: string): Promise<CheckpointInfo[]>;
}
