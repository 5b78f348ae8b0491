import type { Vfs } from "../vfs/vfs.ts";

/** Open VFS descriptors by path, least recently used first out; never closes one with reads in flight. */
export class PathHandles {
  private readonly open = new Map<string, { fd: number; busy: number }>();
  private readonly vfs: Vfs;
  private readonly max: number;

  constructor(vfs: Vfs, max: number) {
    this.vfs = vfs;
    this.max = max;
  }

  acquire(path: string): { fd: number; busy: number } {
    let h = this.open.get(path);
    if (h) {
      this.open.delete(path);
    } else {
      h = { fd: this.vfs.openSync(path, "r"), busy: 0 };
      if (this.open.size >= this.max) this.evict();
    }
    this.open.set(path, h);
    h.busy++;
    return h;
  }

  private evict(): void {
    for (const [p, h] of this.open) {
      if (this.open.size < this.max) break;
      if (h.busy > 0) continue;
      this.open.delete(p);
      try {
        this.vfs.closeSync(h.fd);
      } catch {
        // already gone with its mount
      }
    }
  }
}
