/**
 * A byte-bounded cache of decoded file contents, so repeated random reads of a compressed or
 * encrypted file decode it once (keyed by entry index), and of blocks of the container file
 * that serve small reads of stored files (keyed by -1 - block number). One item may exceed the
 * budget (it then is the only item), which keeps sync random reads of a large compressed file
 * from decoding it again on every call.
 *
 * Eviction is CLOCK (second chance), an approximation of LRU in which a hit only sets a flag and
 * an eviction only moves a hand over arrays. A 4 KiB read from a cached block costs about a
 * microsecond; reordering a Map on every hit (or every eviction step) allocated, and the garbage
 * collections it caused cost more than the reads.
 */
export class ContentCache {
  /** Key → slot; a slot holds the key, the bytes and the "used since the hand passed" flag. */
  private readonly slots = new Map<number, number>();
  private readonly keys: number[] = [];
  private readonly values: (Buffer | undefined)[] = [];
  private readonly used: number[] = [];
  private readonly free: number[] = [];
  private hand = 0;
  private bytes = 0;
  readonly budget: number;
  private readonly onEvict: ((value: Buffer) => void) | undefined;

  /**
   * `onEvict` receives each value pushed out by a `set` (never one replaced under its key or
   * dropped by `clear`), for an owner that recycles them: nothing else may hold a value then.
   */
  constructor(budget: number, onEvict?: (value: Buffer) => void) {
    this.budget = budget;
    this.onEvict = onEvict;
  }

  get(key: number): Buffer | undefined {
    const s = this.slots.get(key);
    if (s === undefined) return undefined;
    this.used[s] = 1;
    return this.values[s];
  }

  set(key: number, value: Buffer): void {
    if (this.budget <= 0) return;
    let s = this.slots.get(key);
    if (s !== undefined) {
      this.bytes -= (this.values[s] as Buffer).length;
    } else {
      s = this.free.pop() ?? this.keys.length;
      this.keys[s] = key;
      this.slots.set(key, s);
    }
    this.values[s] = value;
    this.used[s] = 1;
    this.bytes += value.length;
    // The item just stored is never the one evicted: it stays even alone over the budget.
    while (this.bytes > this.budget && this.slots.size > 1) {
      if (this.hand >= this.keys.length) this.hand = 0;
      const h = this.hand++;
      const v = this.values[h];
      if (v === undefined || h === s) continue;
      if (this.used[h] === 1) {
        this.used[h] = 0;
        continue;
      }
      this.slots.delete(this.keys[h] as number);
      this.values[h] = undefined;
      this.free.push(h);
      this.bytes -= v.length;
      this.onEvict?.(v);
    }
  }

  clear(): void {
    this.slots.clear();
    this.keys.length = 0;
    this.values.length = 0;
    this.used.length = 0;
    this.free.length = 0;
    this.hand = 0;
    this.bytes = 0;
  }

  get size(): number {
    return this.bytes;
  }
}
