/**
 * What distinguishes one backend from another: where a container's root filesystem and
 * config.json are kept, and how the read-only root is made available to the overlay. The rest of
 * the lifecycle (overlay, OCI runtime, state) is shared (lifecycle.ts).
 */
import type { MountHealth } from "./mounts.ts";
import type { Bundle, OciConfig } from "./oci-spec.ts";
import type { LayerTarget } from "./overlay-layer.ts";
import type { ContainerPaths } from "./state-store.ts";

export interface RootfsStorage {
  readonly name: string;
  /** Why containers of this kind cannot be started here (e.g. no FUSE), or null. */
  unavailable(): string | null;
  /** The container file or folder for `id`. */
  artifactPath(id: string): string;
  /** Stores the bundle's root filesystem and `config` (root.path already "rootfs") at artifactPath(id). */
  pack(id: string, bundle: Bundle, config: OciConfig): Promise<void>;
  /** The config.json kept with the container, validated. */
  readConfig(id: string): Promise<OciConfig>;
  /** Makes the read-only root available; returns the folder to use as the overlay's lower layer. */
  mountLower(id: string, paths: ContainerPaths): Promise<{ lower: string; pid?: number }>;
  /** Whether the read-only root is mounted and answering; "none" when it needs no mount (a folder). */
  lowerHealth(id: string, paths: ContainerPaths): MountHealth | "none";
  /** Releases the read-only root (also when its server died). */
  unmountLower(id: string, paths: ContainerPaths): Promise<void>;
  /** Removes the container file or folder, and any leftovers of an interrupted pack. */
  removeArtifact(id: string): Promise<void>;
  /** Bytes on disk. */
  diskBytes(id: string): number;
  /** Filesystem checkpoints as commits of the stored root (optional: only append-only containers). */
  readonly commits?: CommitStore;
}

export interface CommitInfo {
  commit: number;
  message?: string;
  /** ISO 8601. */
  time?: string;
}

export interface CommitStore {
  /** Opens the latest commit's root filesystem for `edit`, then commits the changes with `message`. */
  apply(
    id: string,
    message: string,
    edit: (root: LayerTarget) => Promise<void>,
  ): Promise<{ commit: number; changed: boolean }>;
  /** Every commit, newest first. */
  list(id: string): Promise<CommitInfo[]>;
  /** Makes commit `commit`'s tree the latest again (a new commit with `message`); returns its number. */
  reset(id: string, commit: number, message: string): Promise<number>;
}
