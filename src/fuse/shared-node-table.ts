import { BfcError } from "../errors.ts";
import type { NodeIds } from "./node-table.ts";
import { ROOT_ID } from "./protocol.ts";

/** The shared memory of a SharedNodeTable, as handed to other threads (structured-cloneable). */
export interface SharedNodeMemory {
  ctl: SharedArrayBuffer;
  slots: SharedArrayBuffer;
  meta: SharedArrayBuffer;
  arena: SharedArrayBuffer;
}

/** ctl: next id to hand out, next free arena byte. */
const NEXT_ID = 0;
const ARENA_TOP = 1;
/** meta, per id: arena offset, path length in bytes, hash, kernel references. */
const META = 4;
const ARENA_INITIAL = 1 << 20;

function fnv1aBytes(b: Buffer): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < b.length; k++) h = Math.imul(h ^ (b[k] as number), 0x01000193);
  return h | 0;
}

/**
 * Node ids shared by several threads serving one immutable source: whichever thread answers a
 * LOOKUP, every other one can resolve the id the kernel later sends it. Paths live in shared memory
 * (an open-addressing hash table of ids, per-id metadata and a byte arena); an id is published with a
 * compare-and-swap only after its path is written, and the kernel can only send an id back after the
 * reply carrying it, so a thread that receives an id always finds its path.
 *
 * Nothing is ever removed: an immutable source has a fixed set of paths, so the table is bounded by
 * the source's entries (it is sized from them), and an id forgotten by the kernel and looked up again
 * gets the same number. References are still counted (FORGET), for inspection.
 */
export class SharedNodeTable implements NodeIds {
  private readonly ctl: Int32Array;
  private readonly slots: Int32Array;
  private readonly meta: Int32Array;
  private readonly arenaSab: SharedArrayBuffer;
  private readonly mask: number;
  private readonly maxNodes: number;
  private readonly memory: SharedNodeMemory;
  /** Paths this thread has decoded, by id. */
  private readonly paths = new Map<number, string>();

  private constructor(memory: SharedNodeMemory) {
    this.memory = memory;
    this.ctl = new Int32Array(memory.ctl);
    this.slots = new Int32Array(memory.slots);
    this.meta = new Int32Array(memory.meta);
    this.arenaSab = memory.arena;
    this.mask = this.slots.length - 1;
    this.maxNodes = this.meta.length / META;
  }

  /**
   * A table for up to `maxNodes` nodes (the source's entries and the directories implied by them,
   * with room to spare); the root is id 1.
   */
  static create(maxNodes: number): SharedNodeTable {
    const nodes = Math.max(1024, Math.ceil(maxNodes));
    let capacity = 1024;
    while (capacity < nodes * 2) capacity *= 2;
    const maxArena = Math.min(2 ** 31 - 1, Math.max(ARENA_INITIAL, nodes * 4096));
    const t = new SharedNodeTable({
      ctl: new SharedArrayBuffer(8),
      slots: new SharedArrayBuffer(capacity * 4),
      meta: new SharedArrayBuffer((nodes + ROOT_ID + 1) * META * 4),
      arena: new SharedArrayBuffer(Math.min(ARENA_INITIAL, maxArena), { maxByteLength: maxArena }),
    });
    Atomics.store(t.ctl, NEXT_ID, ROOT_ID);
    if (t.remember("/") !== ROOT_ID) throw new Error("the root must be the first node");
    return t;
  }

  /** The same table in another thread. */
  static attach(memory: SharedNodeMemory): SharedNodeTable {
    return new SharedNodeTable(memory);
  }

  share(): SharedNodeMemory {
    return this.memory;
  }

  /** Ids handed out so far (the root included). */
  get size(): number {
    return Math.min(Atomics.load(this.ctl, NEXT_ID), this.maxNodes) - ROOT_ID;
  }

  /** References the kernel holds to `id`. */
  lookups(id: number): number {
    return id > 0 && id < this.maxNodes ? Atomics.load(this.meta, id * META + 3) : 0;
  }

  pathOf(id: number): string | undefined {
    const hit = this.paths.get(id);
    if (hit !== undefined) return hit;
    if (!(id >= ROOT_ID && id < this.maxNodes)) return undefined;
    const len = Atomics.load(this.meta, id * META + 1);
    if (len <= 0) return undefined;
    const off = Atomics.load(this.meta, id * META);
    const path = Buffer.from(this.arenaSab, off, len).toString("utf8");
    this.paths.set(id, path);
    return path;
  }

  remember(path: string): number {
    const bytes = Buffer.from(path);
    const h = fnv1aBytes(bytes);
    let mine = 0;
    for (let i = h & this.mask, probes = 0; probes <= this.mask; i = (i + 1) & this.mask, probes++) {
      let id = Atomics.load(this.slots, i);
      if (id === 0) {
        if (mine === 0) mine = this.allocate(bytes, h);
        id = Atomics.compareExchange(this.slots, i, 0, mine);
        if (id === 0) {
          Atomics.add(this.meta, mine * META + 3, 1);
          return mine;
        }
        // Another thread took this slot first; it may hold the same path.
      }
      if (this.holds(id, bytes, h)) {
        Atomics.add(this.meta, id * META + 3, 1);
        return id;
      }
    }
    throw this.full();
  }

  forget(id: number, n: number): void {
    if (id > ROOT_ID && id < this.maxNodes) Atomics.sub(this.meta, id * META + 3, n);
  }

  moved(): void {
    throw new BfcError("EROFS", "UNSUPPORTED", "a shared node table serves immutable sources only");
  }

  removed(): void {
    throw new BfcError("EROFS", "UNSUPPORTED", "a shared node table serves immutable sources only");
  }

  private holds(id: number, bytes: Buffer, h: number): boolean {
    const m = id * META;
    if (Atomics.load(this.meta, m + 2) !== h || Atomics.load(this.meta, m + 1) !== bytes.length) return false;
    const off = Atomics.load(this.meta, m);
    return bytes.compare(Buffer.from(this.arenaSab, off, bytes.length)) === 0;
  }

  /** A fresh id with its path written (not yet published in the hash table). */
  private allocate(bytes: Buffer, h: number): number {
    const id = Atomics.add(this.ctl, NEXT_ID, 1);
    if (id >= this.maxNodes) throw this.full();
    const off = Atomics.add(this.ctl, ARENA_TOP, bytes.length);
    const end = off + bytes.length;
    if (end > this.arenaSab.maxByteLength) throw this.full();
    while (this.arenaSab.byteLength < end) {
      const want = Math.min(this.arenaSab.maxByteLength, Math.max(end, this.arenaSab.byteLength * 2));
      try {
        this.arenaSab.grow(want);
      } catch {
        // another thread grew it meanwhile (to at least as much); check again
      }
    }
    bytes.copy(Buffer.from(this.arenaSab, off, bytes.length));
    const m = id * META;
    Atomics.store(this.meta, m, off);
    Atomics.store(this.meta, m + 2, h);
    Atomics.store(this.meta, m + 1, bytes.length);
    return id;
  }

  private full(): BfcError {
    return new BfcError(
      "EIO",
      "IO_ERROR",
      `the FUSE node table is full (${this.maxNodes} nodes): the source has more entries than it was sized for`,
    );
  }
}
