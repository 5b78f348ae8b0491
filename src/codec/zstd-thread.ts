/**
 * A zstd frame decoded on a thread of its own while the caller checks and writes what came out
 * before. One large file is one zstd frame in BFC v1, so it cannot be split between threads; but
 * decoding is only part of the work per byte (the checksum and the write are the rest), and on the
 * calling thread alone the three follow one another. Handing the decoding to another thread nearly
 * halves the time for a large file.
 *
 * The two threads share rings of fixed slots (SharedArrayBuffers): the caller fills input slots with
 * the frame's bytes in order, the decoding thread fills output slots, and each side frees what it
 * took. Counters in shared memory say when something changed, so either side can wait: the decoding
 * thread and synchronous callers with Atomics.wait, asynchronous callers with Atomics.waitAsync.
 * Memory stays bounded (the rings) however far a frame expands. An idle thread is kept for the
 * next frame, without holding the process open.
 */
import os from "node:os";
import { Worker } from "node:worker_threads";
import { cachedWorkerEntry, workerExecArgv, workerScript } from "../worker-script.ts";

export const IN_SLOTS = 3;
export const OUT_SLOTS = 4;
export const SLOT_SIZE = 1024 * 1024;
/** Room for a failure's message (UTF-8). */
export const ERROR_BYTES = 1024;

/** Indices into the shared Int32Array. */
export const C = {
  /** Bumped by the caller to start a frame. */
  JOB: 0,
  /** Bumped by the caller after any change it makes (the decoding thread waits on it). */
  TO_THREAD: 1,
  /** Bumped by the decoding thread after any change it makes (callers wait on it). */
  TO_CALLER: 2,
  STATE: 3,
  ERROR_LENGTH: 4,
  /** IN_SLOTS input lengths (0: free), then IN_SLOTS "last piece" flags, then OUT_SLOTS output lengths. */
  IN: 8,
  IN_LAST: 8 + IN_SLOTS,
  OUT: 8 + 2 * IN_SLOTS,
  SIZE: 8 + 2 * IN_SLOTS + OUT_SLOTS,
} as const;

/** STATE values. */
export const S = { RUNNING: 0, DONE: 1, FAILED: 2, STOP: 3 } as const;

export interface ThreadMemory {
  ctl: SharedArrayBuffer;
  input: SharedArrayBuffer;
  output: SharedArrayBuffer;
  error: SharedArrayBuffer;
}

/** Records a frame's failure and wakes the caller (from either side of the rings). */
export function publishFailure(ctl: Int32Array, errorText: Uint8Array, message: string): void {
  const t = new TextEncoder().encodeInto(message, errorText.subarray(0, ERROR_BYTES));
  Atomics.store(ctl, C.ERROR_LENGTH, t.written);
  Atomics.store(ctl, C.STATE, S.FAILED);
  Atomics.add(ctl, C.TO_CALLER, 1);
  Atomics.notify(ctl, C.TO_CALLER);
}

/** Idle decoding threads of this thread, and how many exist. */
const idle: ZstdThreadDecoder[] = [];
let live = 0;

export class ZstdThreadDecoder {
  /**
   * Frames of at least this many decoded bytes start a thread when none is idle. Starting one
   * takes ~100 ms here and saves ~0.3 ms per MiB (the checksum and the write no longer wait for
   * decoding), so it pays from a few hundred MiB. (Tests lower the sizes.)
   */
  static minSize = 256 * 1024 * 1024;
  /** Frames of at least this many decoded bytes use an idle thread when there is one. */
  static minIdleSize = 8 * 1024 * 1024;

  private readonly worker: Worker;
  private readonly ctl: Int32Array;
  private readonly inputs: Buffer[] = [];
  private readonly outputs: Buffer[] = [];
  private readonly errorText: Uint8Array;
  private inNext = 0;
  private outNext = 0;
  private exited = false;
  private counted = true;

  private constructor() {
    const mem: ThreadMemory = {
      ctl: new SharedArrayBuffer(C.SIZE * 4),
      input: new SharedArrayBuffer(IN_SLOTS * SLOT_SIZE),
      output: new SharedArrayBuffer(OUT_SLOTS * SLOT_SIZE),
      error: new SharedArrayBuffer(ERROR_BYTES),
    };
    this.ctl = new Int32Array(mem.ctl);
    for (let k = 0; k < IN_SLOTS; k++) this.inputs.push(Buffer.from(mem.input, k * SLOT_SIZE, SLOT_SIZE));
    for (let k = 0; k < OUT_SLOTS; k++) this.outputs.push(Buffer.from(mem.output, k * SLOT_SIZE, SLOT_SIZE));
    this.errorText = new Uint8Array(mem.error);
    const script = workerScript(import.meta.url, "zstd-thread-worker");
    // A thread that cannot load its module says so through shared memory, where a caller
    // blocked in Atomics.wait sees it (no event reaches that caller).
    const entry = cachedWorkerEntry(
      script,
      `const m = require("node:worker_threads").workerData;
      const c = new Int32Array(m.ctl);
      const t = new TextEncoder().encodeInto(String((e && e.message) || e), new Uint8Array(m.error));
      Atomics.store(c, ${C.ERROR_LENGTH}, t.written);
      Atomics.store(c, ${C.STATE}, ${S.FAILED});
      Atomics.add(c, ${C.TO_CALLER}, 1);
      Atomics.notify(c, ${C.TO_CALLER});`,
    );
    this.worker = new Worker(entry, {
      eval: true,
      workerData: mem,
      trackUnmanagedFds: false,
      execArgv: workerExecArgv(),
    });
    this.worker.unref();
    this.worker.on("error", () => {});
    this.worker.on("exit", () => {
      this.exited = true;
      this.uncount();
      const i = idle.indexOf(this);
      if (i >= 0) idle.splice(i, 1);
      // Whoever waits asynchronously learns of it (a synchronous waiter was told by the thread).
      if (Atomics.load(this.ctl, C.STATE) === S.RUNNING) {
        this.fail("the zstd decoding thread ended unexpectedly");
      }
    });
    live++;
  }

  /**
   * A thread ready to decode a new frame (an idle one, or a new one unless `idleOnly`), or
   * undefined when every core already has one or threads cannot be started here.
   */
  static acquire(idleOnly = false): ZstdThreadDecoder | undefined {
    let t = idle.pop();
    if (!t) {
      if (idleOnly) return undefined;
      if (live >= Math.max(1, os.availableParallelism())) return undefined;
      try {
        t = new ZstdThreadDecoder();
      } catch {
        return undefined;
      }
    }
    t.begin();
    return t;
  }

  private begin(): void {
    const c = this.ctl;
    for (let k = C.IN; k < C.SIZE; k++) Atomics.store(c, k, 0);
    Atomics.store(c, C.ERROR_LENGTH, 0);
    Atomics.store(c, C.STATE, S.RUNNING);
    this.inNext = 0;
    this.outNext = 0;
    // A running frame keeps the process alive (Atomics.waitAsync alone does not).
    this.worker.ref();
    Atomics.add(c, C.JOB, 1);
    Atomics.notify(c, C.JOB);
  }

  /** The change counter to wait on: read it before looking, then wait for it to move. */
  seq(): number {
    return Atomics.load(this.ctl, C.TO_CALLER);
  }

  /** The next input slot (whole) when it is free, else undefined. */
  inputRoom(): Buffer | undefined {
    return Atomics.load(this.ctl, C.IN + this.inNext) === 0 ? this.inputs[this.inNext] : undefined;
  }

  /** Hands over the first `length` bytes of the slot inputRoom gave; `last` ends the frame's input. */
  pushInput(length: number, last: boolean): void {
    const c = this.ctl;
    const k = this.inNext;
    Atomics.store(c, C.IN_LAST + k, last ? 1 : 0);
    Atomics.store(c, C.IN + k, length);
    this.inNext = (k + 1) % IN_SLOTS;
    this.toThread();
  }

  /** The next decoded piece (a view of a shared slot, valid until releaseOutput), else undefined. */
  output(): Buffer | undefined {
    const n = Atomics.load(this.ctl, C.OUT + this.outNext);
    return n > 0 ? (this.outputs[this.outNext] as Buffer).subarray(0, n) : undefined;
  }

  releaseOutput(): void {
    Atomics.store(this.ctl, C.OUT + this.outNext, 0);
    this.outNext = (this.outNext + 1) % OUT_SLOTS;
    this.toThread();
  }

  /** Whether the frame has ended and every piece was published (output() may still hold some). */
  get done(): boolean {
    return Atomics.load(this.ctl, C.STATE) === S.DONE;
  }

  /** Why decoding failed (corrupt data), or undefined. */
  get failure(): string | undefined {
    if (Atomics.load(this.ctl, C.STATE) !== S.FAILED) return undefined;
    const n = Atomics.load(this.ctl, C.ERROR_LENGTH);
    return Buffer.from(this.errorText.subarray(0, n)).toString("utf8") || "zstd decoding failed";
  }

  /** Blocks until the decoding thread changes something after `seq`. */
  waitSync(seq: number): void {
    Atomics.wait(this.ctl, C.TO_CALLER, seq);
  }

  /** Resolves once the decoding thread changes something after `seq`. */
  async changed(seq: number): Promise<void> {
    const r = Atomics.waitAsync(this.ctl, C.TO_CALLER, seq);
    if (r.async) await r.value;
  }

  /**
   * Ends this frame. A thread that finished it cleanly waits for the next one; one stopped
   * part-way (failure, or a caller that gave up) is ended, since it may be waiting in the middle
   * of the frame.
   */
  release(): void {
    const state = Atomics.load(this.ctl, C.STATE);
    if (state === S.DONE && !this.exited) {
      this.worker.unref();
      idle.push(this);
      return;
    }
    Atomics.store(this.ctl, C.STATE, S.STOP);
    this.toThread();
    // Gone from the count at once: its exit is reported later.
    this.uncount();
    void this.worker.terminate();
  }

  private uncount(): void {
    if (!this.counted) return;
    this.counted = false;
    live--;
  }

  private fail(message: string): void {
    publishFailure(this.ctl, this.errorText, message);
  }

  private toThread(): void {
    Atomics.add(this.ctl, C.TO_THREAD, 1);
    Atomics.notify(this.ctl, C.TO_THREAD);
  }
}
