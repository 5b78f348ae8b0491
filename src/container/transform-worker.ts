/**
 * Worker side of the transform pool: compression and encryption of file contents, so the writer's
 * main thread only reads and writes. Protocol in transform-pool.ts.
 */
import type crypto from "node:crypto";
import { parentPort } from "node:worker_threads";
import type zlib from "node:zlib";
import { createEncryptor, newNonce } from "../codec/aead.ts";
import { createZstdEncoder } from "../codec/zstd.ts";
import { transformOne } from "./transform.ts";
import type { BatchJob, BatchResult, StreamOpen, ToWorker } from "./transform-pool.ts";

if (!parentPort) throw new Error("transform-worker must run in a worker thread");
const port = parentPort;

let key: Buffer | null = null;

interface Session {
  sid: number;
  comp: zlib.ZstdCompress | null;
  cipher: crypto.CipherChaCha20Poly1305 | null;
  frameLen: number;
  encLen: number;
}
const sessions = new Map<number, Session>();

function runBatch(id: number, jobs: BatchJob[], data: ArrayBuffer): void {
  const input = Buffer.from(data);
  const outputs: Buffer[] = [];
  const results: BatchResult[] = [];
  let total = 0;
  for (const j of jobs) {
    const src = input.subarray(j.off, j.off + j.len);
    const { payload, comp, crc } = transformOne(src, j.level, j.encrypt ? key : null, j.aad);
    outputs.push(payload);
    results.push({ off: total, len: payload.length, comp, crc });
    total += payload.length;
  }
  const out = Buffer.allocUnsafeSlow(total);
  let p = 0;
  for (const o of outputs) p += o.copy(out, p);
  const ab = out.buffer as ArrayBuffer;
  port.postMessage({ type: "batch", id, results, data: ab }, [ab]);
}

/** Output buffers the main thread has written and handed back. */
const spareOut: ArrayBuffer[] = [];
const OUT_MIN = 256 * 1024;

function emit(s: Session, data: Buffer): void {
  let out = data;
  if (s.cipher) out = s.cipher.update(out);
  s.encLen += out.length;
  if (out.length === 0) return;
  let ab = spareOut.pop();
  if (!ab || ab.byteLength < out.length) ab = new ArrayBuffer(Math.max(out.length, OUT_MIN));
  out.copy(Buffer.from(ab));
  port.postMessage({ type: "out", sid: s.sid, data: ab, len: out.length }, [ab]);
}

function openSession(m: StreamOpen): void {
  const s: Session = { sid: m.sid, comp: null, cipher: null, frameLen: 0, encLen: 0 };
  if (m.encrypt) {
    const nonce = newNonce();
    s.cipher = createEncryptor(key!, nonce, Buffer.from(m.aad));
    const ab = Uint8Array.from(nonce).buffer as ArrayBuffer;
    s.encLen += nonce.length;
    port.postMessage({ type: "out", sid: s.sid, data: ab, len: ab.byteLength }, [ab]);
  }
  if (m.level > 0) {
    const comp = createZstdEncoder(m.level, m.size);
    comp.on("data", (d: Buffer) => {
      s.frameLen += d.length;
      emit(s, d);
    });
    comp.on("error", (e) => port.postMessage({ type: "error", sid: s.sid, message: e.message }));
    comp.on("end", () => finishSession(s));
    s.comp = comp;
  }
  sessions.set(m.sid, s);
}

function finishSession(s: Session): void {
  let tag: ArrayBuffer | null = null;
  if (s.cipher) {
    const rest = s.cipher.final();
    if (rest.length) emit(s, rest);
    const t = s.cipher.getAuthTag();
    s.encLen += t.length;
    tag = Uint8Array.from(t).buffer as ArrayBuffer;
  }
  sessions.delete(s.sid);
  port.postMessage({ type: "done", sid: s.sid, frameLen: s.frameLen, tag });
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
        const s = sessions.get(m.sid)!;
        const buf = Buffer.from(m.data, 0, m.len);
        // The input buffer goes back with the ack once consumed, for the main thread to reuse.
        const giveBack = () => port.postMessage({ type: "ack", sid: m.sid, data: m.data }, [m.data]);
        if (s.comp) {
          s.comp.write(buf, giveBack);
        } else {
          emit(s, buf);
          giveBack();
        }
        break;
      }
      case "end": {
        const s = sessions.get(m.sid)!;
        if (s.comp) s.comp.end();
        else finishSession(s);
        break;
      }
    }
  } catch (e) {
    const sid = "sid" in m ? m.sid : undefined;
    const id = m.type === "batch" ? m.id : undefined;
    port.postMessage({ type: "error", sid, id, message: (e as Error).message });
  }
});
