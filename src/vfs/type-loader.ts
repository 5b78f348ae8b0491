import { BfcError } from "../errors.ts";
import type { FileSystemType } from "./filesystem.ts";

/**
 * The built-in filesystem types by name, each loaded only when asked for: a process (or a worker
 * thread) that serves one container should not load the zip reader and its dependencies.
 */
const LOADERS: Record<string, () => Promise<FileSystemType<never>>> = {
  bfc: async () => (await import("./types/bfc.ts")).bfcType as FileSystemType<never>,
  zip: async () => (await import("./types/zip.ts")).zipType as FileSystemType<never>,
  host: async () => (await import("./types/host.ts")).hostType as FileSystemType<never>,
  memory: async () => (await import("./types/memory.ts")).memoryType as FileSystemType<never>,
  disk: async () => (await import("./types/disk.ts")).diskType as FileSystemType<never>,
};

export async function loadBuiltinType(name: string): Promise<FileSystemType<never>> {
  const load = LOADERS[name];
  if (!load) {
    throw new BfcError(
      "EINVAL",
      "INVALID_ARGUMENT",
      `unknown filesystem type '${name}' (known: ${Object.keys(LOADERS).join(", ")})`,
    );
  }
  return load();
}
