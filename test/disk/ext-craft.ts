/**
 * Hand-made ext images in memory, for hostile-input tests: one block group of 1 KiB blocks, 64
 * inodes of 256 bytes, no checksums, laid out as
 *   block 1 superblock, 2 group descriptors, 3-4 bitmaps, 5-20 inode table, 21+ data.
 * Tests build a small valid tree, then break one structure at a time.
 */
import { BufferSource } from "./ext-helpers.ts";

export const BS = 1024;
export const BLOCKS = 512;
export const INODES = 64;
export const INODE_SIZE = 256;
const ITABLE = 5;
const FIRST_DATA = 21;

export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

export interface DirentSpec {
  ino: number;
  name: string | Buffer;
  type?: number;
  /** Override the record length (the last entry otherwise spans the rest of the block). */
  recLen?: number;
  /** Override the stored name length. */
  nameLen?: number;
}

export interface InodeSpec {
  mode: number;
  size?: number;
  links?: number;
  flags?: number;
  /** The 60 bytes of i_block. */
  iBlock?: Buffer;
  uid?: number;
  gid?: number;
  fileAcl?: number;
  blocks?: number;
}

export class ExtCraft {
  readonly buf = Buffer.alloc(BS * BLOCKS);
  private next = FIRST_DATA;

  constructor(options: { extents?: boolean } = {}) {
    const sb = this.buf.subarray(1024, 2048);
    sb.writeUInt32LE(INODES, 0x00);
    sb.writeUInt32LE(BLOCKS, 0x04);
    sb.writeUInt32LE(1, 0x14); // first data block
    sb.writeUInt32LE(0, 0x18); // 1 KiB blocks
    sb.writeUInt32LE(0, 0x1c);
    sb.writeUInt32LE(8192, 0x20);
    sb.writeUInt32LE(8192, 0x24);
    sb.writeUInt32LE(INODES, 0x28);
    sb.writeUInt16LE(0xef53, 0x38);
    sb.writeUInt16LE(1, 0x3a);
    sb.writeUInt32LE(1, 0x4c); // dynamic revision
    sb.writeUInt32LE(11, 0x54);
    sb.writeUInt16LE(INODE_SIZE, 0x58);
    sb.writeUInt32LE(0x2 | (options.extents ? 0x40 : 0), 0x60); // filetype (+ extents)
    const gd = this.buf.subarray(2 * BS, 2 * BS + 32);
    gd.writeUInt32LE(3, 0x00);
    gd.writeUInt32LE(4, 0x04);
    gd.writeUInt32LE(ITABLE, 0x08);
  }

  get superblock(): Buffer {
    return this.buf.subarray(1024, 2048);
  }

  get groupDescriptor(): Buffer {
    return this.buf.subarray(2 * BS, 2 * BS + 32);
  }

  alloc(n = 1): number {
    const b = this.next;
    this.next += n;
    if (this.next > BLOCKS) throw new Error("crafted image is full");
    return b;
  }

  block(b: number): Buffer {
    return this.buf.subarray(b * BS, (b + 1) * BS);
  }

  inodeRaw(ino: number): Buffer {
    const off = ITABLE * BS + (ino - 1) * INODE_SIZE;
    return this.buf.subarray(off, off + INODE_SIZE);
  }

  setInode(ino: number, spec: InodeSpec): Buffer {
    const raw = this.inodeRaw(ino);
    raw.fill(0);
    raw.writeUInt16LE(spec.mode, 0x00);
    raw.writeUInt16LE((spec.uid ?? 0) & 0xffff, 0x02);
    const size = spec.size ?? 0;
    raw.writeUInt32LE(size % 2 ** 32, 0x04);
    raw.writeUInt32LE(Math.floor(size / 2 ** 32), 0x6c);
    raw.writeUInt32LE(1_700_000_000, 0x10);
    raw.writeUInt16LE((spec.gid ?? 0) & 0xffff, 0x18);
    raw.writeUInt16LE(spec.links ?? 1, 0x1a);
    raw.writeUInt32LE(spec.blocks ?? 0, 0x1c);
    raw.writeUInt32LE(spec.flags ?? 0, 0x20);
    if (spec.iBlock) spec.iBlock.copy(raw, 0x28, 0, 60);
    raw.writeUInt32LE(spec.fileAcl ?? 0, 0x68);
    raw.writeUInt16LE(32, 0x80); // extra_isize
    return raw;
  }

  /** Writes a directory block; the last entry's record spans the rest of the block. */
  dirBlock(b: number, entries: DirentSpec[], blockSize = BS): void {
    const out = this.buf.subarray(b * BS, b * BS + blockSize);
    writeDirents(out, entries);
  }

  /** A linear directory of one block (with "." and ".."). */
  mkdir(ino: number, parent: number, children: DirentSpec[], mode = 0o755): number {
    const b = this.alloc();
    this.dirBlock(b, [{ ino, name: ".", type: 2 }, { ino: parent, name: "..", type: 2 }, ...children]);
    this.setInode(ino, { mode: S_IFDIR | mode, size: BS, links: 2, iBlock: blockMap([b]), blocks: 2 });
    return b;
  }

  /** A regular file whose content occupies fresh consecutive blocks, mapped by a block map. */
  file(ino: number, content: Buffer, mode = 0o644): number[] {
    const n = Math.ceil(content.length / BS);
    const first = n > 0 ? this.alloc(n) : 0;
    content.copy(this.buf, first * BS);
    const blocks = Array.from({ length: n }, (_, k) => first + k);
    this.setInode(ino, {
      mode: S_IFREG | mode,
      size: content.length,
      iBlock: blockMap(blocks),
      blocks: 2 * n,
    });
    return blocks;
  }

  source(): BufferSource {
    return new BufferSource(Buffer.from(this.buf), "crafted.img");
  }
}

export function writeDirents(out: Buffer, entries: DirentSpec[]): void {
  let pos = 0;
  entries.forEach((e, k) => {
    const name = Buffer.from(e.name);
    const natural = (8 + name.length + 3) & ~3;
    const recLen = e.recLen ?? (k === entries.length - 1 ? out.length - pos : natural);
    out.writeUInt32LE(e.ino, pos);
    out.writeUInt16LE(recLen & 0xffff, pos + 4);
    out[pos + 6] = e.nameLen ?? name.length;
    out[pos + 7] = e.type ?? 1;
    name.copy(out, pos + 8);
    // An overridden record length only changes the stored field: the next entry still follows.
    pos += e.recLen === undefined ? recLen : natural;
  });
}

/** i_block for a block map: up to 12 direct pointers, then IND, DIND, TIND. */
export function blockMap(direct: number[], ind = 0, dind = 0, tind = 0): Buffer {
  const b = Buffer.alloc(60);
  direct.slice(0, 12).forEach((p, k) => {
    b.writeUInt32LE(p, 4 * k);
  });
  b.writeUInt32LE(ind, 48);
  b.writeUInt32LE(dind, 52);
  b.writeUInt32LE(tind, 56);
  return b;
}

export interface ExtentSpec {
  lblk: number;
  len: number;
  pblk: number;
}

/** An extent node: header (magic, entries, max, depth) then leaf or index entries. */
export function extentNode(
  size: number,
  depth: number,
  entries: ExtentSpec[] | { lblk: number; child: number }[],
  max = Math.floor((size - 12) / 12),
): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt16LE(0xf30a, 0);
  b.writeUInt16LE(entries.length, 2);
  b.writeUInt16LE(max, 4);
  b.writeUInt16LE(depth, 6);
  entries.forEach((e, k) => {
    const at = 12 + 12 * k;
    b.writeUInt32LE(e.lblk, at);
    if ("child" in e) {
      b.writeUInt32LE(e.child % 2 ** 32, at + 4);
      b.writeUInt16LE(Math.floor(e.child / 2 ** 32), at + 8);
    } else {
      b.writeUInt16LE(e.len, at + 4);
      b.writeUInt16LE(Math.floor(e.pblk / 2 ** 32), at + 6);
      b.writeUInt32LE(e.pblk % 2 ** 32, at + 8);
    }
  });
  return b;
}

/** A small valid image: / with hello.txt (inode 12), dir/ (13) holding inner.txt (14). */
export function baseImage(options: { extents?: boolean } = {}): ExtCraft {
  const c = new ExtCraft(options);
  c.mkdir(2, 2, [
    { ino: 12, name: "hello.txt", type: 1 },
    { ino: 13, name: "dir", type: 2 },
  ]);
  c.file(12, Buffer.from("hello world\n"));
  c.mkdir(13, 2, [{ ino: 14, name: "inner.txt", type: 1 }]);
  c.file(14, Buffer.from("inner\n"));
  (c.inodeRaw(2) as Buffer).writeUInt16LE(3, 0x1a);
  return c;
}
