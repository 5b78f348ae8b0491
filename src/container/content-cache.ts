/**
 * A byte-bounded LRU of decoded file contents, so repeated random reads of a compressed or
 * encrypted file decode it once (keyed by entry index), and of blocks of the container file
 * that serve small reads of stored files (keyed by -1 - block number). One item may exceed the
 * budget (it then is the only item), which keeps sync random reads of a large compressed file
 * from decoding it again on every call.
 */
export class ContentCache {
  private readonly map = new Map<number, Buffer>();
  private bytes = 0;
  readonly budget: number;

  constructor(budget: number) {
    this.budget = budget;
  }

  get(key: number): Buffer | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: number, value: Buffer): void {
    if (this.budget <= 0) return;
    const old = this.map.get(key);
    if (old !== undefined) {
      this.bytes -= old.length;
      this.map.delete(key);
    }
    this.map.set(key, value);
    this.bytes += value.length;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.budget || this.map.size <= 1) break;
      this.map.delete(k);
      this.bytes -= v.length;
    }
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }

  get size(): number {
    return this.bytes;
  }
}
