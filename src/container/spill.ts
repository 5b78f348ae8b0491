import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/**
 * Decoded copies of large compressed entries ("spill files"), so random reads of them become
 * positioned reads. BFC v1 stores a file as one zstd frame: without a copy, a read at offset x must
 * decode everything before x. The copy is written during the entry's verification pass (which
 * decodes the whole entry anyway) and published only once that pass has checked size and checksum,
 * so nothing unverified is ever read from it.
 *
 * Copies are unlinked temporary files (nothing is left behind, even after a crash), bounded in total
 * size; the least recently read copy is dropped to make room, and an entry that does not fit is read
 * the old way. The table of copies lives in shared memory: one thread (the owner, with an event loop)
 * makes copies, and any thread of the process reads them through the same descriptors.
 */

export interface SpillOptions {
  /** Where the (immediately unlinked) files are made; default: the OS temp directory. */
  dir?: string;
  /** Total bytes of copies kept; default: 4 GiB or half the directory's free space, whichever is less. */
  maxBytes?: number;
}

/** A SpillStore's shared memory, for `SpillStore.attach` in another thread. */
export interface SpillShare {
  spillTable: SharedArrayBuffer;
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
/** Ints before the slots: a use counter (LRU clock). */
const HEAD = 4;
const TICK = 0;

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

function writeAll(fd: number, buf: Buffer, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number) => {
      if (done >= buf.length) {
        resolve();
        return;
      }
      fs.write(fd, buf, done, buf.length - done, position + done, (err, n) =>
        err ? reject(err) : step(done + n),
      );
    };
    step(0);
  });
}

export class SpillStore {
  private readonly table: Int32Array;
  private readonly share_: SpillShare;
  /** Owner only: where copies go, the budget, bytes reserved, copies being made. */
  private readonly owner: {
    dir: string;
    maxBytes: number;
    used: number;
    filling: Map<number, Promise<boolean>>;
  } | null;

  private constructor(share: SpillShare, owner: SpillStore["owner"]) {
    this.share_ = share;
    this.table = new Int32Array(share.spillTable);
    this.owner = owner;
  }

  /** A store that makes copies (in a thread with an event loop). */
  static create(options: SpillOptions = {}): SpillStore {
    const dir = options.dir ?? os.tmpdir();
    const maxBytes = options.maxBytes ?? defaultMax(dir);
    const share = { spillTable: new SharedArrayBuffer((HEAD + SLOTS * SLOT_INTS) * 4) };
    return new SpillStore(share, { dir, maxBytes, used: 0, filling: new Map() });
  }

  /** The store of another thread, for reading its copies. */
  static attach(share: SpillShare): SpillStore {
    return new SpillStore(share, null);
  }

  static isShare(v: unknown): v is SpillShare {
    return typeof v === "object" && v !== null && (v as SpillShare).spillTable instanceof SharedArrayBuffer;
  }

  share(): SpillShare {
    return this.share_;
  }

  /** Budget of the store (owner), or 0 in a thread that only reads. */
  get maxBytes(): number {
    return this.owner?.maxBytes ?? 0;
  }

  private at(slot: number, field: number): number {
    return HEAD + slot * SLOT_INTS + field;
  }

  private find(i: number): number {
    const t = this.table;
    for (let s = 0; s < SLOTS; s++) {
      if (Atomics.load(t, this.at(s, ENTRY)) === i + 1 && Atomics.load(t, this.at(s, STATE)) === READY)
        return s;
    }
    return -1;
  }

  /** Whether entry `i` has a verified copy now. */
  has(i: number): boolean {
    return this.find(i) >= 0;
  }

  /**
   * Reads up to `length` bytes of entry `i`'s copy at `position` into `target[offset…]`; -1 when it
   * has no copy (never made, or dropped). Any thread.
   */
  readInto(i: number, target: Uint8Array, offset: number, length: number, position: number): number {
    const t = this.table;
    const s = this.find(i);
    if (s < 0) return -1;
    // Announce the read first, then check the copy is still there: the owner drops a copy only after
    // marking it and seeing no reader, so one of the two always sees the other.
    Atomics.add(t, this.at(s, READERS), 1);
    try {
      if (Atomics.load(t, this.at(s, STATE)) !== READY || Atomics.load(t, this.at(s, ENTRY)) !== i + 1)
        return -1;
      const size = Atomics.load(t, this.at(s, SIZE_LO)) + Atomics.load(t, this.at(s, SIZE_HI)) * TWO32;
      const fd = Atomics.load(t, this.at(s, FD));
      const end = Math.min(size, position + length);
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
   * Owner: makes the copy of entry `i` (`size` bytes) from its decoded content. `content` is the
   * verification pass: it throws when the entry is corrupt (then nothing is kept and the error
   * propagates). Resolves false when the copy cannot be made (over budget, no space, no slot): the
   * caller reads the entry another way. Concurrent calls for one entry share one pass.
   */
  fill(i: number, size: number, content: () => AsyncIterable<Buffer>): Promise<boolean> {
    const o = this.owner;
    if (!o) return Promise.resolve(false);
    if (this.has(i)) return Promise.resolve(true);
    const pending = o.filling.get(i);
    if (pending) return pending;
    const run = this.fillNow(i, size, content).finally(() => o.filling.delete(i));
    o.filling.set(i, run);
    return run;
  }

  private async fillNow(i: number, size: number, content: () => AsyncIterable<Buffer>): Promise<boolean> {
    const o = this.owner as NonNullable<SpillStore["owner"]>;
    const t = this.table;
    if (size > o.maxBytes || !this.makeRoom(size)) return false;
    let slot = -1;
    for (let s = 0; s < SLOTS && slot < 0; s++) {
      if (Atomics.compareExchange(t, this.at(s, STATE), FREE, FILLING) === FREE) slot = s;
    }
    if (slot < 0) return false;
    o.used += size;
    let fd = -1;
    let published = false;
    try {
      const file = path.join(o.dir, `.bfc-spill-${process.pid}-${crypto.randomBytes(6).toString("hex")}`);
      try {
        fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
        fs.unlinkSync(file);
      } catch {
        return false;
      }
      let pos = 0;
      let writeFailed = false;
      for await (const chunk of content()) {
        if (writeFailed) continue;
        try {
          await writeAll(fd, chunk, pos);
        } catch {
          // No space for the copy: the verification pass still runs to its end (its verdict counts).
          writeFailed = true;
        }
        pos += chunk.length;
      }
      if (writeFailed || pos !== size) return false;
      Atomics.store(t, this.at(slot, FD), fd);
      Atomics.store(t, this.at(slot, SIZE_LO), size % TWO32);
      Atomics.store(t, this.at(slot, SIZE_HI), Math.floor(size / TWO32));
      Atomics.store(t, this.at(slot, USED), Atomics.add(t, TICK, 1));
      Atomics.store(t, this.at(slot, ENTRY), i + 1);
      Atomics.store(t, this.at(slot, STATE), READY);
      published = true;
      return true;
    } finally {
      if (!published) {
        if (fd >= 0) fs.closeSync(fd);
        Atomics.store(t, this.at(slot, ENTRY), 0);
        Atomics.store(t, this.at(slot, STATE), FREE);
        o.used -= size;
      }
    }
  }

  /** Drops least recently read copies (none being read) until `size` more bytes fit. */
  private makeRoom(size: number): boolean {
    const o = this.owner as NonNullable<SpillStore["owner"]>;
    const t = this.table;
    const tried = new Set<number>();
    while (o.used + size > o.maxBytes) {
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
    return true;
  }

  /** Closes a copy nobody is reading; false when a reader holds it. */
  private drop(s: number): boolean {
    const o = this.owner as NonNullable<SpillStore["owner"]>;
    const t = this.table;
    if (Atomics.compareExchange(t, this.at(s, STATE), READY, DROPPING) !== READY) return false;
    if (Atomics.load(t, this.at(s, READERS)) !== 0) {
      Atomics.store(t, this.at(s, STATE), READY);
      return false;
    }
    const size = Atomics.load(t, this.at(s, SIZE_LO)) + Atomics.load(t, this.at(s, SIZE_HI)) * TWO32;
    fs.closeSync(Atomics.load(t, this.at(s, FD)));
    Atomics.store(t, this.at(s, ENTRY), 0);
    Atomics.store(t, this.at(s, STATE), FREE);
    o.used -= size;
    return true;
  }

  /** Owner: closes every copy (call once no other thread reads them). */
  close(): void {
    const o = this.owner;
    if (!o) return;
    const t = this.table;
    for (let s = 0; s < SLOTS; s++) {
      if (Atomics.compareExchange(t, this.at(s, STATE), READY, DROPPING) !== READY) continue;
      fs.closeSync(Atomics.load(t, this.at(s, FD)));
      Atomics.store(t, this.at(s, ENTRY), 0);
      Atomics.store(t, this.at(s, STATE), FREE);
    }
    o.used = 0;
  }
}
