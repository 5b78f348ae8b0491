/**
 * One VFS measurement in a fresh process: mounts an archive with one implementation (bfcfs's
 * `createVfs()` over a BFC container, or an anchor over a zip of the same tree: @yarnpkg/libzip's
 * ZipFS, or @zenfs/core with @zenfs/archives' Zip backend), then runs one operation warm through
 * that implementation's synchronous `node:fs`-shaped API. Prints `{ ms, mountMs, value, ... }`: `ms`
 * is the timed loop, `mountMs` the mount (archive open) before it, `value` the row's figure.
 */
import nodeFs from "node:fs";
import { loadLib, runTask } from "./common.ts";

export type VfsImpl = "bfcfs" | "yarn-zipfs" | "zenfs";
export type VfsOp = "mount" | "stat" | "readfile" | "randread" | "readdir";

/** One operation, run after the mount. */
export interface VfsStep {
  op: VfsOp;
  /** stat, readfile: a JSON file `{ measure: string[], warm: string[] }` of paths below `root`. */
  list?: string;
  /** randread: the large file below `root`, its size, and how many reads (plus a tenth to warm up). */
  file?: string;
  size?: number;
  reads?: number;
  /** readdir: the directory below `root`, and how many timed calls. */
  dir?: string;
  calls?: number;
}

export interface VfsArgs {
  impl: VfsImpl;
  archive: string;
  /** The tree's top directory inside the archive. */
  root: string;
  /** Usually one; several share one mount where mounting costs minutes (zenfs at full scale). */
  steps: VfsStep[];
}

/** A step's figure (`value`, in the row's unit) and its timed loop (`ms`); `error` when it failed. */
export interface VfsStepResult {
  op: VfsOp;
  value?: number;
  ms?: number;
  error?: string;
  [detail: string]: unknown;
}

/** The synchronous calls measured, bound to one implementation; paths are below `root`. */
interface SyncFs {
  stat(p: string): { size: number | bigint };
  readFile(p: string): Uint8Array;
  open(p: string): number;
  read(fd: number, buf: Uint8Array, off: number, len: number, pos: number): number;
  close(fd: number): void;
  readdir(p: string): unknown[];
}

interface Mounted {
  fs: SyncFs;
  mountMs: number;
  /** One-time library set-up before the mount (libzip's WebAssembly instance), not in mountMs. */
  initMs?: number;
}

async function mountBfcfs(a: VfsArgs): Promise<Mounted> {
  const { createVfs } = await loadLib();
  const t0 = performance.now();
  const vfs = createVfs();
  await vfs.mount("bfc", "/c", { path: a.archive });
  const mountMs = performance.now() - t0;
  const at = `/c/${a.root}/`;
  return {
    mountMs,
    fs: {
      stat: (p) => vfs.statSync(at + p),
      readFile: (p) => vfs.readFileSync(at + p) as Buffer,
      open: (p) => vfs.openSync(at + p, "r"),
      read: (fd, buf, off, len, pos) => vfs.readSync(fd, buf, off, len, pos),
      close: (fd) => vfs.closeSync(fd),
      readdir: (p) => vfs.readdirSync(at + p),
    },
  };
}

async function mountYarn(a: VfsArgs): Promise<Mounted> {
  const { ZipFS, getLibzipSync } = await import("@yarnpkg/libzip");
  const t0 = performance.now();
  getLibzipSync();
  const initMs = performance.now() - t0;
  const t1 = performance.now();
  const zip = new ZipFS(a.archive as never, { readOnly: true });
  const mountMs = performance.now() - t1;
  type P = Parameters<typeof zip.statSync>[0];
  const at = `/${a.root}/`;
  return {
    mountMs,
    initMs,
    fs: {
      stat: (p) => zip.statSync((at + p) as P),
      readFile: (p) => zip.readFileSync((at + p) as P),
      open: (p) => zip.openSync((at + p) as P, "r"),
      read: (fd, buf, off, len, pos) => zip.readSync(fd, buf as Buffer, off, len, pos),
      close: (fd) => zip.closeSync(fd),
      readdir: (p) => zip.readdirSync((at + p) as P),
    },
  };
}

async function mountZenfs(a: VfsArgs): Promise<Mounted> {
  const { configure, fs } = await import("@zenfs/core");
  const { Zip } = await import("@zenfs/archives");
  const t0 = performance.now();
  // As its README shows: the whole zip in memory, mounted with configure(). Not lazy: a lazy Zip
  // answers readSync with EAGAIN until an asynchronous load finishes.
  const data = nodeFs.readFileSync(a.archive);
  await configure({ mounts: { "/c": { backend: Zip, data } } });
  const mountMs = performance.now() - t0;
  const at = `/c/${a.root}/`;
  return {
    mountMs,
    fs: {
      stat: (p) => fs.statSync(at + p),
      readFile: (p) => fs.readFileSync(at + p),
      open: (p) => fs.openSync(at + p, "r"),
      read: (fd, buf, off, len, pos) => fs.readSync(fd, buf, off, len, pos),
      close: (fd) => fs.closeSync(fd),
      readdir: (p) => fs.readdirSync(at + p),
    },
  };
}

function median(xs: Float64Array): number {
  const s = Float64Array.from(xs).sort();
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** xorshift32: the same random offsets for every implementation. */
function offsets(n: number, blocks: number, seed: number): Float64Array {
  const out = new Float64Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = (x % blocks) * 4096;
  }
  return out;
}

function readList(file: string): { measure: string[]; warm: string[] } {
  return JSON.parse(nodeFs.readFileSync(file, "utf8")) as { measure: string[]; warm: string[] };
}

function step(f: SyncFs, m: Mounted, a: VfsStep): VfsStepResult {
  const base = { op: a.op };
  switch (a.op) {
    case "mount":
      return { ...base, value: m.mountMs };
    case "stat": {
      const { measure, warm } = readList(a.list!);
      for (const p of warm) f.stat(p);
      const lat = new Float64Array(measure.length);
      let files = 0;
      const t0 = performance.now();
      for (let i = 0; i < measure.length; i++) {
        const s = performance.now();
        const st = f.stat(measure[i]);
        lat[i] = performance.now() - s;
        if (Number(st.size) > 0) files++;
      }
      const ms = performance.now() - t0;
      const us = median(lat) * 1000;
      return {
        ...base,
        ms,
        value: us,
        n: measure.length,
        meanUs: (ms * 1000) / measure.length,
        nonEmpty: files,
      };
    }
    case "readfile": {
      const { measure, warm } = readList(a.list!);
      let bytes = 0;
      for (const p of warm) bytes += f.readFile(p).length;
      bytes = 0;
      const t0 = performance.now();
      for (const p of measure) bytes += f.readFile(p).length;
      const ms = performance.now() - t0;
      const ok = bytes === measure.length * 4096;
      return { ...base, ms, value: measure.length / (ms / 1000), n: measure.length, bytes, ok };
    }
    case "randread": {
      const n = a.reads!;
      const blocks = Math.floor(a.size! / 4096);
      const warm = offsets(Math.ceil(n / 10), blocks, 0x9e3779b9);
      const offs = offsets(n, blocks, 12345);
      const buf = new Uint8Array(4096);
      const fd = f.open(a.file!);
      let got = 0;
      try {
        for (const o of warm) f.read(fd, buf, 0, 4096, o);
        const t0 = performance.now();
        for (let i = 0; i < n; i++) got += f.read(fd, buf, 0, 4096, offs[i]);
        const ms = performance.now() - t0;
        return { ...base, ms, value: got / 1e6 / (ms / 1000), n, bytes: got, ok: got === n * 4096 };
      } finally {
        f.close(fd);
      }
    }
    case "readdir": {
      const calls = a.calls!;
      let names = f.readdir(a.dir!).length;
      for (let i = 0; i < 10; i++) f.readdir(a.dir!);
      const lat = new Float64Array(calls);
      const t0 = performance.now();
      for (let i = 0; i < calls; i++) {
        const s = performance.now();
        names = f.readdir(a.dir!).length;
        lat[i] = performance.now() - s;
      }
      const ms = performance.now() - t0;
      return { ...base, ms, value: median(lat), n: calls, names };
    }
  }
}

function errorText(e: unknown): string {
  const err = e as Error & { code?: string };
  return `${err.code ?? err.name}: ${err.message}`.slice(0, 300);
}

await runTask<VfsArgs>(async (a) => {
  let m: Mounted;
  try {
    m = await (a.impl === "bfcfs" ? mountBfcfs(a) : a.impl === "yarn-zipfs" ? mountYarn(a) : mountZenfs(a));
  } catch (e) {
    return { ok: false, error: `mount: ${errorText(e)}` };
  }
  const results: VfsStepResult[] = [];
  let ms = 0;
  for (const s of a.steps) {
    try {
      const r = step(m.fs, m, s);
      ms += r.ms ?? 0;
      results.push(r);
    } catch (e) {
      results.push({ op: s.op, error: errorText(e) });
    }
  }
  return { ms, mountMs: m.mountMs, initMs: m.initMs, results };
});
