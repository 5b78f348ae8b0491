import type fs from "node:fs";
import { nodeError } from "./errors.ts";

/**
 * `fs.Dir`'s shape: entries are read from a snapshot taken at opendir (a container's directory is
 * immutable; for writable types this matches readdir's view at that moment), plus `rewind()`.
 */
export class VfsDir {
  readonly path: string;
  private readonly entries: () => fs.Dirent[];
  private list: fs.Dirent[] | null = null;
  private pos = 0;
  private closed = false;

  constructor(path: string, entries: () => fs.Dirent[]) {
    this.path = path;
    this.entries = entries;
  }

  private check(syscall: string): void {
    if (this.closed) {
      const err = nodeError("EBADF", syscall);
      (err as Error & { code: string }).message = "Directory handle was closed";
      throw err;
    }
  }

  readSync(): fs.Dirent | null {
    this.check("opendir");
    if (this.list === null) this.list = this.entries();
    return this.list[this.pos++] ?? null;
  }

  read(): Promise<fs.Dirent | null>;
  read(callback: (err: Error | null, dirent: fs.Dirent | null) => void): void;
  read(
    callback?: (err: Error | null, dirent: fs.Dirent | null) => void,
  ): Promise<fs.Dirent | null> | undefined {
    const p = new Promise<fs.Dirent | null>((resolve) => resolve(this.readSync()));
    if (!callback) return p;
    p.then(
      (d) => callback(null, d),
      (e: Error) => callback(e, null),
    );
    return undefined;
  }

  /** Starts again from the first entry, re-reading the directory. */
  rewind(): void {
    this.check("opendir");
    this.list = null;
    this.pos = 0;
  }

  closeSync(): void {
    this.check("close");
    this.closed = true;
    this.list = null;
  }

  close(): Promise<void>;
  close(callback: (err: Error | null) => void): void;
  close(callback?: (err: Error | null) => void): Promise<void> | undefined {
    const p = new Promise<void>((resolve) => resolve(this.closeSync()));
    if (!callback) return p;
    p.then(
      () => callback(null),
      (e: Error) => callback(e),
    );
    return undefined;
  }

  async *entriesIterator(): AsyncGenerator<fs.Dirent> {
    try {
      for (;;) {
        const d = this.readSync();
        if (d === null) return;
        yield d;
      }
    } finally {
      if (!this.closed) this.closeSync();
    }
  }

  [Symbol.asyncIterator](): AsyncGenerator<fs.Dirent> {
    return this.entriesIterator();
  }

  *[Symbol.iterator](): Generator<fs.Dirent> {
    try {
      for (;;) {
        const d = this.readSync();
        if (d === null) return;
        yield d;
      }
    } finally {
      if (!this.closed) this.closeSync();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.closed) this.closeSync();
  }

  [Symbol.dispose](): void {
    if (!this.closed) this.closeSync();
  }
}
