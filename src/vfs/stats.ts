import fs from "node:fs";
import type { FileType, NodeStat } from "./filesystem.ts";

/**
 * Real `fs.Stats` / `fs.BigIntStats` instances: objects made on their prototypes get Node's own
 * isFile()/isDirectory()/… and lazy Date getters, and pass `instanceof fs.Stats`, without calling the
 * deprecated constructor.
 */
const STATS_PROTO = fs.Stats.prototype;
const BIGINT_STATS_PROTO = Object.getPrototypeOf(fs.statSync("/", { bigint: true })) as object;

export const BLOCK_SIZE = 4096;

export function toStats(st: NodeStat, dev: number): fs.Stats {
  const s = Object.create(STATS_PROTO) as fs.Stats;
  s.dev = dev;
  s.mode = st.mode;
  s.nlink = st.nlink;
  s.uid = st.uid;
  s.gid = st.gid;
  s.rdev = st.rdev;
  s.blksize = BLOCK_SIZE;
  s.ino = st.ino;
  s.size = st.size;
  s.blocks = st.blocks;
  s.atimeMs = st.atimeMs ?? st.mtimeMs;
  s.mtimeMs = st.mtimeMs;
  s.ctimeMs = st.ctimeMs ?? st.mtimeMs;
  s.birthtimeMs = st.birthtimeMs ?? st.mtimeMs;
  return s;
}

function nsToMsBig(ns: bigint): bigint {
  // Node floors toward -infinity for BigIntStats' *Ms fields.
  const ms = ns / 1_000_000n;
  return ns < 0n && ms * 1_000_000n !== ns ? ms - 1n : ms;
}

export function toBigIntStats(st: NodeStat, dev: number): fs.BigIntStats {
  const s = Object.create(BIGINT_STATS_PROTO) as fs.BigIntStats;
  const atimeNs = st.atimeNs ?? st.mtimeNs;
  const ctimeNs = st.ctimeNs ?? st.mtimeNs;
  const birthtimeNs = st.birthtimeNs ?? st.mtimeNs;
  s.dev = BigInt(dev);
  s.mode = BigInt(st.mode);
  s.nlink = BigInt(st.nlink);
  s.uid = BigInt(st.uid);
  s.gid = BigInt(st.gid);
  s.rdev = BigInt(st.rdev);
  s.blksize = BigInt(BLOCK_SIZE);
  s.ino = BigInt(st.ino);
  s.size = BigInt(st.size);
  s.blocks = BigInt(st.blocks);
  s.atimeMs = nsToMsBig(atimeNs);
  s.mtimeMs = nsToMsBig(st.mtimeNs);
  s.ctimeMs = nsToMsBig(ctimeNs);
  s.birthtimeMs = nsToMsBig(birthtimeNs);
  s.atimeNs = atimeNs;
  s.mtimeNs = st.mtimeNs;
  s.ctimeNs = ctimeNs;
  s.birthtimeNs = birthtimeNs;
  return s;
}

const {
  UV_DIRENT_FILE,
  UV_DIRENT_DIR,
  UV_DIRENT_LINK,
  UV_DIRENT_FIFO,
  UV_DIRENT_SOCKET,
  UV_DIRENT_CHAR,
  UV_DIRENT_BLOCK,
} = fs.constants as typeof fs.constants & Record<string, number>;

const DIRENT_TYPES: Record<FileType, number> = {
  file: UV_DIRENT_FILE,
  directory: UV_DIRENT_DIR,
  symlink: UV_DIRENT_LINK,
  fifo: UV_DIRENT_FIFO,
  socket: UV_DIRENT_SOCKET,
  character: UV_DIRENT_CHAR,
  block: UV_DIRENT_BLOCK,
};

type DirentCtor = new (name: string | Buffer, type: number, parentPath: string) => fs.Dirent;

/** A real `fs.Dirent` (its type lives in a private symbol, so only the constructor can set it). */
export function toDirent(name: string | Buffer, type: FileType, parentPath: string): fs.Dirent {
  return new (fs.Dirent as unknown as DirentCtor)(name, DIRENT_TYPES[type], parentPath);
}

const { S_IFMT, S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK } = fs.constants;

export function typeOfMode(mode: number): FileType {
  switch (mode & S_IFMT) {
    case S_IFDIR:
      return "directory";
    case S_IFLNK:
      return "symlink";
    case S_IFIFO:
      return "fifo";
    case S_IFSOCK:
      return "socket";
    case S_IFCHR:
      return "character";
    case S_IFBLK:
      return "block";
    default:
      return "file";
  }
}

export function modeBitsOf(type: FileType): number {
  switch (type) {
    case "directory":
      return S_IFDIR;
    case "symlink":
      return S_IFLNK;
    case "fifo":
      return S_IFIFO;
    case "socket":
      return S_IFSOCK;
    case "character":
      return S_IFCHR;
    case "block":
      return S_IFBLK;
    default:
      return S_IFREG;
  }
}
