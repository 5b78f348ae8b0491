import { ContentEncoder } from "./content-encoder.ts";

/**
 * A large file's transform on the writer's own thread (Writer option `workers: 0`), with the
 * contract of the worker pool's StreamSession: no worker isolate (and its heap) is needed. Each
 * chunk is compressed before `write` resolves, into one output buffer reused chunk after chunk.
 */
export class InlineStream {
  private readonly enc: ContentEncoder;
  private error: Error | null = null;
  private fail: ((e: Error) => void) | null = null;
  private result: { frameLen: number; tag: Buffer | null } | null = null;
  private onEnd: ((r: { frameLen: number; tag: Buffer | null }) => void) | null = null;
  private spare: Buffer | null = null;

  constructor(
    level: number,
    key: Uint8Array | null,
    aad: Uint8Array,
    size: number,
    onData: (b: Buffer) => void,
  ) {
    this.enc = new ContentEncoder({
      level,
      key,
      aad,
      size,
      sync: true,
      emit: (b) => {
        if (this.error) return;
        try {
          onData(b);
        } catch (e) {
          this.setError(e as Error);
        }
      },
      done: (frameLen, tag) => {
        this.result = { frameLen, tag };
        this.onEnd?.(this.result);
      },
      error: (e) => this.setError(e),
    });
  }

  private setError(e: Error): void {
    this.error ??= e;
    this.fail?.(this.error);
  }

  /** A buffer for the next chunk of `n` bytes (the previous one once it was consumed). */
  buffer(n: number): Buffer {
    const b = this.spare;
    this.spare = null;
    return b && b.length >= n ? b.subarray(0, n) : Buffer.allocUnsafeSlow(n);
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.error) throw this.error;
    await new Promise<void>((resolve, reject) => {
      this.fail = reject;
      this.enc.write(chunk, () => resolve());
    });
    this.fail = null;
    if (this.error) throw this.error;
    // The whole allocation comes back for reuse, not just the view written.
    this.spare = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.buffer.byteLength - chunk.byteOffset);
  }

  end(): Promise<{ frameLen: number; tag: Buffer | null }> {
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      this.fail = reject;
      this.onEnd = (r) => (this.error ? reject(this.error) : resolve(r));
      this.enc.end();
      if (this.result) this.onEnd(this.result);
    });
  }
}
