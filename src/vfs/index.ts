/** The virtual filesystem: mount table, filesystem types and the `node:fs`-shaped API. */

import { bfcType } from "./types/bfc.ts";
import { diskType } from "./types/disk.ts";
import { hostType } from "./types/host.ts";
import { memoryType } from "./types/memory.ts";
import { zipType } from "./types/zip.ts";
import { Vfs, type VfsOptions } from "./vfs.ts";

/** The filesystem types every VFS starts with. */
export const builtinTypes = [bfcType, zipType, hostType, memoryType, diskType] as const;

/**
 * A VFS with the built-in types (bfc, zip, host, memory, disk) registered; `options.types` adds or
 * replaces types.
 */
export function createVfs(options: VfsOptions = {}): Vfs {
  return new Vfs({ ...options, types: [...builtinTypes, ...(options.types ?? [])] as VfsOptions["types"] });
}

export { VfsDir } from "./dir.ts";
export { fsError, nodeError } from "./errors.ts";
export type {
  Capabilities,
  DirEntry,
  FileHandle,
  FileSystem,
  FileSystemType,
  FileType,
  NodeStat,
  StatFs,
} from "./filesystem.ts";
export { VfsReadStream, VfsWriteStream } from "./streams.ts";
export { type BfcMountOptions, bfcType } from "./types/bfc.ts";
export { type DiskMountOptions, diskType } from "./types/disk.ts";
export { hostType } from "./types/host.ts";
export { memoryType } from "./types/memory.ts";
export { zipType } from "./types/zip.ts";
export {
  type MountInfo,
  type MountOptions,
  Vfs,
  VfsFileHandle,
  type VfsOptions,
  VfsPromises,
} from "./vfs.ts";
