import type crypto from "node:crypto";
import type zlib from "node:zlib";
import { cipherInto, createEncryptor, newNonce } from "../codec/aead.ts";
import { createZstdEncoder, ZstdChunkEncoder } from "../codec/zstd.ts";

export interface ContentEncoderOptions {
  /** zstd level; 0 stores the content as it is. */
  level: number;
  /** Encrypts with this key (ChaCha20-Poly1305, the nonce first), or not at all. */
  key: Uint8Array | null;
  aad: Uint8Array;
  /** The content's size, pledged in the zstd frame header. */
  size: number;
  /** Receives the payload's bytes in order; they must be consumed (copied) before it returns. */
  emit: (bytes: Buffer) => void;
  /** The frame's length before encryption, and the AEAD tag (null without a key). */
  done: (frameLen: number, tag: Buffer | null) => void;
  error: (e: Error) => void;
  /**
   * Compress on the calling thread, each chunk before `write` returns, into one reused buffer
   * (no output buffer per chunk); default: zlib on libuv's thread pool.
   */
  sync?: boolean;
}

const EMPTY = Buffer.alloc(0);

/**
 * One large file's content on its way to a stored payload: one zstd frame across all chunks and
 * one AEAD payload, as the content streams. zlib works on libuv's thread pool; whoever drives the
 * encoder (a transform worker, or the writer itself) only moves bytes.
 */
export class ContentEncoder {
  private readonly o: ContentEncoderOptions;
  private readonly comp: zlib.ZstdCompress | null = null;
  private readonly syncComp: ZstdChunkEncoder | undefined;
  private readonly emitFrame = (d: Buffer) => {
    this.frameLen += d.length;
    this.out(d);
  };
  private readonly cipher: crypto.CipherChaCha20Poly1305 | null = null;
  private frameLen = 0;

  constructor(o: ContentEncoderOptions) {
    this.o = o;
    if (o.key) {
      const nonce = newNonce();
      this.cipher = createEncryptor(o.key, nonce, o.aad);
      o.emit(nonce);
    }
    if (o.level > 0 && o.sync) this.syncComp = ZstdChunkEncoder.create(o.level, o.size);
    if (o.level > 0 && !this.syncComp) {
      const comp = createZstdEncoder(o.level, o.size);
      comp.on("data", this.emitFrame);
      comp.on("error", (e) => o.error(e));
      comp.on("end", () => this.finish());
      this.comp = comp;
    }
  }

  /** Where chunks are encrypted: the cipher's own output would be fresh memory for each. */
  private sealed = EMPTY;

  private out(data: Buffer): void {
    let b = data;
    if (this.cipher) {
      if (this.sealed.length < data.length) this.sealed = Buffer.allocUnsafe(data.length);
      b = this.sealed.subarray(0, cipherInto(this.cipher, data, this.sealed, 0));
    }
    if (b.length > 0) this.o.emit(b);
  }

  private finish(): void {
    let tag: Buffer | null = null;
    if (this.cipher) {
      const rest = this.cipher.final();
      if (rest.length) this.o.emit(rest);
      tag = this.cipher.getAuthTag();
    }
    this.o.done(this.frameLen, tag);
  }

  /** Feeds a chunk; `consumed` runs once the chunk's memory may be reused. */
  write(chunk: Buffer, consumed: () => void): void {
    if (this.syncComp) {
      if (this.syncStep(chunk, false)) consumed();
    } else if (this.comp) this.comp.write(chunk, consumed);
    else {
      this.out(chunk);
      consumed();
    }
  }

  end(): void {
    if (this.syncComp) {
      if (this.syncStep(EMPTY, true)) this.finish();
    } else if (this.comp) this.comp.end();
    else this.finish();
  }

  /** One synchronous step; false when it failed (reported through `error`). */
  private syncStep(chunk: Buffer, last: boolean): boolean {
    const c = this.syncComp as ZstdChunkEncoder;
    try {
      c.write(chunk, last, this.emitFrame);
      if (last) c.close();
      return true;
    } catch (e) {
      c.close();
      this.o.error(e as Error);
      return false;
    }
  }
}
