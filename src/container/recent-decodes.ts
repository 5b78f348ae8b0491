/**
 * The decoded contents of the last few compressed entries read in pieces, in buffers that are
 * reused rather than allocated per entry. A file read through FUSE arrives as a few large requests
 * (the kernel's readahead: 256 KiB, then 512 KiB, …) that each need the whole frame decoded; keeping
 * the last decodes answers the later pieces with a copy. Reused buffers matter as much as the
 * decode saved: a fresh MiB-sized buffer per file costs hundreds of page faults, which on a
 * virtual machine take longer than the decode itself.
 */
export class RecentDecodes {
  private readonly ids: number[];
  private readonly buffers: (Buffer | undefined)[];
  private readonly lengths: number[];
  /** Slot to take next: the one used least recently. */
  private readonly order: number[];

  constructor(slots: number) {
    this.ids = new Array(slots).fill(-1);
    this.buffers = new Array(slots).fill(undefined);
    this.lengths = new Array(slots).fill(0);
    this.order = Array.from({ length: slots }, (_, k) => k);
  }

  /** The decoded bytes of entry `id`, if kept (valid until the next `put`). */
  get(id: number): Buffer | undefined {
    const s = this.ids.indexOf(id);
    if (s < 0) return undefined;
    this.touch(s);
    return (this.buffers[s] as Buffer).subarray(0, this.lengths[s]);
  }

  /** Keeps a copy of `data` as entry `id`'s contents, in the least recently used slot. */
  put(id: number, data: Uint8Array): void {
    let s = this.ids.indexOf(id);
    if (s < 0) s = this.order[0] as number;
    let buf = this.buffers[s];
    if (!buf || buf.length < data.length) {
      // Grown in steps of 1 MiB so entries of similar sizes share a slot's buffer.
      buf = Buffer.allocUnsafe(Math.ceil(Math.max(data.length, 1) / 1048576) * 1048576);
      this.buffers[s] = buf;
    }
    buf.set(data);
    this.ids[s] = id;
    this.lengths[s] = data.length;
    this.touch(s);
  }

  /** Forgets every entry and lets the buffers go. */
  clear(): void {
    this.ids.fill(-1);
    this.buffers.fill(undefined);
    this.lengths.fill(0);
  }

  private touch(s: number): void {
    const k = this.order.indexOf(s);
    this.order.splice(k, 1);
    this.order.push(s);
  }
}
