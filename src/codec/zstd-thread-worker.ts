/**
 * The decoding thread of a ZstdThreadDecoder (zstd-thread.ts): waits for a frame, then decodes the
 * caller's input slots, in order, into the output slots, in order, until the frame's last piece.
 */
import { workerData } from "node:worker_threads";
import { ZstdStreamDecoder } from "./zstd.ts";
import { C, IN_SLOTS, OUT_SLOTS, publishFailure, S, SLOT_SIZE, type ThreadMemory } from "./zstd-thread.ts";

const mem = workerData as ThreadMemory;
const ctl = new Int32Array(mem.ctl);
const errorText = new Uint8Array(mem.error);
const inputs: Buffer[] = [];
const outputs: Buffer[] = [];
for (let k = 0; k < IN_SLOTS; k++) inputs.push(Buffer.from(mem.input, k * SLOT_SIZE, SLOT_SIZE));
for (let k = 0; k < OUT_SLOTS; k++) outputs.push(Buffer.from(mem.output, k * SLOT_SIZE, SLOT_SIZE));

class Stopped extends Error {}

function toCaller(): void {
  Atomics.add(ctl, C.TO_CALLER, 1);
  Atomics.notify(ctl, C.TO_CALLER);
}

/** Waits until `ready()`; throws Stopped when the caller gives up meanwhile. */
function waitFor(ready: () => boolean): void {
  for (;;) {
    const seq = Atomics.load(ctl, C.TO_THREAD);
    if (Atomics.load(ctl, C.STATE) === S.STOP) throw new Stopped();
    if (ready()) return;
    Atomics.wait(ctl, C.TO_THREAD, seq);
  }
}

function decodeFrame(dec: ZstdStreamDecoder): void {
  let ki = 0;
  let ko = 0;
  let fill = 0;
  const publish = () => {
    Atomics.store(ctl, C.OUT + ko, fill);
    ko = (ko + 1) % OUT_SLOTS;
    fill = 0;
    toCaller();
  };
  for (;;) {
    const k = ki;
    waitFor(() => Atomics.load(ctl, C.IN + k) !== 0);
    const length = Atomics.load(ctl, C.IN + k);
    const last = Atomics.load(ctl, C.IN_LAST + k) === 1;
    const input = inputs[k] as Buffer;
    let inOff = 0;
    for (;;) {
      const o = ko;
      waitFor(() => Atomics.load(ctl, C.OUT + o) === 0);
      const r = dec.step(input, inOff, length - inOff, outputs[o] as Buffer, fill, SLOT_SIZE - fill, last);
      inOff += r.consumed;
      fill += r.got;
      if (fill === SLOT_SIZE) publish();
      if (r.done) break;
    }
    Atomics.store(ctl, C.IN + k, 0);
    ki = (k + 1) % IN_SLOTS;
    if (last) {
      if (fill > 0) publish();
      Atomics.store(ctl, C.STATE, S.DONE);
      toCaller();
      return;
    }
    toCaller();
  }
}

let job = 0;
for (;;) {
  // Idle until the caller starts a frame (a frame may already have been started before this ran).
  while (Atomics.load(ctl, C.JOB) === job) Atomics.wait(ctl, C.JOB, job);
  job = Atomics.load(ctl, C.JOB);
  const dec = ZstdStreamDecoder.create(16);
  try {
    if (!dec) throw new Error("node:zlib has no synchronous zstd stream here");
    decodeFrame(dec);
  } catch (e) {
    if (!(e instanceof Stopped)) publishFailure(ctl, errorText, String((e as Error)?.message ?? e));
  } finally {
    dec?.close();
  }
}
