import { Readable, Writable } from "node:stream";

/** The descriptor-level calls the streams need; the VFS implements them. */
export interface FdIo {
  openFdAsync(path: string, flags: string | number, mode?: number): Promise<number>;
  readFdAsync(
    fd: number,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number | null,
  ): Promise<number>;
  writeFdAsync(
    fd: number,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number | null,
  ): Promise<number>;
  closeFdAsync(fd: number): Promise<void>;
}

/** What both stream classes share for opening and closing their descriptor. */
interface FdStream {
  fd: number | null;
  pending: boolean;
  readonly path: string | undefined;
  readonly io: FdIo;
  readonly flags: string | number;
  readonly mode: number | undefined;
  readonly autoClose: boolean;
  emit(event: string, ...args: unknown[]): boolean;
}

function openStream(s: FdStream, callback: (error?: Error | null) => void): void {
  if (s.fd !== null) {
    s.pending = false;
    callback();
    return;
  }
  s.io.openFdAsync(s.path as string, s.flags, s.mode).then(
    (fd) => {
      s.fd = fd;
      s.pending = false;
      callback();
      s.emit("open", fd);
      s.emit("ready");
    },
    (e: Error) => callback(e),
  );
}

function closeStream(s: FdStream, error: Error | null, callback: (error?: Error | null) => void): void {
  if (s.fd === null || !s.autoClose) {
    callback(error);
    return;
  }
  const fd = s.fd;
  s.fd = null;
  s.io.closeFdAsync(fd).then(
    () => callback(error),
    (e: Error) => callback(error ?? e),
  );
}

export interface ReadStreamOptions {
  flags?: string | number;
  encoding?: BufferEncoding;
  fd?: number;
  mode?: number;
  autoClose?: boolean;
  emitClose?: boolean;
  start?: number;
  end?: number;
  highWaterMark?: number;
  signal?: AbortSignal;
}

function checkRange(name: string, v: number | undefined): void {
  if (v === undefined) return;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    const err = new RangeError(
      `The value of "${name}" is out of range. It must be >= 0 && <= ${Number.MAX_SAFE_INTEGER}. Received ${String(v)}`,
    );
    (err as RangeError & { code: string }).code = "ERR_OUT_OF_RANGE";
    throw err;
  }
}

/** `fs.ReadStream`'s shape over VFS descriptors: start/end inclusive, reads in highWaterMark chunks. */
export class VfsReadStream extends Readable {
  readonly path: string | undefined;
  fd: number | null;
  bytesRead = 0;
  readonly start: number | undefined;
  readonly end: number;
  pending = true;
  private pos: number | null;
  readonly io: FdIo;
  readonly flags: string | number;
  readonly mode: number | undefined;
  readonly autoClose: boolean;

  constructor(io: FdIo, path: string | undefined, options: ReadStreamOptions = {}) {
    super({
      highWaterMark: options.highWaterMark ?? 64 * 1024,
      encoding: options.encoding,
      emitClose: options.emitClose ?? true,
      signal: options.signal,
    });
    checkRange("start", options.start);
    if (options.end !== undefined && options.end !== Number.POSITIVE_INFINITY) checkRange("end", options.end);
    if (options.start !== undefined && options.end !== undefined && options.start > options.end) {
      const err = new RangeError(
        `The value of "start" is out of range. It must be <= "end" (here: ${options.end}). Received ${options.start}`,
      );
      (err as RangeError & { code: string }).code = "ERR_OUT_OF_RANGE";
      throw err;
    }
    this.io = io;
    this.path = path;
    this.fd = options.fd ?? null;
    this.flags = options.flags ?? "r";
    this.mode = options.mode;
    this.start = options.start;
    this.end = options.end ?? Number.POSITIVE_INFINITY;
    this.pos = options.start ?? null;
    this.autoClose = options.autoClose ?? true;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    openStream(this, callback);
  }

  override _read(size: number): void {
    const fd = this.fd as number;
    let n = size;
    if (this.end !== Number.POSITIVE_INFINITY) {
      const at = this.pos ?? (this.start ?? 0) + this.bytesRead;
      n = Math.min(n, this.end - at + 1);
    }
    if (n <= 0) {
      this.push(null);
      return;
    }
    const buf = Buffer.allocUnsafe(n);
    this.io.readFdAsync(fd, buf, 0, n, this.pos).then(
      (got) => {
        if (got === 0) {
          this.push(null);
          return;
        }
        if (this.pos !== null) this.pos += got;
        this.bytesRead += got;
        this.push(got === n ? buf : buf.subarray(0, got));
      },
      (e: Error) => this.destroy(e),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    closeStream(this, error, callback);
  }

  close(callback?: (error?: Error | null) => void): void {
    if (callback) this.once("close", () => callback());
    this.destroy();
  }
}

export interface WriteStreamOptions {
  flags?: string | number;
  encoding?: BufferEncoding;
  fd?: number;
  mode?: number;
  autoClose?: boolean;
  emitClose?: boolean;
  start?: number;
  highWaterMark?: number;
  signal?: AbortSignal;
}

/** `fs.WriteStream`'s shape over VFS descriptors. */
export class VfsWriteStream extends Writable {
  readonly path: string | undefined;
  fd: number | null;
  bytesWritten = 0;
  readonly start: number | undefined;
  pending = true;
  private pos: number | null;
  readonly io: FdIo;
  readonly flags: string | number;
  readonly mode: number | undefined;
  readonly autoClose: boolean;

  constructor(io: FdIo, path: string | undefined, options: WriteStreamOptions = {}) {
    super({
      highWaterMark: options.highWaterMark,
      defaultEncoding: options.encoding,
      emitClose: options.emitClose ?? true,
      signal: options.signal,
      decodeStrings: true,
    });
    checkRange("start", options.start);
    this.io = io;
    this.path = path;
    this.fd = options.fd ?? null;
    this.flags = options.flags ?? "w";
    this.mode = options.mode;
    this.start = options.start;
    this.pos = options.start ?? null;
    this.autoClose = options.autoClose ?? true;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    openStream(this, callback);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeAll(chunk).then(
      () => callback(),
      (e: Error) => callback(e),
    );
  }

  private async writeAll(chunk: Buffer): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      const n = await this.io.writeFdAsync(this.fd as number, chunk, off, chunk.length - off, this.pos);
      if (this.pos !== null) this.pos += n;
      this.bytesWritten += n;
      off += n;
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    closeStream(this, error, callback);
  }

  close(callback?: (error?: Error | null) => void): void {
    if (callback) this.once("close", () => callback());
    this.end();
  }
}
