import { IN_HEADER_SIZE, MAX_IO, WRITE_IN_SIZE } from "./protocol.ts";

/** Slots in flight between the reading thread and the main thread. */
const COUNT = 8;
/** Room for the largest request the kernel sends (a WRITE of MAX_IO bytes). */
const SIZE = IN_HEADER_SIZE + WRITE_IN_SIZE + MAX_IO + 4096;
const FREE = 0;
const BUSY = 1;

export interface SlotMemory {
  data: SharedArrayBuffer;
  states: SharedArrayBuffer;
}

/**
 * Requests handed from the thread that reads /dev/fuse to the main thread (which serves a mutable
 * source) through a ring of shared buffers: a fresh buffer per request, transferred, made every
 * small request cost an external allocation and the main thread a full garbage collection every few
 * hundred requests. The reader copies a request into the next slot (waiting while the main thread
 * still holds it) and posts the slot's number; the main thread answers from the slot and frees it.
 * Requests are answered in the order they were read, so slots free in ring order.
 */
export class RequestSlots {
  private readonly data: SharedArrayBuffer;
  private readonly states: Int32Array;
  private next = 0;

  private constructor(memory: SlotMemory) {
    this.data = memory.data;
    this.states = new Int32Array(memory.states);
  }

  static create(): RequestSlots {
    return new RequestSlots({
      data: new SharedArrayBuffer(COUNT * SIZE),
      states: new SharedArrayBuffer(COUNT * 4),
    });
  }

  static attach(memory: SlotMemory): RequestSlots {
    return new RequestSlots(memory);
  }

  share(): SlotMemory {
    return { data: this.data, states: this.states.buffer as SharedArrayBuffer };
  }

  /** Reader side: copies the request into the next slot (blocking while it is busy); its number. */
  put(request: Uint8Array, length: number): number {
    if (length > SIZE) throw new RangeError(`FUSE request of ${length} bytes is larger than a slot`);
    const k = this.next;
    this.next = (k + 1) % COUNT;
    while (Atomics.load(this.states, k) === BUSY) Atomics.wait(this.states, k, BUSY);
    new Uint8Array(this.data, k * SIZE, length).set(request.subarray(0, length));
    Atomics.store(this.states, k, BUSY);
    return k;
  }

  /** Main side: the request in slot `k` (valid until `release(k)`). */
  view(k: number, length: number): Buffer {
    return Buffer.from(this.data, k * SIZE, length);
  }

  release(k: number): void {
    Atomics.store(this.states, k, FREE);
    Atomics.notify(this.states, k);
  }
}
