import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { BfcError, fromSystemError } from "../errors.ts";
import { HEADER_SIZE, S_IFDIR, S_IFLNK, S_IFMT } from "../format/constants.ts";
import type { Extension } from "../format/extension.ts";
import { ContainerLock } from "./lock.ts";
import { Reader } from "./reader.ts";
import { Writer } from "./writer.ts";

export interface CompactOptions {
  /** Keep every commit (each still readable with `{commit}`); default: only the latest. */
  keepHistory?: boolean;
  /** Write the result here instead of replacing the container. */
  output?: string;
  /** Replace an existing `output`. */
  overwrite?: boolean;
  lockTimeout?: number;
}

export interface CompactResult {
  before: number;
  after: number;
  commits: number;
  entries: number;
}

/**
 * Rewrites a container with only its live objects: those the latest commit references (or, with
 * `keepHistory`, any commit), in order, with nothing between them. Content is copied as stored
 * (compressed and encrypted payloads keep their bytes, so no key is needed) and the header keeps the
 * container's UUID and salt. The result replaces the container by rename once complete; readers of
 * the old file keep their view.
 */
export async function compact(file: string, options: CompactOptions = {}): Promise<CompactResult> {
  const lock = await ContainerLock.acquire(file, options.lockTimeout ?? 0);
  const target = path.resolve(options.output ?? file);
  const inPlace = target === path.resolve(file);
  if (!inPlace && !options.overwrite && fs.existsSync(target)) {
    lock.release();
    throw new BfcError(
      "EEXIST",
      "ALREADY_EXISTS",
      `'${options.output}' already exists (overwrite not requested)`,
      {
        path: options.output,
      },
    );
  }
  const tmp = path.join(
    path.dirname(target),
    `.${path.basename(target)}.bfc-compact-${process.pid}-${randomBytes(4).toString("hex")}`,
  );
  let src: Reader | null = null;
  let outFd = -1;
  try {
    src = await Reader.open(file);
    const before = fs.statSync(file).size;
    const header = Buffer.allocUnsafe(HEADER_SIZE);
    const srcFd = fs.openSync(file, "r");
    try {
      readFully(srcFd, header, 0);
      const chain = options.keepHistory
        ? src
            .commits()
            .reverse()
            .map((c) => c.commit)
        : [src.commit];
      /** Old object offset → where the same object now lies, and the name it was written under. */
      const moved = new Map<number, { objOffset: number; objSize: number; name: string }>();
      const ends = new Map<number, number>();
      let end = 0;
      let entries = 0;
      for (let k = 0; k < chain.length; k++) {
        const commitNo = chain[k]!;
        const r: Reader = commitNo === src.commit ? src : await Reader.open(file, { commit: commitNo });
        try {
          const ext: Partial<Extension> = { ...r.extension };
          if (options.keepHistory && ext.previous) {
            const prevEnd = ends.get(ext.previous.footerEnd);
            if (prevEnd === undefined)
              throw new BfcError("EIO", "BAD_INDEX", `commit ${commitNo}: previous commit not found`);
            ext.previous = { footerEnd: prevEnd, commit: ext.previous.commit };
          } else {
            delete ext.previous;
            if (!options.keepHistory) delete ext.commitInfo;
          }
          let w: Writer;
          if (k === 0) {
            w = await Writer.create(tmp, { templateHeader: header });
          } else {
            outFd = outFd >= 0 ? outFd : fs.openSync(tmp, "r+");
            w = Writer.forCommit(tmp, { fd: outFd, start: end, key: null });
          }
          // Hard links and object names are recomputed from the entries as they are written.
          delete ext.hardlinks;
          delete ext.objectNames;
          w.setExtension(ext);
          const ix = r.index;
          const fresh: number[] = [];
          const links: [string, string][] = [];
          try {
            for (let i = 0; i < ix.count; i++) {
              const rec = ix.record(i);
              const again = moved.get(rec.objOffset);
              if (again) {
                const t = r.hardlinkTarget(i);
                const shared = t >= 0 && ix.objOffset(t) === rec.objOffset;
                // A later commit that renamed the entry keeps the object written for an earlier one.
                w.addRecord(
                  { ...rec, objOffset: again.objOffset, objSize: again.objSize },
                  shared ? undefined : again.name,
                );
                if (shared) w.linkCarried(ix.path(i), ix.path(t));
                continue;
              }
              fresh.push(i);
              const p = ix.path(i);
              const t = r.hardlinkTarget(i);
              if (t >= 0 && ix.objOffset(t) === rec.objOffset) {
                links.push([p, ix.path(t)]);
                continue;
              }
              const fmt = rec.mode & S_IFMT;
              const meta = { mode: rec.mode, mtime: rec.mtimeNs };
              if (fmt === S_IFDIR) await w.addDirectory(p, meta);
              else if (fmt === S_IFLNK) await w.addSymlink(p, r.readlinkBytesAtSync(i), meta);
              else {
                // Written under its current path; the stored size follows the name it had.
                const storedSize = r.storedSizeAt(i);
                await w.addRawCopy(
                  p,
                  {
                    fd: srcFd,
                    offset: rec.objOffset + rec.objSize - storedSize,
                    storedSize,
                    comp: rec.comp,
                    enc: rec.enc,
                    size: rec.origSize,
                    crc: rec.crc,
                  },
                  { mode: rec.mode, mtimeNs: rec.mtimeNs },
                );
              }
            }
            for (const [p, t] of links) await w.addHardlink(p, t);
            const summary = await w.finish();
            end = summary.size;
            entries = summary.entries;
          } catch (e) {
            await w.abort();
            throw e;
          }
          ends.set(r.end, end);
          if (options.keepHistory && k < chain.length - 1) {
            // Where this commit's new objects landed, for the commits that reuse them.
            const out = await Reader.open(tmp, { recover: false });
            try {
              for (const i of fresh) {
                const j = out.index.find(ix.pathBytes(i));
                moved.set(ix.objOffset(i), {
                  objOffset: out.index.objOffset(j),
                  objSize: out.index.objSize(j),
                  name: out.objectName(j),
                });
              }
            } finally {
              out.close();
            }
          }
        } finally {
          if (r !== src) r.close();
        }
      }
      if (outFd >= 0) {
        fs.fsyncSync(outFd);
        fs.closeSync(outFd);
        outFd = -1;
      }
      fs.renameSync(tmp, target);
      syncDir(path.dirname(target));
      return { before, after: end, commits: chain.length, entries };
    } finally {
      fs.closeSync(srcFd);
    }
  } catch (e) {
    if (outFd >= 0) fs.closeSync(outFd);
    try {
      fs.unlinkSync(tmp);
    } catch {}
    throw e instanceof BfcError ? e : fromSystemError(e, `cannot compact '${file}'`, file);
  } finally {
    src?.close();
    lock.release();
  }
}

function readFully(fd: number, buf: Buffer, position: number): void {
  let done = 0;
  while (done < buf.length) {
    const n = fs.readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) throw new BfcError("EIO", "TRUNCATED", "container header is truncated");
    done += n;
  }
}

function syncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, "r");
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {}
}
