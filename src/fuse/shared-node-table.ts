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
/** meta, per id: arena offset, path length (UTF-16 units), hash, kernel references. */
const META = 4;
/**
 * The arena holds paths as UTF-16 code units (compared and decoded without any encoding step), this
 * many per node on average. Its memory is reserved up front and only touched as it fills (a growable
 * SharedArrayBuffer would do, but V8 reads length-tracking views several times slower).
 */
const ARENA_UNITS_PER_NODE = 256;

/** Whether the arena's code units are stored little-endian (what Buffer's "ucs2" decodes). */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < s.length; k++) h = Math.imul(h ^ s.charCodeAt(k), 0x01000193);
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
  private readonly arena: Uint16Array;
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
    this.arena = new Uint16Array(memory.arena);
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
    const t = new SharedNodeTable({
      ctl: new SharedArrayBuffer(8),
      slots: new SharedArrayBuffer(capacity * 4),
      meta: new SharedArrayBuffer((nodes + ROOT_ID + 1) * META * 4),
      arena: new SharedArrayBuffer(Math.min(2 ** 31 - 2, nodes * ARENA_UNITS_PER_NODE * 2)),
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
    // Node's native UTF-16LE decoder: ~15× faster than String.fromCharCode over the code units.
    const path = LITTLE_ENDIAN
      ? Buffer.from(this.memory.arena, off * 2, len * 2).toString("ucs2")
      : String.fromCharCode.apply(null, Array.from(this.arena.subarray(off, off + len)));
    this.paths.set(id, path);
    return path;
  }

  remember(path: string): number {
    const h = fnv1a(path);
    let mine = 0;
    for (let i = h & this.mask, probes = 0; probes <= this.mask; i = (i + 1) & this.mask, probes++) {
      let id = Atomics.load(this.slots, i);
      if (id === 0) {
        if (mine === 0) mine = this.allocate(path, h);
        id = Atomics.compareExchange(this.slots, i, 0, mine);
        if (id === 0) {
          Atomics.add(this.meta, mine * META + 3, 1);
          this.paths.set(mine, path);
          return mine;
        }
        // Another thread took this slot first; it may hold the same path.
      }
      if (this.holds(id, path, h)) {
        Atomics.add(this.meta, id * META + 3, 1);
        // (the kernel's next request for this id most likely comes here: keep the string)
        this.paths.set(id, path);
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

  /** Whether published id `id` names `path` (its metadata is visible: the slot was read atomically). */
  private holds(id: number, path: string, h: number): boolean {
    const m = id * META;
    const meta = this.meta;
    if (meta[m + 2] !== h || meta[m + 1] !== path.length) return false;
    const off = meta[m] as number;
    const a = this.arena;
    for (let k = 0; k < path.length; k++) if (a[off + k] !== path.charCodeAt(k)) return false;
    return true;
  }

  /** A fresh id with its path written (not yet published in the hash table). */
  private allocate(path: string, h: number): number {
    const id = Atomics.add(this.ctl, NEXT_ID, 1);
    if (id >= this.maxNodes) throw this.full();
    const off = Atomics.add(this.ctl, ARENA_TOP, path.length);
    if (off + path.length > this.arena.length) throw this.full();
    const a = this.arena;
    for (let k = 0; k < path.length; k++) a[off + k] = path.charCodeAt(k);
    const m = id * META;
    Atomics.store(this.meta, m, off);
    Atomics.store(this.meta, m + 2, h);
    Atomics.store(this.meta, m + 1, path.length);
    return id;
  }

  private full(): BfcError {
    return new BfcError(
      "EIO",
      "IO_ERROR",
      `the FUSE node table is full (${this.maxNodes} nodes, ${this.arena.length} path characters): the source has more entries than it was sized for`,
    );
  }
}
