import fs from "node:fs";
import { crc32c } from "../codec/crc32c.ts";
import { BfcError, corrupt } from "../errors.ts";
import { FOOTER_END_TAG, FOOTER_SIZE, HEADER_SIZE } from "../format/constants.ts";
import { decodeExtension, type Extension } from "../format/extension.ts";
import { decodeFooter, type Footer } from "../format/footer.ts";
import { IndexTable } from "../format/index-table.ts";

/**
 * Commits. A container is one or more commits laid end to end after the header: each commit appends
 * its new objects, then a complete index and a footer (docs/format.md §12). Only the last 56 bytes
 * matter to the reference reader, so every commit is a valid BFC v1 container on its own; the
 * extension area's previous-commit record chains each commit to the one before.
 */

/** One complete commit: its footer ends at `end`. */
export interface CommitSlot {
  end: number;
  footer: Footer;
  index: IndexTable;
}

/** A commit as `bfc log` shows it. */
export interface CommitInfo {
  /** 1 for the commit that created the container, then 2, 3, … */
  commit: number;
  /** Offset just past this commit's footer. */
  end: number;
  indexOffset: number;
  indexSize: number;
  entries: number;
  extension: Extension;
}

export function readFully(fd: number, buf: Buffer, position: number, what: string): void {
  let done = 0;
  while (done < buf.length) {
    const n = fs.readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) throw corrupt("TRUNCATED", `${what}: unexpected end of file`);
    done += n;
  }
}

/**
 * Loads the commit whose footer ends at `end`: footer tags and bounds as the reference checks them
 * (against `end` as if the file ended there), the index checksum and a full index validation.
 */
export function loadCommitAt(fd: number, path: string, end: number): CommitSlot {
  const fbuf = Buffer.alloc(FOOTER_SIZE);
  readFully(fd, fbuf, end - FOOTER_SIZE, "footer");
  let footer: Footer;
  try {
    footer = decodeFooter(fbuf, end);
  } catch (e) {
    const err = e as BfcError;
    throw corrupt(err.reason, `container '${path}': ${err.message}`, { path, field: err.field });
  }
  if (footer.indexOffset < HEADER_SIZE) {
    throw corrupt("BAD_FOOTER", `container '${path}': index overlaps the header`, {
      path,
      field: "footer.index_offset",
    });
  }
  // In shared memory, so that the threads of a FUSE mount attach to it without a copy (share()).
  const blob = Buffer.from(new SharedArrayBuffer(footer.indexSize));
  readFully(fd, blob, footer.indexOffset, "index");
  const crc = crc32c(blob);
  if (crc !== footer.indexCrc) {
    throw corrupt(
      "CRC_MISMATCH",
      `container '${path}': index checksum mismatch (stored 0x${hex8(footer.indexCrc)}, computed 0x${hex8(crc)})`,
      { path, field: "footer.index_crc" },
    );
  }
  let index: IndexTable;
  try {
    index = IndexTable.parse(blob, footer.indexOffset);
  } catch (e) {
    const err = e as BfcError;
    throw corrupt(err.reason, `container '${path}': ${err.message}`, { path, field: err.field });
  }
  return { end, footer, index };
}

/** True when the 56 bytes before `end` carry both footer tags (a footer, valid or not). */
export function hasFooterTags(fd: number, end: number): boolean {
  if (end < HEADER_SIZE + FOOTER_SIZE) return false;
  const b = Buffer.alloc(FOOTER_SIZE);
  readFully(fd, b, end - FOOTER_SIZE, "footer");
  return b.subarray(0, 8).equals(Buffer.from("BFCFIDX\0", "latin1")) && b.subarray(48).equals(FOOTER_END_TAG);
}

const SCAN_CHUNK = 4 * 1024 * 1024;

/**
 * Finds the last complete commit that ends before `limit`, scanning backwards for footer tags: what
 * follows it is the torn tail of a commit that never finished (a crash between its first object and
 * its footer). Each candidate must pass the full commit checks, so stray tag bytes inside file
 * content are rejected. Returns null when no complete commit exists.
 */
export function findCommitBefore(fd: number, path: string, limit: number): CommitSlot | null {
  const tag = FOOTER_END_TAG;
  const buf = Buffer.allocUnsafe(SCAN_CHUNK + tag.length - 1);
  let hi = limit;
  while (hi >= HEADER_SIZE + FOOTER_SIZE) {
    const lo = Math.max(HEADER_SIZE, hi - SCAN_CHUNK);
    const len = hi - lo;
    const view = buf.subarray(0, len);
    readFully(fd, view, lo, "container");
    let at = view.lastIndexOf(tag);
    while (at >= 0) {
      const end = lo + at + tag.length;
      if (end <= limit && end >= HEADER_SIZE + FOOTER_SIZE) {
        try {
          return loadCommitAt(fd, path, end);
        } catch {
          // Tag bytes that are not a commit's end (file content): keep looking.
        }
      }
      at = at === 0 ? -1 : view.lastIndexOf(tag, at - 1);
    }
    if (lo === HEADER_SIZE) break;
    // Overlap by the tag length minus one so a tag straddling two chunks is still found.
    hi = lo + tag.length - 1;
  }
  return null;
}

/** The commit number of a commit from its extension (1 when it records no previous commit). */
export function commitNumber(ext: Extension): number {
  return ext.previous ? ext.previous.commit : 1;
}

/**
 * Walks the previous-commit chain from `tip` back to the first commit. Each link must point strictly
 * backwards and number one less, so a damaged or hostile chain ends in an error, never a loop.
 */
export function* walkCommits(fd: number, path: string, tip: CommitSlot): Generator<CommitInfo> {
  let slot = tip;
  let ext = decodeExtension(slot.index.extension());
  let number = commitNumber(ext);
  for (;;) {
    yield {
      commit: number,
      end: slot.end,
      indexOffset: slot.footer.indexOffset,
      indexSize: slot.footer.indexSize,
      entries: slot.index.count,
      extension: ext,
    };
    const prev = ext.previous;
    if (!prev) return;
    if (
      prev.footerEnd > slot.footer.indexOffset ||
      prev.footerEnd < HEADER_SIZE + FOOTER_SIZE ||
      number < 2
    ) {
      throw corrupt(
        "BAD_INDEX",
        `container '${path}': commit ${number} points to an impossible previous commit`,
        {
          path,
          field: "index.extension.previous",
        },
      );
    }
    slot = loadCommitAt(fd, path, prev.footerEnd);
    ext = decodeExtension(slot.index.extension());
    const n = commitNumber(ext);
    if (n !== number - 1) {
      throw corrupt("BAD_INDEX", `container '${path}': commit ${number} is preceded by commit ${n}`, {
        path,
        field: "index.extension.previous",
      });
    }
    number = n;
  }
}

/** Finds commit `n` by walking back from `tip`. */
export function findCommit(fd: number, path: string, tip: CommitSlot, n: number): CommitSlot {
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new BfcError("EINVAL", "INVALID_ARGUMENT", `commit numbers start at 1, not ${n}`);
  }
  for (const c of walkCommits(fd, path, tip)) {
    if (c.commit === n) return c.end === tip.end ? tip : loadCommitAt(fd, path, c.end);
    if (c.commit < n) break;
  }
  throw new BfcError("ENOENT", "NOT_FOUND", `container '${path}' has no commit ${n}`, { path });
}

export function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, "0");
}
