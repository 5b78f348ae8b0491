/**
 * When the extra serving threads of a mount read /dev/fuse. The kernel hands each request to the
 * reader that has waited longest, so threads that all read take turns even when one could keep up:
 * requests of one sequential reader (`find`, `cat`) would alternate between threads, each warming
 * its own JIT and caches. So one thread (the first) always serves, and helpers join only while there
 * is more work than it can take: when its reads keep finding requests already queued, or when it is
 * stuck in one long request (a large file's verification pass). A helper goes back to waiting as
 * soon as one of its reads had to wait.
 */

/** Indexes into the shared words. */
const WANT = 0;
const BUSY = 1;
const SEQ = 2;
const DONE = 3;

/** A read that returned this fast found a request already queued. */
const QUEUED_MS = 0.02;
/** Queued requests found in a row before a helper is called. */
const QUEUED_IN_A_ROW = 3;
/** How often idle helpers look whether the first thread is stuck in one request. */
const TICK_MS = 10;
/** A helper whose read waited longer than this has no backlog to take: it goes back to waiting. */
export const HELPER_IDLE_MS = 2;

export class Backlog {
  private readonly words: Int32Array;
  private queued = 0;

  constructor(shared: SharedArrayBuffer) {
    this.words = new Int32Array(shared);
  }

  static memory(): SharedArrayBuffer {
    return new SharedArrayBuffer(4 * 4);
  }

  /** The first thread, after each read: `waitedMs` is how long the read blocked. */
  afterRead(waitedMs: number): void {
    if (waitedMs > QUEUED_MS) {
      this.queued = 0;
      return;
    }
    if (++this.queued < QUEUED_IN_A_ROW) return;
    this.queued = 0;
    Atomics.add(this.words, WANT, 1);
    Atomics.notify(this.words, WANT, 1);
  }

  /** The first thread, around each request it handles. */
  busy(on: boolean): void {
    if (on) Atomics.add(this.words, SEQ, 1);
    Atomics.store(this.words, BUSY, on ? 1 : 0);
  }

  /** The mount is gone: waiting helpers return (and end). */
  done(): void {
    Atomics.store(this.words, DONE, 1);
    Atomics.add(this.words, WANT, 1);
    Atomics.notify(this.words, WANT);
  }

  /** A helper, idle: blocks until there is work for it; false once the mount is gone. */
  waitForWork(): boolean {
    const w = this.words;
    const seen = Atomics.load(w, WANT);
    let lastSeq = -1;
    for (;;) {
      if (Atomics.load(w, DONE)) return false;
      if (Atomics.wait(w, WANT, seen, TICK_MS) !== "timed-out") return Atomics.load(w, DONE) === 0;
      const seq = Atomics.load(w, SEQ);
      if (Atomics.load(w, BUSY) === 1 && seq === lastSeq) return true;
      lastSeq = seq;
    }
  }
}
