/**
 * Worker side of the transform pool: compression and encryption of file contents, so the writer's
 * main thread only reads and writes. Protocol in transform-pool.ts.
 */
import { parentPort } from "node:worker_threads";
import { ContentEncoder } from "./content-encoder.ts";
import { InlineTransformer } from "./transform.ts";
import type { BatchJob, BatchResult, StreamOpen, ToWorker } from "./transform-pool.ts";

if (!parentPort) throw new Error("transform-worker must run in a worker thread");
const port = parentPort;

let key: Buffer | null = null;

const sessions = new Map<number, ContentEncoder>();

/**
 * Compresses and seals on this thread (it has nothing else to do meanwhile), through one reused
 * zstd context, output buffer and sealing buffer: a batch of many files allocates nothing per file.
 */
const inline = new InlineTransformer();
/** Where sealed payloads gather before they go back over the batch (grown as needed, reused). */
let arena = Buffer.alloc(0);

function runBatch(id: number, jobs: BatchJob[], data: ArrayBuffer): void {
  const input = Buffer.from(data);
  const results: BatchResult[] = [];
  // Unsealed, no payload is longer than its content, and the contents lie in order: each payload
  // is copied back over the batch at or before its own content's place, and the batch goes back as
  // it came. A sealed payload is 28 bytes longer than what it seals (nonce and tag) and could
  // overrun the next content, so sealed ones gather in the arena and are copied back at the end.
  const sealing = key !== null && jobs.some((j) => j.encrypt);
  let total = 0;
  for (const j of jobs) {
    const src = input.subarray(j.off, j.off + j.len);
    const { payload, comp, crc } = inline.transform(src, j.level, j.encrypt ? key : null, j.aad);
    if (sealing) {
      if (arena.length < total + payload.length) {
        const grown = Buffer.allocUnsafeSlow(Math.max(total + payload.length, arena.length * 2));
        arena.copy(grown, 0, 0, total);
        arena = grown;
      }
      arena.set(payload, total);
    } else {
      if (total > j.off || payload.length > j.len) throw new Error("batch payload out of place");
      input.set(payload, total);
    }
    results.push({ off: total, len: payload.length, comp, crc });
    total += payload.length;
  }
  let out = input;
  if (sealing) {
    out = total <= input.length ? input : Buffer.allocUnsafeSlow(total);
    arena.copy(out, 0, 0, total);
  }
  const ab = out.buffer as ArrayBuffer;
  port.postMessage({ type: "batch", id, results, data: ab }, [ab]);
}

/** Output buffers the main thread has written and handed back. */
const spareOut: ArrayBuffer[] = [];
const OUT_MIN = 256 * 1024;

/** Hands a payload's bytes to the main thread in a transferable buffer (recycled when possible). */
function emit(sid: number, data: Buffer): void {
  let ab = spareOut.pop();
  if (!ab || ab.byteLength < data.length) ab = new ArrayBuffer(Math.max(data.length, OUT_MIN));
  data.copy(Buffer.from(ab));
  port.postMessage({ type: "out", sid, data: ab, len: data.length }, [ab]);
}

function openSession(m: StreamOpen): void {
  const sid = m.sid;
  const enc = new ContentEncoder({
    level: m.level,
    key: m.encrypt ? key : null,
    aad: Buffer.from(m.aad),
    size: m.size,
    // This thread does nothing else meanwhile: compressing here, each chunk into one reused
    // buffer, costs a third less than zlib's thread pool with a fresh buffer per piece.
    sync: true,
    emit: (b) => emit(sid, b),
    done: (frameLen, tag) => {
      sessions.delete(sid);
      const t = tag ? (Uint8Array.from(tag).buffer as ArrayBuffer) : null;
      port.postMessage({ type: "done", sid, frameLen, tag: t });
    },
    error: (e) => port.postMessage({ type: "error", sid, message: e.message }),
  });
  sessions.set(sid, enc);
}

port.on("message", (m: ToWorker) => {
  try {
    switch (m.type) {
      case "init":
        key = m.key ? Buffer.from(m.key) : null;
        break;
      case "recycle":
        if (spareOut.length < 8) spareOut.push(m.data);
        break;

      case "batch":
        runBatch(m.id, m.jobs, m.data);
        break;
      case "open":
        openSession(m);
        break;
      case "chunk": {
        const buf = Buffer.from(m.data, 0, m.len);
        // The input buffer goes back with the ack once consumed, for the main thread to reuse.
        const giveBack = () => port.postMessage({ type: "ack", sid: m.sid, data: m.data }, [m.data]);
        sessions.get(m.sid)!.write(buf, giveBack);
        break;
      }
      case "end":
        sessions.get(m.sid)!.end();
        break;
    }
  } catch (e) {
    const sid = "sid" in m ? m.sid : undefined;
    const id = m.type === "batch" ? m.id : undefined;
    port.postMessage({ type: "error", sid, id, message: (e as Error).message });
  }
});
