import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { lazyCrypto } from "../codec/builtins.ts";

/**
 * Decoded copies of large compressed entries ("spill files"), so random reads of them become
 * positioned reads. BFC v1 stores a file as one zstd frame: without a copy, a read at offset x must
 * decode everything before x. The copy is written during the entry's verification pass (which
 * decodes the whole entry anyway) and published only once that pass has checked size and checksum,
 * so nothing unverified is ever read from it.
 *
 * Copies are unlinked temporary files (nothing is left behind, even after a crash), bounded in total
 * size; the least recently read copy is dropped to make room, and an entry that does not fit is read
 * the old way. Everything about the copies lives in shared memory, so the threads of a process (FUSE
 * serving threads) share them: any thread makes a copy (synchronously, or asynchronously with an
 * event loop), the others wait for a copy being made instead of making it again, and every thread
 * reads them through the same descriptors. A worker thread that makes copies must be started with
 * `trackUnmanagedFds: false`: otherwise Node closes its descriptors when it ends, under the others.
 */

export interface SpillOptions {
  /** Where the (immediately unlinked) files are made; default: the OS temp directory. */
  dir?: string;
  /** Total bytes of copies kept; default: 4 GiB or half the directory's free space, whichever is less. */
  maxBytes?: number;
}

/** A SpillStore's shared state, for `SpillStore.attach` in another thread (structured-cloneable). */
export interface SpillShare {
  spillTable: SharedArrayBuffer;
  dir: string;
}

const SLOTS = 64;
/** Per slot: entry index + 1 (0: free), state, fd, readers, size (low, high), last use. */
const SLOT_INTS = 8;
const ENTRY = 0;
const STATE = 1;
const FD = 2;
const READERS = 3;
const SIZE_LO = 4;
const SIZE_HI = 5;
const USED = 6;
/** Ints before the slots: use counter (LRU clock), KiB reserved, budget in KiB, a lock for room-making. */
const HEAD = 4;
const TICK = 0;
const RESERVED_KIB = 1;
const BUDGET_KIB = 2;
const LOCK = 3;

const FREE = 0;
const FILLING = 1;
const READY = 2;
const DROPPING = 3;

const DEFAULT_MAX = 4 * 1024 ** 3;
const TWO32 = 2 ** 32;

function defaultMax(dir: string): number {
  try {
    const s = fs.statfsSync(dir);
    return Math.min(DEFAULT_MAX, Math.floor((s.bavail * s.bsize) / 2));
  } catch {
    return DEFAULT_MAX;
  }
}

const kib = (bytes: number) => Math.ceil(bytes / 1024);

/** Writes all of `buf` at `position`; into the page cache, so a synchronous write costs a copy. */
function writeAll(fd: number, buf: Uint8Array, position: number): void {
  for (let done = 0; done < buf.length; )
    done += fs.writeSync(fd, buf, done, buf.length - done, position + done);
}

/** How a fill ends: the copy is there, no copy can be kept (read another way), or the content failed. */
type Claim = { slot: number } | "ready" | "no-room";

export class SpillStore {
  private readonly table: Int32Array;
  private readonly shared: SpillShare;
  private readonly owner: boolean;
  /** Async fills of this thread in progress, by entry. */
  private readonly filling = new Map<number, Promise<boolean>>();

  private constructor(share: SpillShare, owner: boolean) {
    this.shared = share;
    this.table = new Int32Array(share.spillTable);
    this.owner = owner;
  }

  /** A store; its creator closes it once no other thread uses it. */
  static create(options: SpillOptions = {}): SpillStore {
    const dir = options.dir ?? os.tmpdir();
    const maxBytes = options.maxBytes ?? defaultMax(dir);
    const store = new SpillStore(
      { spillTable: new SharedArrayBuffer((HEAD + SLOTS * SLOT_INTS) * 4), dir },
      true,
    );
    Atomics.store(store.table, BUDGET_KIB, Math.min(2 ** 31 - 1, Math.floor(maxBytes / 1024)));
    return store;
  }

  /** The same store in another thread. */
  static attach(share: SpillShare): SpillStore {
    return new SpillStore(share, false);
  }

  static isShare(v: unknown): v is SpillShare {
    return typeof v === "object" && v !== null && (v as SpillShare).spillTable instanceof SharedArrayBuffer;
  }

  share(): SpillShare {
    return this.shared;
  }

  /** The budget in bytes. */
  get maxBytes(): number {
    return Atomics.load(this.table, BUDGET_KIB) * 1024;
  }

  /** Whether an entry of `size` bytes could have a copy at all. */
  fits(size: number): boolean {
    return kib(size) <= Atomics.load(this.table, BUDGET_KIB);
  }

  private at(slot: number, field: number): number {
    return HEAD + slot * SLOT_INTS + field;
  }

  private sizeOf(s: number): number {
    const t = this.table;
    return (Atomics.load(t, this.at(s, SIZE_LO)) >>> 0) + Atomics.load(t, this.at(s, SIZE_HI)) * TWO32;
  }

  private find(i: number, state: number): number {
    const t = this.table;
    for (let s = 0; s < SLOTS; s++) {
      if (Atomics.load(t, this.at(s, ENTRY)) === i + 1 && Atomics.load(t, this.at(s, STATE)) === state)
        return s;
    }
    return -1;
  }

  /** Whether entry `i` has a verified copy now. */
  has(i: number): boolean {
    return this.find(i, READY) >= 0;
  }

  /**
   * Reads up to `length` bytes of entry `i`'s copy at `position` into `target[offset…]`; -1 when it
   * has no copy (never made, or dropped). Any thread.
   */
  readInto(i: number, target: Uint8Array, offset: number, length: number, position: number): number {
    const t = this.table;
    const s = this.find(i, READY);
    if (s < 0) return -1;
    // Announce the read first, then check the copy is still there: a copy is dropped only after it
    // is marked and seen without readers, so one of the two always sees the other.
    Atomics.add(t, this.at(s, READERS), 1);
    try {
      if (Atomics.load(t, this.at(s, STATE)) !== READY || Atomics.load(t, this.at(s, ENTRY)) !== i + 1)
        return -1;
      const fd = Atomics.load(t, this.at(s, FD));
      const end = Math.min(this.sizeOf(s), position + length);
      let done = 0;
      while (position + done < end) {
        const n = fs.readSync(fd, target, offset + done, end - position - done, position + done);
        if (n === 0) break;
        done += n;
      }
      Atomics.store(t, this.at(s, USED), Atomics.add(t, TICK, 1));
      return done;
    } finally {
      Atomics.sub(t, this.at(s, READERS), 1);
    }
  }

  /**
   * Takes a free slot for entry `i` with room for `size` bytes, or says why not. A copy of `i`
   * being made by another thread: "ready" once it is there (or when that attempt failed, a slot).
   */
  private claim(i: number, size: number, wait: boolean): Claim | { waitOn: number } {
    const t = this.table;
    for (;;) {
      if (this.find(i, READY) >= 0) return "ready";
      const busy = this.find(i, FILLING);
      if (busy >= 0) {
        if (!wait) return { waitOn: busy };
        Atomics.wait(t, this.at(busy, STATE), FILLING, 200);
        continue;
      }
      if (!this.fits(size) || !this.reserve(size)) return "no-room";
      let slot = -1;
      for (let s = 0; s < SLOTS && slot < 0; s++) {
        if (Atomics.compareExchange(t, this.at(s, STATE), FREE, FILLING) === FREE) slot = s;
      }
      if (slot < 0) {
        Atomics.sub(t, RESERVED_KIB, kib(size));
        return "no-room";
      }
      Atomics.store(t, this.at(slot, ENTRY), i + 1);
      // Two threads may claim the same entry at once: the lower slot keeps it, the other waits.
      const other = this.otherClaim(i, slot);
      if (other < 0 || other > slot) return { slot };
      this.release(slot, size);
    }
  }

  private otherClaim(i: number, mine: number): number {
    const t = this.table;
    for (let s = 0; s < SLOTS; s++) {
      if (
        s !== mine &&
        Atomics.load(t, this.at(s, ENTRY)) === i + 1 &&
        Atomics.load(t, this.at(s, STATE)) === FILLING
      )
        return s;
    }
    return -1;
  }

  /** Reserves room for `size` bytes, dropping least recently read copies (none being read). */
  private reserve(size: number): boolean {
    const t = this.table;
    const need = kib(size);
    const budget = Atomics.load(t, BUDGET_KIB);
    // One thread at a time picks victims (a spin lock held for a scan of 64 slots).
    while (Atomics.compareExchange(t, LOCK, 0, 1) !== 0) Atomics.wait(t, LOCK, 1, 1);
    try {
      const tried = new Set<number>();
      while (Atomics.load(t, RESERVED_KIB) + need > budget) {
        let victim = -1;
        for (let s = 0; s < SLOTS; s++) {
          if (tried.has(s) || Atomics.load(t, this.at(s, STATE)) !== READY) continue;
          if (victim < 0 || Atomics.load(t, this.at(s, USED)) < Atomics.load(t, this.at(victim, USED)))
            victim = s;
        }
        if (victim < 0) return false;
        tried.add(victim);
        this.drop(victim);
      }
      Atomics.add(t, RESERVED_KIB, need);
      return true;
    } finally {
      Atomics.store(t, LOCK, 0);
      Atomics.notify(t, LOCK);
    }
  }

  /** Closes a copy nobody is reading; false when a reader holds it. */
  private drop(s: number): boolean {
    const t = this.table;
    if (Atomics.compareExchange(t, this.at(s, STATE), READY, DROPPING) !== READY) return false;
    if (Atomics.load(t, this.at(s, READERS)) !== 0) {
      Atomics.store(t, this.at(s, STATE), READY);
      return false;
    }
    const size = this.sizeOf(s);
    fs.closeSync(Atomics.load(t, this.at(s, FD)));
    this.release(s, size);
    return true;
  }

  /** Frees a slot and its reservation, waking threads waiting on it. */
  private release(s: number, size: number): void {
    const t = this.table;
    Atomics.store(t, this.at(s, ENTRY), 0);
    Atomics.sub(t, RESERVED_KIB, kib(size));
    Atomics.store(t, this.at(s, STATE), FREE);
    Atomics.notify(t, this.at(s, STATE));
  }

  private openFile(): number {
    const file = path.join(
      this.shared.dir,
      `.bfc-spill-${process.pid}-${lazyCrypto().randomBytes(6).toString("hex")}`,
    );
    const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    fs.unlinkSync(file);
    return fd;
  }

  private publish(s: number, i: number, fd: number, size: number): void {
    const t = this.table;
    Atomics.store(t, this.at(s, FD), fd);
    Atomics.store(t, this.at(s, SIZE_LO), size % TWO32);
    Atomics.store(t, this.at(s, SIZE_HI), Math.floor(size / TWO32));
    Atomics.store(t, this.at(s, USED), Atomics.add(t, TICK, 1));
    Atomics.store(t, this.at(s, ENTRY), i + 1);
    Atomics.store(t, this.at(s, STATE), READY);
    Atomics.notify(t, this.at(s, STATE));
  }

  /**
   * Makes the copy of entry `i` (`size` bytes) from its decoded content, synchronously (a thread
   * that may block: it waits too for a copy another thread is making). `content` is the verification
   * pass: it throws when the entry is corrupt (then nothing is kept and the error propagates).
   * Returns false when no copy can be kept (over budget, no slot, no space): read the entry another
   * way.
   */
  fillSync(i: number, size: number, content: () => Iterable<Uint8Array>): boolean {
    const c = this.claim(i, size, true) as Claim;
    if (c === "ready") return true;
    if (c === "no-room") return false;
    const copy = this.begin(c.slot, i, size);
    if (!copy) return false;
    let passed = false;
    try {
      for (const chunk of content()) copy.add(chunk);
      passed = true;
    } finally {
      copy.end(passed);
    }
    return copy.published;
  }

  /**
   * fillSync for a thread with an event loop: the content streams asynchronously, and a copy being
   * made by another thread is waited for without blocking. Concurrent calls for one entry share one
   * pass.
   */
  fill(i: number, size: number, content: () => AsyncIterable<Uint8Array>): Promise<boolean> {
    const pending = this.filling.get(i);
    if (pending) return pending;
    const run = this.fillAsync(i, size, content).finally(() => this.filling.delete(i));
    this.filling.set(i, run);
    return run;
  }

  private async fillAsync(
    i: number,
    size: number,
    content: () => AsyncIterable<Uint8Array>,
  ): Promise<boolean> {
    let c = this.claim(i, size, false);
    while (typeof c === "object" && "waitOn" in c) {
      await Atomics.waitAsync(this.table, this.at(c.waitOn, STATE), FILLING, 200).value;
      c = this.claim(i, size, false);
    }
    if (c === "ready") return true;
    if (c === "no-room") return false;
    const copy = this.begin(c.slot, i, size);
    if (!copy) return false;
    let passed = false;
    try {
      for await (const chunk of content()) copy.add(chunk);
      passed = true;
    } finally {
      copy.end(passed);
    }
    return copy.published;
  }

  /**
   * A copy being written into claimed slot `s`: `add` each decoded piece, then `end(passed)`, which
   * publishes it only when the verification pass ended without an error and every byte was written.
   * Undefined when no file can be made (the slot is freed).
   */
  private begin(
    s: number,
    i: number,
    size: number,
  ): { add(chunk: Uint8Array): void; end(passed: boolean): void; published: boolean } | undefined {
    let fd: number;
    try {
      fd = this.openFile();
    } catch {
      this.release(s, size);
      return undefined;
    }
    let pos = 0;
    let writeFailed = false;
    const store = this;
    return {
      published: false,
      add(chunk) {
        if (!writeFailed) {
          try {
            writeAll(fd, chunk, pos);
          } catch {
            // No space for the copy: the verification pass still runs to its end (its verdict counts).
            writeFailed = true;
          }
        }
        pos += chunk.length;
      },
      end(passed) {
        if (passed && !writeFailed && pos === size && !this.published) {
          store.publish(s, i, fd, size);
          this.published = true;
          return;
        }
        fs.closeSync(fd);
        store.release(s, size);
      },
    };
  }

  /** Closes every copy (the creator, once no other thread reads them). */
  close(): void {
    if (!this.owner) return;
    const t = this.table;
    for (let s = 0; s < SLOTS; s++) {
      if (Atomics.compareExchange(t, this.at(s, STATE), READY, DROPPING) !== READY) continue;
      fs.closeSync(Atomics.load(t, this.at(s, FD)));
      this.release(s, this.sizeOf(s));
    }
  }
}
