import { nodeError } from "./errors.ts";
import type { FileHandle, NodeStat } from "./filesystem.ts";
import type { Mount } from "./mount-table.ts";

/** One open description: the file, its offset and how it was opened. */
export interface OpenFile {
  fd: number;
  mount: Mount;
  vpath: string;
  rel: string;
  /** null for a directory opened for reading (reads fail with EISDIR, as on Linux). */
  handle: FileHandle | null;
  dirStat: NodeStat | null;
  flags: number;
  position: number;
  readable: boolean;
  writable: boolean;
  append: boolean;
}

/**
 * Descriptors are small integers like the kernel's (lowest free first, from 3 so they never look
 * like stdio). The table is bounded: past `max` open files, open fails with EMFILE.
 */
export class FdTable {
  private readonly files = new Map<number, OpenFile>();
  private readonly free: number[] = [];
  private next = 3;
  readonly max: number;

  constructor(max: number) {
    this.max = max;
  }

  add(file: Omit<OpenFile, "fd">, syscall: string, path: string): OpenFile {
    if (this.files.size >= this.max) throw nodeError("EMFILE", syscall, path);
    let fd: number;
    if (this.free.length > 0) {
      // Lowest free number first, as POSIX open does.
      let k = 0;
      for (let j = 1; j < this.free.length; j++)
        if ((this.free[j] as number) < (this.free[k] as number)) k = j;
      fd = this.free[k] as number;
      this.free[k] = this.free[this.free.length - 1] as number;
      this.free.pop();
    } else {
      fd = this.next++;
    }
    const f = file as OpenFile;
    f.fd = fd;
    this.files.set(fd, f);
    file.mount.openFiles++;
    return f;
  }

  get(fd: number, syscall: string): OpenFile {
    const f = typeof fd === "number" ? this.files.get(fd) : undefined;
    if (!f) throw nodeError("EBADF", syscall);
    return f;
  }

  remove(fd: number, syscall: string): OpenFile {
    const f = this.get(fd, syscall);
    this.files.delete(fd);
    this.free.push(fd);
    f.mount.openFiles--;
    return f;
  }

  get size(): number {
    return this.files.size;
  }

  values(): IterableIterator<OpenFile> {
    return this.files.values();
  }
}
