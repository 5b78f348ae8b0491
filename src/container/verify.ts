import { BfcError, type Reason } from "../errors.ts";
import { HEADER_SIZE, S_IFMT, S_IFREG } from "../format/constants.ts";
import type { Reader } from "./reader.ts";

export interface VerifyOptions {
  /** Decode and check every entry's content (compressed and encrypted too), not just structure. */
  deep?: boolean;
  onProgress?: (p: VerifyProgress) => void;
}

export interface VerifyProgress {
  entries: number;
  totalEntries: number;
  bytes: number;
  totalBytes: number;
}

export interface VerifyProblem {
  /** Entry path, or null for a container-level problem. */
  path: string | null;
  reason: Reason;
  message: string;
}

export interface VerifyReport {
  ok: boolean;
  deep: boolean;
  entries: number;
  /** Entries whose content was decoded and checked (deep only). */
  checked: number;
  /** Original bytes decoded and checked (deep only). */
  bytes: number;
  problems: VerifyProblem[];
}

/** Objects up to this size are read in batches with their neighbours; larger ones stream. */
const BATCHABLE = 4 * 1024 * 1024 + 4096;
const BATCH_SPAN = 8 * 1024 * 1024;

/**
 * Checks a container and reports every problem found, not only the first. Opening already
 * checked footer, index (checksum, bounds, paths, order) and header. The quick check adds each
 * object header against its index entry and that no two objects overlap; deep also decodes every
 * file, authenticates encrypted ones, and compares sizes and checksums.
 */
export async function verify(reader: Reader, options: VerifyOptions = {}): Promise<VerifyReport> {
  const deep = options.deep === true;
  const ix = reader.index;
  const n = ix.count;
  const problems: VerifyProblem[] = [];
  const report = (i: number | null, e: unknown) => {
    const err = e instanceof BfcError ? e : null;
    problems.push({
      path: i === null ? null : ix.path(i),
      reason: err?.reason ?? "IO_ERROR",
      message: err?.message ?? String((e as Error)?.message ?? e),
    });
  };

  // Objects in file order: reads become sequential, and overlaps show up between neighbours.
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const offsets = new Float64Array(n);
  for (let i = 0; i < n; i++) offsets[i] = ix.objOffset(i);
  order.sort((a, b) => offsets[a] - offsets[b]);
  let end = HEADER_SIZE;
  let prev = -1;
  for (const i of order) {
    // A hard link shares its target's object: the same object twice is not an overlap.
    const shared =
      prev >= 0 &&
      offsets[i] === offsets[prev] &&
      ix.objSize(i) === ix.objSize(prev) &&
      (reader.hardlinkTarget(i) === prev ||
        reader.hardlinkTarget(prev) === i ||
        (reader.hardlinkTarget(i) >= 0 && reader.hardlinkTarget(i) === reader.hardlinkTarget(prev)));
    if (!shared) prev = i;
    if (offsets[i] < end && !shared) {
      report(i, new BfcError("EIO", "BAD_INDEX", `'${ix.path(i)}': object overlaps the previous object`));
    }
    end = Math.max(end, offsets[i] + ix.objSize(i));
  }

  let totalBytes = 0;
  if (deep) for (let i = 0; i < n; i++) if ((ix.mode(i) & S_IFMT) === S_IFREG) totalBytes += ix.origSize(i);
  let done = 0;
  let bytes = 0;
  let checked = 0;
  let keyMissing = 0;
  const progress = () => options.onProgress?.({ entries: done, totalEntries: n, bytes, totalBytes });

  const checkOne = async (i: number, object: Buffer | null) => {
    const isFile = (ix.mode(i) & S_IFMT) === S_IFREG;
    try {
      if (!deep) {
        await reader.checkObject(i);
      } else if (object) {
        await reader.verifyObjectBytes(i, object, false);
      } else {
        await reader.verifyEntry(i);
        await reader.checkObject(i);
      }
      if (deep) {
        checked++;
        if (isFile) bytes += ix.origSize(i);
      }
    } catch (e) {
      if (e instanceof BfcError && e.reason === "KEY_REQUIRED") keyMissing++;
      else report(i, e);
    }
    done++;
  };

  // Plan the reads: runs of small neighbouring objects become one batch read.
  const plan: { k: number; stop: number; start: number; end: number }[] = [];
  for (let k = 0; k < n; ) {
    const first = order[k];
    const size = ix.objSize(first);
    const start = offsets[first];
    let stop = k + 1;
    let spanEnd = start + size;
    if (deep && size <= BATCHABLE) {
      while (stop < n) {
        const j = order[stop];
        const jEnd = offsets[j] + ix.objSize(j);
        if (ix.objSize(j) > BATCHABLE || offsets[j] < spanEnd || jEnd - start > BATCH_SPAN) break;
        spanEnd = jEnd;
        stop++;
      }
    }
    plan.push({ k, stop, start, end: deep && size <= BATCHABLE ? spanEnd : -1 });
    k = stop;
  }

  // Two buffers: the next batch is read on the thread pool while this one is checked.
  const buffers = deep ? [Buffer.allocUnsafe(BATCH_SPAN), Buffer.allocUnsafe(BATCH_SPAN)] : [];
  const fetch = (p: number) => {
    const b = plan[p];
    if (!b || b.end < 0) return null;
    const read = reader.readRaw(b.start, b.end - b.start, buffers[p % 2]);
    read.catch(() => {});
    return read;
  };
  let next = fetch(0);
  for (let p = 0; p < plan.length; p++) {
    const b = plan[p];
    const current = next;
    next = fetch(p + 1);
    if (!current) {
      await checkOne(order[b.k], null);
      progress();
      continue;
    }
    let buf: Buffer;
    try {
      buf = await current;
    } catch (e) {
      for (let m = b.k; m < b.stop; m++) report(order[m], e);
      done += b.stop - b.k;
      continue;
    }
    const jobs: Promise<void>[] = [];
    for (let m = b.k; m < b.stop; m++) {
      const j = order[m];
      const o = offsets[j] - b.start;
      jobs.push(checkOne(j, buf.subarray(o, o + ix.objSize(j))));
    }
    await Promise.all(jobs);
    progress();
  }
  if (keyMissing > 0) {
    problems.push({
      path: null,
      reason: "KEY_REQUIRED",
      message: `${keyMissing} encrypted ${keyMissing === 1 ? "entry was" : "entries were"} not checked: a password or key is required for deep verification`,
    });
  }
  return { ok: problems.length === 0, deep, entries: n, checked, bytes, problems };
}
