/**
 * When the extra serving threads of a mount read /dev/fuse. The kernel hands each request to the
 * reader that has waited longest, so threads that all read take turns even when one could keep up:
 * requests of one sequential reader (`find`, `cat`) would alternate between threads, each warming
 * its own JIT and caches. So one thread (the first) always serves, and helpers join only while there
 * is more work than it can take: when its reads keep finding requests of several clients already
 * queued, or when it is stuck in one long request (a large file's verification pass). A helper goes
 * back to waiting as soon as one of its reads had to wait.
 *
 * A single fast client finds the first thread's reads queued too: on two cores its next request
 * arrives while the thread is still returning from the previous reply. Extra threads only make such
 * a client slower (a cold `find` of 50,000 entries: 0.23–0.29 s once helpers had started, against
 * 0.16–0.18 s before), so a queued request counts only when it comes from another client than the
 * request before it: clients (threads) interleaving in the queue are what a second thread can serve.
 *
 * Helpers are started only once they can help or cost nothing: when a backlog lasts (half a
 * second), or once the mount has gone unused for a second. A thread's start-up (a V8 isolate, the
 * modules, the index) takes ~0.2 s of CPU; on a small machine, started right after mounting, it
 * competed with the first user of the mount (a cold `find` of 50,000 entries on 2 cores took
 * 0.39–0.43 s, against 0.22–0.26 s with helpers started later).
 */

/** Indexes into the shared words. */
const WANT = 0;
const BUSY = 1;
const SEQ = 2;
const DONE = 3;

/** A read that returned this fast found a request already queued. */
const QUEUED_MS = 0.02;
/** Queued requests of changing clients found in a row before a helper is called. */
const QUEUED_IN_A_ROW = 3;
/** How often idle helpers look whether the first thread is stuck in one request. */
export const TICK_MS = 10;
/**
 * Ticks without a request after which the mount counts as unused, so that helpers start for free:
 * a second, longer than the gap between a mount and the first command using it.
 */
const IDLE_TICKS = 100;
/**
 * Ticks the first thread must spend in one request before helpers are started for it: longer than
 * a first listing on cold caches takes, since a helper's start-up costs more than that.
 */
const STUCK_TICKS = 10;
/**
 * Ticks in which the first thread asked for help before helpers are started: a lasting backlog of
 * parallel clients, worth a helper's start-up, not a short burst of them.
 */
const BACKLOG_TICKS = 50;
/** A helper whose read waited longer than this has no backlog to take: it goes back to waiting. */
export const HELPER_IDLE_MS = 2;

export class Backlog {
  private readonly words: Int32Array;
  private queued = 0;
  /** The client (pid) of the last request that came from one. */
  private lastClient = 0;
  /** helpersWanted()'s view at the previous tick (-1: none yet). */
  private lastSeq = -1;
  private lastWant = -1;
  private idle = 0;
  private stuck = 0;
  private backlogged = 0;

  constructor(shared: SharedArrayBuffer) {
    this.words = new Int32Array(shared);
  }

  static memory(): SharedArrayBuffer {
    return new SharedArrayBuffer(4 * 4);
  }

  /**
   * The first thread, after each read: `waitedMs` is how long the read blocked, `client` the pid the
   * request came for (0: the kernel's own, such as FORGET, which neither counts nor resets).
   */
  afterRead(waitedMs: number, client: number): void {
    if (waitedMs > QUEUED_MS) {
      this.queued = 0;
      if (client !== 0) this.lastClient = client;
      return;
    }
    if (client === 0) return;
    const other = client !== this.lastClient;
    this.lastClient = client;
    // The same client again: its next request, or several of its own (readahead) in flight.
    if (!other) return;
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

  /**
   * The thread that starts helpers, every TICK_MS until it does: whether to start them now. The
   * first thread has asked for help in BACKLOG_TICKS ticks (a lasting backlog), or has been in one
   * request for STUCK_TICKS ticks, or has answered nothing for IDLE_TICKS ticks.
   */
  helpersWanted(): boolean {
    const w = this.words;
    if (Atomics.load(w, DONE)) return false;
    const seq = Atomics.load(w, SEQ);
    const want = Atomics.load(w, WANT);
    const still = seq === this.lastSeq;
    const busy = Atomics.load(w, BUSY) === 1;
    this.stuck = busy && still ? this.stuck + 1 : 0;
    this.idle = !busy && still ? this.idle + 1 : 0;
    // Ticks that saw the first thread ask for help, until one that saw no request at all.
    if (this.lastWant !== -1 && want !== this.lastWant) this.backlogged++;
    else if (still && !busy) this.backlogged = 0;
    const wanted = this.backlogged >= BACKLOG_TICKS || this.stuck >= STUCK_TICKS || this.idle >= IDLE_TICKS;
    this.lastSeq = seq;
    this.lastWant = want;
    return wanted;
  }

  /** Whether the mount is gone. */
  get isDone(): boolean {
    return Atomics.load(this.words, DONE) === 1;
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
