import { BfcError } from "../../errors.ts";
import type { BlockSource } from "../block-source.ts";
import { BlockCache, type CachedBlock } from "./block-cache.ts";
import { blockMapPieces } from "./block-map.ts";
import { badFs } from "./corruption.ts";
import { type DataRun, dataRuns } from "./data-runs.ts";
import { type ExtDirEntry, parseDirEntries, verifyDirBlock } from "./directory.ts";
import { extentPieces } from "./extents.ts";
import { GroupTable } from "./group-descriptors.ts";
import { inInodeXattrs, inlineContent, inlineDirRegions } from "./inline-data.ts";
import {
  I_BLOCK,
  I_BLOCK_SIZE,
  INODE_FLAG_EA_INODE,
  INODE_FLAG_ENCRYPT,
  INODE_FLAG_EXTENTS,
  INODE_FLAG_INDEX,
  INODE_FLAG_INLINE_DATA,
  type Inode,
  inodeChecksumSeed,
  parseInode,
  verifyInodeChecksum,
} from "./inode.ts";
import { BLOCK_KIND_DIRECTORY, BLOCK_KIND_XATTR, checkTag, type MappingContext } from "./mapping-context.ts";
import {
  checkFeatures,
  INCOMPAT_FILETYPE,
  parseSuperblock,
  SUPERBLOCK_OFFSET,
  SUPERBLOCK_SIZE,
  type Superblock,
} from "./superblock.ts";
import {
  aclToXattr,
  parseXattrBlock,
  type RawXattr,
  XATTR_INDEX_SYSTEM,
  type Xattr,
  xattrName,
} from "./xattr.ts";

export interface ExtOpenOptions {
  /**
   * Read a filesystem whose journal was not replayed (needs_recovery). Its metadata may be stale;
   * by default such a filesystem is refused (NEEDS_RECOVERY).
   */
  ignoreJournal?: boolean;
  /** Verify metadata_csum checksums of everything read (default true; no effect without the feature). */
  verifyChecksums?: boolean;
  /** Budget of the metadata block cache in bytes (default 16 MiB). */
  cacheBytes?: number;
  /** Parsed inodes kept for repeated use (default 8192). */
  inodeCache?: number;
  /** Receives non-fatal problems (an unreplayed journal read anyway, skipped xattrs). */
  onWarning?: (message: string) => void;
}

/** The inode number of the root directory. */
export const ROOT_INO = 2;
const DEFAULT_INODE_CACHE = 8192;
/** Directory name maps kept for lookups, in entries across all directories (~250 bytes each). */
const NAME_CACHE_ENTRIES = 1 << 18;
const DEFAULT_CACHE_BYTES = 16 * 1024 * 1024;

type ContentKind = "inline" | "fast-symlink" | "extents" | "blockmap" | "none";

/**
 * A read-only ext2/ext3/ext4 filesystem read through a BlockSource. Everything is synchronous (the
 * source is) and validated as it is read: a hostile image yields BfcErrors (BAD_FILESYSTEM,
 * CRC_MISMATCH, UNSUPPORTED…), never a hang or an allocation larger than what the image holds.
 *
 * Files are addressed by inode number (or an `Inode` already read); paths are resolved by `resolve`.
 */
export class ExtFileSystem implements MappingContext {
  readonly source: BlockSource;
  readonly label: string;
  readonly sb: Superblock;
  readonly verify: boolean;
  readonly blockSize: number;
  /** Bytes the filesystem spans (blocks_count x block size). */
  readonly size: number;
  private readonly groups: GroupTable;
  private readonly cache: BlockCache;
  private readonly inodes = new Map<number, Inode>();
  private readonly inodeCache: number;
  private readonly names = new Map<number, Map<string, ExtDirEntry>>();
  private namedEntries = 0;
  private readonly warn: (message: string) => void;

  private constructor(source: BlockSource, sb: Superblock, options: ExtOpenOptions) {
    this.source = source;
    this.label = source.label;
    this.sb = sb;
    this.verify = options.verifyChecksums ?? true;
    this.blockSize = sb.blockSize;
    this.size = sb.blocksCount * sb.blockSize;
    this.warn = options.onWarning ?? (() => {});
    this.inodeCache = Math.max(1, options.inodeCache ?? DEFAULT_INODE_CACHE);
    this.cache = new BlockCache(
      source,
      sb.blockSize,
      sb.blocksCount,
      options.cacheBytes ?? DEFAULT_CACHE_BYTES,
      this.label,
    );
    this.groups = GroupTable.load(source, sb, this.label, this.verify);
  }

  /** Opens the filesystem at the start of `source`; the caller keeps ownership of the source. */
  static open(source: BlockSource, options: ExtOpenOptions = {}): ExtFileSystem {
    const label = source.label;
    if (source.size < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE) {
      throw new BfcError("EINVAL", "BAD_MAGIC", `${label}: too small to hold an ext2/ext3/ext4 filesystem`, {
        path: label,
      });
    }
    const raw = Buffer.alloc(SUPERBLOCK_SIZE);
    source.read(raw, SUPERBLOCK_OFFSET);
    const sb = parseSuperblock(raw, label, options.verifyChecksums ?? true);
    const warnings = checkFeatures(sb, label, options);
    if (sb.blocksCount * sb.blockSize > source.size) {
      throw new BfcError(
        "EIO",
        "TRUNCATED",
        `${label}: the filesystem spans ${sb.blocksCount * sb.blockSize} bytes but the image holds only ${source.size}`,
        { path: label },
      );
    }
    const fs = new ExtFileSystem(source, sb, options);
    for (const w of warnings) fs.warn(w);
    const root = fs.inode(ROOT_INO);
    if (root.type !== "directory") throw badFs(label, "the root inode is not a directory");
    return fs;
  }

  metaBlock(block: number, what: string): CachedBlock {
    return this.cache.get(block, what);
  }

  /** The inode `ino`, validated (and its checksum verified). */
  inode(ino: number): Inode {
    const hit = this.inodes.get(ino);
    if (hit) return hit;
    const sb = this.sb;
    if (!Number.isSafeInteger(ino) || ino < 1 || ino > sb.inodesCount) {
      throw badFs(this.label, `inode number ${ino} is out of range (1 to ${sb.inodesCount})`);
    }
    const g = Math.floor((ino - 1) / sb.inodesPerGroup);
    if (this.groups.inodeTableUninitialized(g, sb)) {
      throw badFs(this.label, `inode ${ino} lies in block group ${g}, whose inode table is uninitialized`);
    }
    const byte = this.groups.inodeTable(g) * sb.blockSize + ((ino - 1) % sb.inodesPerGroup) * sb.inodeSize;
    const block = Math.floor(byte / sb.blockSize);
    const off = byte - block * sb.blockSize;
    const raw = Buffer.from(this.cache.get(block, `inode ${ino}`).data.subarray(off, off + sb.inodeSize));
    if (this.verify && sb.metadataCsum) verifyInodeChecksum(raw, ino, sb, this.label);
    const inode = parseInode(raw, ino, sb, this.label);
    if (this.inodes.size >= this.inodeCache) this.inodes.delete(this.inodes.keys().next().value as number);
    this.inodes.set(ino, inode);
    return inode;
  }

  private inodeOf(x: number | Inode): Inode {
    return typeof x === "number" ? this.inode(x) : x;
  }

  private refuseEncrypted(inode: Inode): void {
    if (inode.flags & INODE_FLAG_ENCRYPT) {
      throw new BfcError(
        "EACCES",
        "UNSUPPORTED",
        `${this.label}: inode ${inode.ino} is encrypted (fscrypt); it cannot be read without its key`,
        { path: this.label },
      );
    }
  }

  /** True for inodes whose contents are encrypted (fscrypt): they can be listed but not read. */
  isEncrypted(x: number | Inode): boolean {
    return (this.inodeOf(x).flags & INODE_FLAG_ENCRYPT) !== 0;
  }

  private contentKind(inode: Inode): ContentKind {
    if (inode.flags & INODE_FLAG_INLINE_DATA) return "inline";
    if (inode.type === "symlink") {
      // The kernel's rule: a symlink with no blocks besides its xattr block keeps its target in i_block.
      const eaBlocks = inode.fileAcl !== 0 ? this.sb.clusterSize / 512 : 0;
      if (inode.blocks - eaBlocks === 0) return "fast-symlink";
    } else if (inode.type !== "file" && inode.type !== "directory") {
      return "none";
    }
    return inode.flags & INODE_FLAG_EXTENTS ? "extents" : "blockmap";
  }

  /**
   * The file's bytes in [start, end) (clipped to its size) as data runs and holes, in order, with
   * physically contiguous blocks merged. An importer can stream a sparse file by reading only the
   * data runs (with `read`) and writing holes as holes.
   */
  *runs(file: number | Inode, start = 0, end = Number.POSITIVE_INFINITY): Generator<DataRun> {
    const inode = this.inodeOf(file);
    this.refuseEncrypted(inode);
    const s = Math.min(Math.max(0, start), inode.size);
    const e = Math.min(Math.max(s, end), inode.size);
    if (s >= e) return;
    const kind = this.contentKind(inode);
    if (kind === "none") return;
    if (kind === "inline" || kind === "fast-symlink") {
      yield { offset: s, length: e - s, hole: false, physical: -1 };
      return;
    }
    const from = Math.floor(s / this.blockSize);
    const pieces = kind === "extents" ? extentPieces(this, inode, from) : blockMapPieces(this, inode, from);
    yield* dataRuns(pieces, s, e, {
      blockSize: this.blockSize,
      capBytes: this.size,
      label: this.label,
      ino: inode.ino,
    });
  }

  private smallContent(inode: Inode, kind: ContentKind): Buffer {
    if (kind === "inline") return inlineContent(inode, this.label);
    if (inode.size >= I_BLOCK_SIZE) {
      throw badFs(
        this.label,
        `inode ${inode.ino}: fast symlink of ${inode.size} bytes does not fit in the inode`,
      );
    }
    return inode.raw.subarray(I_BLOCK, I_BLOCK + inode.size);
  }

  /**
   * Reads up to `buf.length` bytes of the file at `position` into `buf`; returns the count (short
   * only at the end of the file, 0 at or past it). Holes and unwritten extents read as zeros.
   */
  read(file: number | Inode, buf: Uint8Array, position: number): number {
    const inode = this.inodeOf(file);
    this.refuseEncrypted(inode);
    if (!Number.isSafeInteger(position) || position < 0) {
      throw new BfcError("EINVAL", "INVALID_ARGUMENT", `invalid read position ${position}`);
    }
    if (position >= inode.size || buf.length === 0) return 0;
    const n = Math.min(buf.length, inode.size - position);
    const kind = this.contentKind(inode);
    if (kind === "none") return 0;
    if (kind === "inline" || kind === "fast-symlink") {
      const content = this.smallContent(inode, kind);
      return content.copy(buf, 0, position, position + n);
    }
    for (const run of this.runs(inode, position, position + n)) {
      const dst = buf.subarray(run.offset - position, run.offset - position + run.length);
      if (run.hole) dst.fill(0);
      else this.source.read(dst, run.physical);
    }
    return n;
  }

  /** The target of a symlink, as stored. */
  readlink(link: number | Inode): Buffer {
    const inode = this.inodeOf(link);
    if (inode.type !== "symlink") {
      throw new BfcError("EINVAL", "NOT_A_SYMLINK", `${this.label}: inode ${inode.ino} is not a symlink`);
    }
    this.refuseEncrypted(inode);
    const kind = this.contentKind(inode);
    let target: Buffer;
    if (kind === "inline" || kind === "fast-symlink") {
      target = Buffer.from(this.smallContent(inode, kind));
    } else {
      if (inode.size > Math.min(this.blockSize, 65536)) {
        throw badFs(this.label, `symlink inode ${inode.ino}: target of ${inode.size} bytes is too long`);
      }
      target = Buffer.alloc(inode.size);
      this.read(inode, target, 0);
    }
    if (target.length === 0 || target.indexOf(0) >= 0) {
      throw badFs(this.label, `symlink inode ${inode.ino}: empty target or target containing NUL`);
    }
    return target;
  }

  /** Entries of a directory in on-disk order, without "." and "..". */
  readdir(dir: number | Inode): ExtDirEntry[] {
    const inode = this.inodeOf(dir);
    if (inode.type !== "directory") {
      throw new BfcError(
        "ENOTDIR",
        "NOT_A_DIRECTORY",
        `${this.label}: inode ${inode.ino} is not a directory`,
      );
    }
    this.refuseEncrypted(inode);
    const sb = this.sb;
    const parse = {
      label: this.label,
      dirIno: inode.ino,
      blockSize: sb.blockSize,
      inodesCount: sb.inodesCount,
      firstIno: sb.firstIno,
      filetype: (sb.incompat & INCOMPAT_FILETYPE) !== 0,
      first: false,
    };
    const out: ExtDirEntry[] = [];
    if (this.contentKind(inode) === "inline") {
      const { parent, regions } = inlineDirRegions(inode, this.label);
      if (parent < 1 || parent > sb.inodesCount) {
        throw badFs(
          this.label,
          `inline directory inode ${inode.ino}: parent inode ${parent} is out of range`,
        );
      }
      for (const r of regions) parseDirEntries(r, 0, r.length, parse, out);
      return out;
    }
    const bs = sb.blockSize;
    if (inode.size % bs !== 0) {
      throw badFs(
        this.label,
        `directory inode ${inode.ino}: size ${inode.size} is not a whole number of blocks`,
      );
    }
    const tag = checkTag(inode.ino, BLOCK_KIND_DIRECTORY);
    const checked = this.verify && sb.metadataCsum;
    const seed = checked ? inodeChecksumSeed(sb, inode) : 0;
    const indexed = (inode.flags & INODE_FLAG_INDEX) !== 0;
    for (const run of this.runs(inode)) {
      if (run.hole) continue;
      for (let off = 0; off < run.length; off += bs) {
        const block = (run.physical + off) / bs;
        const what = `directory inode ${inode.ino}, block ${block}`;
        const cached = this.cache.get(block, what);
        if (checked && cached.checkedFor !== tag) {
          verifyDirBlock(cached.data, seed, indexed, this.label, what);
          cached.checkedFor = tag;
        }
        parse.first = run.offset + off === 0;
        parseDirEntries(cached.data, 0, bs, parse, out);
      }
    }
    return out;
  }

  /** Name → entry of a directory, kept for repeated lookups (the first of duplicate names wins). */
  private children(dir: Inode): Map<string, ExtDirEntry> {
    const hit = this.names.get(dir.ino);
    if (hit) return hit;
    const map = new Map<string, ExtDirEntry>();
    for (const e of this.readdir(dir)) if (!map.has(e.name)) map.set(e.name, e);
    if (this.namedEntries + map.size > NAME_CACHE_ENTRIES) {
      this.names.clear();
      this.namedEntries = 0;
    }
    this.names.set(dir.ino, map);
    this.namedEntries += map.size;
    return map;
  }

  /** The entry `name` in directory `dir`, or undefined. */
  lookup(dir: number | Inode, name: string): ExtDirEntry | undefined {
    const inode = this.inodeOf(dir);
    if (inode.type !== "directory") return undefined;
    return this.children(inode).get(name);
  }

  /**
   * The inode at a path relative to the root ("" is the root, "a/b" below it; no "." or ".."),
   * without following symlinks; undefined when a component is missing or not a directory.
   */
  resolve(path: string): Inode | undefined {
    let cur = this.inode(ROOT_INO);
    if (path === "") return cur;
    for (const name of path.split("/")) {
      const e = this.lookup(cur, name);
      if (!e) return undefined;
      cur = this.inode(e.ino);
    }
    return cur;
  }

  /**
   * Extended attributes: in-inode ones, then those of the external block, with their full names
   * ("user.x", "security.selinux", "system.posix_acl_access" in the generic ACL format). The
   * inline-data attribute (system.data) is content, not an attribute, and is left out.
   */
  xattrs(file: number | Inode): Xattr[] {
    const inode = this.inodeOf(file);
    const sb = this.sb;
    const raw: RawXattr[] = inInodeXattrs(inode, this.label);
    if (inode.fileAcl !== 0) {
      if (inode.fileAcl <= sb.firstDataBlock || inode.fileAcl >= sb.blocksCount) {
        throw badFs(this.label, `inode ${inode.ino}: xattr block ${inode.fileAcl} is outside the filesystem`);
      }
      const what = `xattr block of inode ${inode.ino}`;
      const cached = this.cache.get(inode.fileAcl, what);
      const tag = checkTag(0, BLOCK_KIND_XATTR);
      const verify = this.verify && sb.metadataCsum && cached.checkedFor !== tag;
      raw.push(
        ...parseXattrBlock(
          cached.data,
          inode.fileAcl,
          this.label,
          inode.ino,
          verify ? sb.checksumSeed : undefined,
        ),
      );
      if (verify) cached.checkedFor = tag;
    }
    const out: Xattr[] = [];
    for (const x of raw) {
      if (x.index === XATTR_INDEX_SYSTEM && x.suffix === "data") continue;
      const name = xattrName(x.index, x.suffix);
      if (name === undefined) {
        this.warn(
          `${this.label}: inode ${inode.ino}: skipped xattr '${x.suffix}' with unknown name index ${x.index}`,
        );
        continue;
      }
      let value = x.value ?? this.eaInodeValue(inode, x);
      if (x.index === 2 || x.index === 3)
        value = aclToXattr(value, this.label, `inode ${inode.ino}: ${name}`);
      out.push({ name, value });
    }
    return out;
  }

  /** A large xattr value kept in its own inode (ea_inode feature). */
  private eaInodeValue(owner: Inode, x: RawXattr): Buffer {
    const ea = this.inode(x.valueInode);
    if (!(ea.flags & INODE_FLAG_EA_INODE) || ea.type !== "file" || ea.size !== x.valueSize) {
      throw badFs(
        this.label,
        `inode ${owner.ino}: xattr '${x.suffix}' refers to inode ${x.valueInode}, which is not its value`,
      );
    }
    const value = Buffer.alloc(x.valueSize);
    this.read(ea, value, 0);
    return value;
  }

  /** Drops cached metadata (the source stays open: it belongs to the caller). */
  close(): void {
    this.cache.clear();
    this.inodes.clear();
    this.names.clear();
  }
}
