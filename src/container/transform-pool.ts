import os from "node:os";
import { Worker } from "node:worker_threads";
import { BfcError } from "../errors.ts";
import { workerScript } from "../worker-script.ts";

/**
 * A pool of worker threads that compress and encrypt file contents. Small files travel in batches
 * (one message carries many files, so the per-message cost is paid once per batch); large files
 * stream through one worker as a session so a single zstd frame / AEAD payload spans all chunks.
 */

export interface BatchJob {
  off: number;
  len: number;
  /** zstd level, 0 for no compression attempt. */
  level: number;
  encrypt: boolean;
  aad: Uint8Array;
}

export interface BatchResult {
  off: number;
  len: number;
  comp: number;
  crc: number;
}

export interface StreamOpen {
  type: "open";
  sid: number;
  level: number;
  encrypt: boolean;
  aad: Uint8Array;
  size: number;
}

export type ToWorker =
  | { type: "init"; key: Uint8Array | null }
  | { type: "batch"; id: number; jobs: BatchJob[]; data: ArrayBuffer }
  | StreamOpen
  | { type: "chunk"; sid: number; data: ArrayBuffer; len: number }
  | { type: "end"; sid: number }
  | { type: "recycle"; data: ArrayBuffer };

type FromWorker =
  | { type: "batch"; id: number; results: BatchResult[]; data: ArrayBuffer }
  | { type: "out"; sid: number; data: ArrayBuffer; len: number }
  | { type: "ack"; sid: number; data: ArrayBuffer }
  | { type: "done"; sid: number; frameLen: number; tag: ArrayBuffer | null }
  | { type: "error"; sid?: number; id?: number; message: string };

export interface TransformResult {
  payload: Buffer;
  comp: number;
  crc: number;
}

interface Pending {
  /** The content until it is copied into a batch (then null: the batch holds it). */
  data: Uint8Array | null;
  len: number;
  level: number;
  encrypt: boolean;
  aad: Uint8Array;
  resolve: (r: TransformResult) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  load: number;
  /** Batches and sessions outstanding; the worker keeps the process alive only while this is > 0. */
  busy: number;
}

const BATCH_BYTES = 4 * 1024 * 1024;
const BATCH_JOBS = 512;
const STREAM_WINDOW = 4;
const WORKER_YOUNG_MB = 8;

export class TransformPool {
  private readonly slots: Slot[] = [];
  private readonly batches = new Map<number, { slot: Slot; jobs: Pending[] }>();
  private readonly streams = new Map<number, StreamSession>();
  private queue: Pending[] = [];
  private queuedBytes = 0;
  /** Bytes handed to `transform` whose results have not come back. */
  private outstanding = 0;
  private flushScheduled = false;
  private nextId = 1;
  private failure: Error | null = null;

  private readonly key: Uint8Array | null;
  private readonly max: number;

  /** Workers start on demand, up to `size`: a single large file needs one, not one per core. */
  constructor(key: Uint8Array | null, size = Math.max(1, Math.min(os.availableParallelism(), 8))) {
    this.key = key;
    this.max = Math.max(1, size);
  }

  private spawn(): Slot {
    // Workers hold few objects for long: a small young generation collects the buffers they churn
    // through (inputs, zstd outputs) often, instead of letting each isolate grow by tens of MiB.
    const worker = new Worker(workerScript(import.meta.url, "transform-worker"), {
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_MB },
    });
    const slot: Slot = { worker, load: 0, busy: 0 };
    worker.on("message", (m: FromWorker) => this.onMessage(slot, m));
    worker.on("error", (e) => this.fail(e));
    worker.unref();
    worker.postMessage({ type: "init", key: this.key } satisfies ToWorker);
    this.slots.push(slot);
    return slot;
  }

  private fail(e: Error): void {
    if (!this.failure) this.failure = e;
    for (const b of this.batches.values()) for (const j of b.jobs) j.reject(e);
    this.batches.clear();
    for (const j of this.queue) j.reject(e);
    this.queue = [];
    for (const s of this.streams.values()) s.fail(e);
    this.streams.clear();
  }

  private busy(slot: Slot, delta: number): void {
    const before = slot.busy;
    slot.busy += delta;
    if (before === 0 && slot.busy > 0) slot.worker.ref();
    else if (before > 0 && slot.busy === 0) slot.worker.unref();
  }

  private leastLoaded(): Slot {
    for (const s of this.slots) if (s.busy === 0) return s;
    if (this.slots.length < this.max) return this.spawn();
    let best = this.slots[0];
    for (const s of this.slots) if (s.load < best.load) best = s;
    return best;
  }

  /**
   * Bytes handed to `transform` and not yet returned. Callers keep this near `window` so inputs,
   * batches and results in flight stay bounded while every worker has work queued.
   */
  get pendingBytes(): number {
    return this.outstanding;
  }

  /** In-flight bytes that keep every worker busy: two full batches each. */
  get window(): number {
    return 2 * BATCH_BYTES * this.max;
  }

  /** Checksums, maybe compresses, maybe encrypts one whole file. */
  transform(data: Uint8Array, level: number, encrypt: boolean, aad: Uint8Array): Promise<TransformResult> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.queue.push({ data, len: data.length, level, encrypt, aad, resolve, reject });
      this.outstanding += data.length;
      this.queuedBytes += data.length;
      if (this.queuedBytes >= BATCH_BYTES || this.queue.length >= BATCH_JOBS) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.queue.length === 0) return;
    const jobs = this.queue;
    this.queue = [];
    const total = this.queuedBytes;
    this.queuedBytes = 0;
    const buf = Buffer.allocUnsafeSlow(total);
    const specs: BatchJob[] = [];
    let p = 0;
    for (const j of jobs) {
      buf.set(j.data as Uint8Array, p);
      j.data = null;
      specs.push({ off: p, len: j.len, level: j.level, encrypt: j.encrypt, aad: j.aad });
      p += j.len;
    }
    const id = this.nextId++;
    const slot = this.leastLoaded();
    slot.load += Math.max(1, total);
    this.busy(slot, 1);
    this.batches.set(id, { slot, jobs });
    const ab = buf.buffer as ArrayBuffer;
    slot.worker.postMessage({ type: "batch", id, jobs: specs, data: ab } satisfies ToWorker, [ab]);
  }

  /** Opens a streaming session on the least-loaded worker. */
  openStream(
    level: number,
    encrypt: boolean,
    aad: Uint8Array,
    size: number,
    onData: (b: Buffer) => void,
  ): StreamSession {
    if (this.failure) throw this.failure;
    const sid = this.nextId++;
    const slot = this.leastLoaded();
    const s = new StreamSession(sid, slot.worker, onData, () => {
      if (this.streams.delete(sid)) this.busy(slot, -1);
    });
    this.streams.set(sid, s);
    this.busy(slot, 1);
    slot.worker.postMessage({ type: "open", sid, level, encrypt, aad, size } satisfies ToWorker);
    return s;
  }

  private onMessage(slot: Slot, m: FromWorker): void {
    switch (m.type) {
      case "batch": {
        const b = this.batches.get(m.id);
        if (!b) return;
        this.batches.delete(m.id);
        const data = Buffer.from(m.data);
        let total = 0;
        m.results.forEach((r, k) => {
          total += b.jobs[k].len;
          b.jobs[k].resolve({ payload: data.subarray(r.off, r.off + r.len), comp: r.comp, crc: r.crc });
        });
        slot.load -= Math.max(1, total);
        this.outstanding -= total;
        this.busy(slot, -1);
        break;
      }
      case "out":
        // onData consumes the bytes synchronously; the buffer then goes back for reuse.
        this.streams.get(m.sid)?.deliver(Buffer.from(m.data, 0, m.len));
        slot.worker.postMessage({ type: "recycle", data: m.data } satisfies ToWorker, [m.data]);
        break;

      case "ack":
        this.streams.get(m.sid)?.ack(m.data);
        break;
      case "done":
        this.streams.get(m.sid)?.done(m.frameLen, m.tag ? Buffer.from(m.tag) : null);
        break;
      case "error": {
        const err = new BfcError("EIO", "IO_ERROR", `transform failed: ${m.message}`);
        if (m.id !== undefined) {
          const b = this.batches.get(m.id);
          this.batches.delete(m.id);
          if (b) this.busy(b.slot, -1);
          for (const j of b?.jobs ?? []) j.reject(err);
        } else if (m.sid !== undefined) {
          this.streams.get(m.sid)?.fail(err);
          if (this.streams.delete(m.sid)) this.busy(slot, -1);
        } else this.fail(err);
        break;
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.slots.length = 0;
  }
}

/** One file streaming through a worker: bounded chunks in flight, outputs delivered in order. */
export class StreamSession {
  private readonly sid: number;
  private readonly worker: Worker;
  private readonly onData: (b: Buffer) => void;
  private readonly cleanup: () => void;
  private inFlight = 0;
  private waiters: (() => void)[] = [];
  /** Input buffers the worker handed back, reused for the next chunks (no allocation churn). */
  private spare: ArrayBuffer[] = [];
  private error: Error | null = null;
  private endResolve: ((r: { frameLen: number; tag: Buffer | null }) => void) | null = null;
  private endReject: ((e: Error) => void) | null = null;

  constructor(sid: number, worker: Worker, onData: (b: Buffer) => void, cleanup: () => void) {
    this.sid = sid;
    this.worker = worker;
    this.onData = onData;
    this.cleanup = cleanup;
  }

  /** Sends a chunk (ownership passes to the worker); waits while the window is full. */
  async write(chunk: Buffer): Promise<void> {
    if (this.error) throw this.error;
    while (this.inFlight >= STREAM_WINDOW) {
      await new Promise<void>((r) => this.waiters.push(r));
      if (this.error) throw this.error;
    }
    this.inFlight++;
    // A chunk that starts its own ArrayBuffer is transferred (the worker hands it back with the
    // ack); anything else is copied into an ArrayBuffer of its own first. So is a chunk at the start
    // of a slice of Node's shared pool (a Buffer under 4 KiB), which cannot be transferred: the
    // post throws DataCloneError before anything is sent.
    const len = chunk.length;
    const send = (ab: ArrayBuffer) =>
      this.worker.postMessage({ type: "chunk", sid: this.sid, data: ab, len } satisfies ToWorker, [ab]);
    if (chunk.byteOffset === 0 && chunk.buffer instanceof ArrayBuffer) {
      try {
        send(chunk.buffer);
        return;
      } catch (e) {
        if ((e as Error).name !== "DataCloneError") throw e;
      }
    }
    send(copied(chunk));
  }

  end(): Promise<{ frameLen: number; tag: Buffer | null }> {
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      this.endResolve = resolve;
      this.endReject = reject;
      this.worker.postMessage({ type: "end", sid: this.sid } satisfies ToWorker);
    });
  }

  deliver(b: Buffer): void {
    if (this.error) return;
    try {
      this.onData(b);
    } catch (e) {
      this.fail(e as Error);
    }
  }

  /** A buffer for the next chunk of `n` bytes, recycled when possible; pass it to write(). */
  buffer(n: number): Buffer {
    const ab = this.spare.pop();
    if (ab && ab.byteLength >= n) return Buffer.from(ab, 0, n);
    return Buffer.allocUnsafeSlow(n);
  }

  ack(returned: ArrayBuffer): void {
    if (returned && this.spare.length < STREAM_WINDOW) this.spare.push(returned);
    this.inFlight--;
    const w = this.waiters.shift();
    if (w) w();
  }

  done(frameLen: number, tag: Buffer | null): void {
    this.cleanup();
    if (this.error) this.endReject?.(this.error);
    else this.endResolve?.({ frameLen, tag });
  }

  fail(e: Error): void {
    if (!this.error) this.error = e;
    for (const w of this.waiters.splice(0)) w();
    this.endReject?.(e);
  }
}

/** `data` in an ArrayBuffer of its own (never a slice of Node's shared pool). */
function copied(data: Uint8Array): ArrayBuffer {
  const ab = new ArrayBuffer(data.length);
  new Uint8Array(ab).set(data);
  return ab;
}
