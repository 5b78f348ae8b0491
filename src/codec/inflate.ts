import { BfcError } from "../errors.ts";

// A resumable raw-deflate decoder (RFC 1951), used by the zip filesystem type.
//
// node:zlib has no synchronous incremental API (its sync calls decode one whole buffer and close the
// stream), yet the FileHandle contract wants synchronous reads of members too big to decode whole.
// This decoder runs in steps: each step decodes until its output buffer is nearly full or its input
// runs low, and the caller refills the input (synchronously or not) between steps. A step never
// suspends inside a symbol or a block header: it stops early enough that the input left covers the
// longest header, so the only state between steps is the block in progress.

const WSIZE = 32768;
const OUT_SIZE = WSIZE + 65536;
const IN_SIZE = 65536;
/** More than the longest dynamic block header (about 570 bytes) plus one symbol. */
const IN_LOW = 1024;
const MAX_MATCH = 258;

const LENGTH_BASE = new Uint16Array([
  3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195,
  227, 258,
]);
const LENGTH_EXTRA = new Uint8Array([
  0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
]);
const DIST_BASE = new Uint16Array([
  1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
  6145, 8193, 12289, 16385, 24577,
]);
const DIST_EXTRA = new Uint8Array([
  0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
]);
const CODE_LENGTH_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/** A canonical Huffman code as a direct lookup table: entry = symbol << 4 | code length (0: invalid). */
interface Huffman {
  table: Uint16Array;
  bits: number;
}

function badDeflate(detail: string): BfcError {
  return new BfcError("EIO", "DECOMPRESS_FAILED", `invalid deflate data: ${detail}`);
}

function buildHuffman(lengths: Uint8Array): Huffman {
  const count = new Uint16Array(16);
  let max = 0;
  for (const len of lengths) {
    if (len === 0) continue;
    count[len]++;
    if (len > max) max = len;
  }
  let left = 1;
  for (let len = 1; len <= 15; len++) {
    left = (left << 1) - count[len];
    if (left < 0) throw badDeflate("over-subscribed Huffman code");
  }
  // Incomplete codes are accepted: their unused table slots stay 0 and fail if ever decoded.
  const next = new Uint16Array(16);
  for (let len = 1, code = 0; len <= 15; len++) {
    code = (code + count[len - 1]) << 1;
    next[len] = code;
  }
  const size = 1 << max;
  const table = new Uint16Array(size);
  for (let sym = 0; sym < lengths.length; sym++) {
    const len = lengths[sym];
    if (len === 0) continue;
    const code = next[len]++;
    let rev = 0;
    for (let i = 0; i < len; i++) rev |= ((code >> i) & 1) << (len - 1 - i);
    for (let i = rev; i < size; i += 1 << len) table[i] = (sym << 4) | len;
  }
  return { table, bits: max };
}

const FIXED_LITERALS = buildHuffman(
  Uint8Array.from({ length: 288 }, (_, i) => (i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8)),
);
const FIXED_DISTANCES = buildHuffman(new Uint8Array(32).fill(5));

const MODE_HEADER = 0;
const MODE_STORED = 1;
const MODE_HUFFMAN = 2;
const MODE_DONE = 3;

export class Inflater {
  /** Output: out[0, outPos) holds the uncompressed bytes [total - outPos, total). */
  readonly out = new Uint8Array(OUT_SIZE);
  outPos = 0;
  total = 0;
  private readonly input = new Uint8Array(IN_SIZE);
  private inPos = 0;
  private inEnd = 0;
  private inputEnded = false;
  private bitbuf = 0;
  private bitcnt = 0;
  /** Zero bytes appended past the end of the input so that a final short code can be peeked. */
  private overrun = 0;
  private mode = MODE_HEADER;
  private finalBlock = false;
  private storedLeft = 0;
  private literals: Huffman = FIXED_LITERALS;
  private distances: Huffman = FIXED_DISTANCES;

  get done(): boolean {
    return this.mode === MODE_DONE;
  }

  /** True when the next step needs more input than is buffered (and more exists). */
  needsInput(): boolean {
    return !this.inputEnded && this.inEnd - this.inPos < IN_LOW && this.mode !== MODE_DONE;
  }

  pendingInput(): number {
    return this.inEnd - this.inPos;
  }

  /** Where to put more input: compacts the buffer and returns its free tail. */
  inputSpace(): Uint8Array {
    if (this.inPos > 0) {
      this.input.copyWithin(0, this.inPos, this.inEnd);
      this.inEnd -= this.inPos;
      this.inPos = 0;
    }
    return this.input.subarray(this.inEnd);
  }

  commitInput(n: number, last: boolean): void {
    this.inEnd += n;
    this.inputEnded = last;
  }

  /** Decodes as far as the buffers allow; returns the new output (valid until the next step). */
  step(): Uint8Array {
    if (this.outPos > OUT_SIZE - WSIZE) {
      this.out.copyWithin(0, this.outPos - WSIZE, this.outPos);
      this.outPos = WSIZE;
    }
    const start = this.outPos;
    while (this.mode !== MODE_DONE && this.outPos <= OUT_SIZE - MAX_MATCH) {
      if (!this.inputEnded && this.inEnd - this.inPos < IN_LOW) break;
      if (this.mode === MODE_HEADER) this.blockHeader();
      else if (this.mode === MODE_STORED) this.stored();
      else this.huffman();
    }
    this.total += this.outPos - start;
    return this.out.subarray(start, this.outPos);
  }

  private need(n: number): void {
    while (this.bitcnt < n) {
      let byte = 0;
      if (this.inPos < this.inEnd) byte = this.input[this.inPos++];
      else if (this.inputEnded) this.overrun++;
      else throw new Error("Inflater: input underrun (a step must stop while IN_LOW bytes remain)");
      this.bitbuf |= byte << this.bitcnt;
      this.bitcnt += 8;
    }
  }

  private drop(n: number): void {
    this.bitbuf >>>= n;
    this.bitcnt -= n;
    if (this.overrun > 0 && this.bitcnt < this.overrun * 8) throw badDeflate("unexpected end of data");
  }

  private bits(n: number): number {
    this.need(n);
    const value = this.bitbuf & ((1 << n) - 1);
    this.drop(n);
    return value;
  }

  private decode(code: Huffman): number {
    this.need(code.bits);
    const entry = code.table[this.bitbuf & ((1 << code.bits) - 1)];
    if (entry === 0) throw badDeflate("invalid Huffman code");
    this.drop(entry & 15);
    return entry >>> 4;
  }

  private blockHeader(): void {
    this.finalBlock = this.bits(1) === 1;
    const type = this.bits(2);
    if (type === 0) {
      this.drop(this.bitcnt & 7);
      const len = this.bits(16);
      const nlen = this.bits(16);
      if ((len ^ 0xffff) !== nlen) throw badDeflate("stored block length check failed");
      // Whole bytes still in the bit buffer are the block's first data bytes: give them back.
      this.inPos -= (this.bitcnt >> 3) - this.overrun;
      this.bitbuf = 0;
      this.bitcnt = 0;
      this.overrun = 0;
      this.storedLeft = len;
      this.mode = MODE_STORED;
    } else if (type === 1) {
      this.literals = FIXED_LITERALS;
      this.distances = FIXED_DISTANCES;
      this.mode = MODE_HUFFMAN;
    } else if (type === 2) {
      this.dynamicTables();
      this.mode = MODE_HUFFMAN;
    } else {
      throw badDeflate("invalid block type");
    }
  }

  private dynamicTables(): void {
    const nlit = this.bits(5) + 257;
    const ndist = this.bits(5) + 1;
    const ncode = this.bits(4) + 4;
    if (nlit > 286 || ndist > 30) throw badDeflate("too many length or distance symbols");
    const codeLengths = new Uint8Array(19);
    for (let i = 0; i < ncode; i++) codeLengths[CODE_LENGTH_ORDER[i]] = this.bits(3);
    const lengthCode = buildHuffman(codeLengths);
    const lengths = new Uint8Array(nlit + ndist);
    for (let i = 0; i < lengths.length; ) {
      const sym = this.decode(lengthCode);
      if (sym < 16) {
        lengths[i++] = sym;
        continue;
      }
      let value = 0;
      let repeat: number;
      if (sym === 16) {
        if (i === 0) throw badDeflate("repeat with no previous length");
        value = lengths[i - 1];
        repeat = 3 + this.bits(2);
      } else if (sym === 17) {
        repeat = 3 + this.bits(3);
      } else {
        repeat = 11 + this.bits(7);
      }
      if (i + repeat > lengths.length) throw badDeflate("too many code lengths");
      lengths.fill(value, i, i + repeat);
      i += repeat;
    }
    if (lengths[256] === 0) throw badDeflate("no end-of-block code");
    this.literals = buildHuffman(lengths.subarray(0, nlit));
    this.distances = buildHuffman(lengths.subarray(nlit));
  }

  private endBlock(): void {
    this.mode = this.finalBlock ? MODE_DONE : MODE_HEADER;
  }

  private stored(): void {
    if (this.storedLeft === 0) {
      this.endBlock();
      return;
    }
    const available = this.inEnd - this.inPos;
    if (available === 0) throw badDeflate("unexpected end of data in a stored block");
    const n = Math.min(this.storedLeft, available, OUT_SIZE - this.outPos);
    this.out.set(this.input.subarray(this.inPos, this.inPos + n), this.outPos);
    this.inPos += n;
    this.outPos += n;
    this.storedLeft -= n;
    if (this.storedLeft === 0) this.endBlock();
  }

  private huffman(): void {
    const out = this.out;
    const literals = this.literals;
    const distances = this.distances;
    while (this.outPos <= OUT_SIZE - MAX_MATCH) {
      if (!this.inputEnded && this.inEnd - this.inPos < IN_LOW) return;
      const sym = this.decode(literals);
      if (sym < 256) {
        out[this.outPos++] = sym;
        continue;
      }
      if (sym === 256) {
        this.endBlock();
        return;
      }
      const lsym = sym - 257;
      if (lsym >= 29) throw badDeflate("invalid length symbol");
      const length = LENGTH_BASE[lsym] + this.bits(LENGTH_EXTRA[lsym]);
      const dsym = this.decode(distances);
      if (dsym >= 30) throw badDeflate("invalid distance symbol");
      const distance = DIST_BASE[dsym] + this.bits(DIST_EXTRA[dsym]);
      if (distance > this.outPos) throw badDeflate("distance too far back");
      let from = this.outPos - distance;
      const end = this.outPos + length;
      if (distance >= length) {
        out.copyWithin(this.outPos, from, from + length);
        this.outPos = end;
      } else {
        let to = this.outPos;
        while (to < end) out[to++] = out[from++];
        this.outPos = end;
      }
    }
  }
}
