/**
 * Test fixtures built by code: a seeded PRNG, deterministic file contents, and containers crafted
 * byte by byte with the src/format encoders (so tests can write what our Writer refuses to).
 */
import fc from "fast-check";
import { sealSync } from "../src/codec/aead.ts";
import { crc32c } from "../src/codec/crc32c.ts";
import { zstdCompressSync } from "../src/codec/zstd.ts";
import {
  align16,
  COMP_NONE,
  COMP_ZSTD,
  ENC_CHACHA20_POLY1305,
  ENC_NONE,
  FOOTER_SIZE,
  HEADER_SIZE,
  INDEX_ENTRY_TAIL,
  INDEX_HEADER_SIZE,
  OBJ_DIR,
  OBJ_FILE,
  OBJ_SYMLINK,
  OBJECT_HEADER_SIZE,
  S_IFDIR,
  S_IFLNK,
  S_IFREG,
  SALT_SIZE,
} from "../src/format/constants.ts";
import { encodeFooter } from "../src/format/footer.ts";
import { encodeHeader } from "../src/format/header.ts";
import { encodeIndex, type IndexRecord } from "../src/format/index-table.ts";
import { encodeObjectHeader } from "../src/format/object-header.ts";

/** mulberry32: small, fast, seeded. */
export class Prng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** Uniform in [0, 2^32). */
  u32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor((this.u32() / 0x100000000) * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)];
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) b.writeUInt32LE(this.u32(), i);
    for (; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
}

export type ContentKind = "random" | "text" | "zeros";

/** Deterministic content: random (incompressible), text (compressible) or zeros. */
export function content(kind: ContentKind, size: number, seed: number): Buffer {
  if (kind === "zeros") return Buffer.alloc(size);
  if (kind === "random") return new Prng(seed).bytes(size);
  const words = ["alpha", "beta", "gamma", "delta", "épsilon", "zeta", "日本", "\n", "  ", "omega"];
  const r = new Prng(seed);
  const parts: string[] = [];
  let len = 0;
  while (len < size) {
    const w = r.pick(words);
    parts.push(w, " ");
    len += Buffer.byteLength(w) + 1;
  }
  return Buffer.from(parts.join("")).subarray(0, size);
}

// ------------------------------------------------------------------ crafted containers

export interface CraftEntry {
  /** Index (and object) path, stored verbatim: no normalization or validation. */
  path: string | Buffer;
  type: "file" | "dir" | "symlink";
  /** Permission bits; the type bits are added from `type`. */
  perm?: number;
  mtimeNs?: bigint;
  /** File content (plaintext) or symlink target. */
  data?: Buffer | string;
  compress?: boolean;
  encrypt?: boolean;
  /** Replaces the computed stored payload (after the name padding). */
  payload?: Buffer;
  /** Overrides applied to the index record after it was computed. */
  index?: Partial<IndexRecord>;
}

export interface CraftOptions {
  key?: Buffer;
  salt?: Buffer;
  /** Keep the index in the given order instead of sorting it byte-wise. */
  unsorted?: boolean;
  /** Replaces the encoded index blob (the footer still describes it). */
  indexBlob?: (blob: Buffer) => Buffer;
  features?: number;
}

export interface Crafted {
  file: Buffer;
  records: IndexRecord[];
  indexOffset: number;
  indexSize: number;
}

function modeOf(e: CraftEntry): number {
  const t = e.type === "file" ? S_IFREG : e.type === "dir" ? S_IFDIR : S_IFLNK;
  return t | (e.perm ?? (e.type === "dir" ? 0o755 : e.type === "symlink" ? 0o777 : 0o644));
}

/** Builds a container the way the reference lays it out: header, objects, index, footer. */
export function craft(entries: CraftEntry[], opts: CraftOptions = {}): Crafted {
  const parts: Buffer[] = [
    encodeHeader({
      blockSize: 4096,
      features: opts.features ?? (opts.key ? 2 : 0),
      uuid: Buffer.alloc(16, 0x11),
      salt: opts.salt ?? Buffer.alloc(SALT_SIZE),
    }),
  ];
  let pos = HEADER_SIZE;
  const records: IndexRecord[] = [];
  for (const e of entries) {
    const pathBytes = Buffer.isBuffer(e.path) ? e.path : Buffer.from(e.path);
    const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
    const mode = modeOf(e);
    const mtimeNs = e.mtimeNs ?? 1_700_000_000_000_000_000n;
    let type = OBJ_FILE;
    let comp = COMP_NONE;
    let enc = ENC_NONE;
    let body: Buffer = Buffer.alloc(0);
    let padded = 0;
    const crc = e.type === "dir" ? 0 : crc32c(data);
    if (e.type === "file") {
      body = data;
      if (e.compress) {
        body = zstdCompressSync(data, 3);
        comp = COMP_ZSTD;
      }
      if (e.encrypt) {
        if (!opts.key) throw new Error("craft: encrypt needs a key");
        body = sealSync(opts.key, body, pathBytes);
        enc = ENC_CHACHA20_POLY1305;
      }
      padded = body.length;
    } else if (e.type === "symlink") {
      type = OBJ_SYMLINK;
      body = data;
      padded = align16(data.length);
    } else {
      type = OBJ_DIR;
    }
    if (e.payload) {
      body = e.payload;
      padded = e.type === "symlink" ? align16(body.length) : body.length;
    }
    const prefix = align16(OBJECT_HEADER_SIZE + pathBytes.length);
    const obj = Buffer.alloc(prefix + padded);
    encodeObjectHeader(
      {
        type,
        comp,
        enc,
        nameLen: pathBytes.length & 0xffff,
        mode,
        mtimeNs,
        origSize: e.type === "dir" ? 0 : data.length,
        encSize: e.type === "dir" ? 0 : body.length,
        crc,
      },
      obj,
      0,
    );
    pathBytes.copy(obj, OBJECT_HEADER_SIZE);
    body.copy(obj, prefix);
    records.push({
      pathBytes,
      objOffset: pos,
      objSize: obj.length,
      mode,
      mtimeNs,
      comp,
      enc,
      origSize: e.type === "dir" ? 0 : data.length,
      crc,
      ...e.index,
    });
    parts.push(obj);
    pos += obj.length;
  }
  const ordered = opts.unsorted
    ? records
    : [...records].sort((a, b) => Buffer.compare(a.pathBytes, b.pathBytes));
  let blob = encodeIndex(ordered);
  if (opts.indexBlob) blob = opts.indexBlob(blob);
  parts.push(blob);
  parts.push(encodeFooter({ indexSize: blob.length, indexCrc: crc32c(blob), indexOffset: pos }));
  return { file: Buffer.concat(parts), records, indexOffset: pos, indexSize: blob.length };
}

/** Rewrites the footer of a container image (e.g. to describe a hostile index). */
export function withFooter(
  file: Buffer,
  f: { indexSize: number; indexCrc: number; indexOffset: number },
): Buffer {
  const out = Buffer.from(file);
  encodeFooter(f).copy(out, out.length - FOOTER_SIZE);
  return out;
}

/** The index entries' paths in the order they are stored in the file (not re-sorted). */
export function storedIndexPaths(file: Buffer): Buffer[] {
  const footer = file.subarray(file.length - FOOTER_SIZE);
  const indexSize = Number(footer.readBigUInt64LE(8));
  const indexOffset = Number(footer.readBigUInt64LE(20));
  const blob = file.subarray(indexOffset, indexOffset + indexSize);
  const count = blob.readUInt32LE(4);
  const out: Buffer[] = [];
  let p = INDEX_HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    const len = blob.readUInt32LE(p);
    out.push(Buffer.from(blob.subarray(p + 4, p + 4 + len)));
    p += 4 + len + INDEX_ENTRY_TAIL;
  }
  return out;
}

// ------------------------------------------------------------------ fast-check arbitraries

/** Characters that stress names: spaces, tabs, backslash, colon, dots, multi-byte and astral. */
const ODD = [
  " ",
  "\t",
  "\\",
  ":",
  ".",
  "-",
  "_",
  "é",
  "ñ",
  "日",
  "本",
  "\u{1F600}",
  "\u{10FFFF}",
  "\uFFFD",
  "\uFF5E",
  "A",
  "z",
  "0",
];

/** One path component: never empty, "." or "..", never containing "/" or NUL; valid UTF-16. */
export function componentArb(maxLength = 12): fc.Arbitrary<string> {
  const char = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...ODD) },
    { weight: 3, arbitrary: fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 1 }) },
    { weight: 2, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
  );
  return fc
    .array(char, { minLength: 1, maxLength })
    .map((cs) => cs.join(""))
    .filter(
      (s) =>
        s !== "." && s !== ".." && !s.includes("/") && !s.includes("\0") && Buffer.from(s).toString() === s,
    );
}

/** A canonical stored path of 1..depth components. */
export function pathArb(depth = 3, maxLength = 12): fc.Arbitrary<string> {
  return fc.array(componentArb(maxLength), { minLength: 1, maxLength: depth }).map((p) => p.join("/"));
}
