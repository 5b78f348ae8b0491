/**
 * Text formats of the reference CLI (reference spec §20): mode strings, sizes, local dates. Pure
 * functions, no library imports, so every command can load this file at no cost.
 */

import type { EntryAttrs } from "../format/extension.ts";

const S_IFMT = 0o170000;

function typeChar(mode: number): string {
  switch (mode & S_IFMT) {
    case 0o040000:
      return "d";
    case 0o120000:
      return "l";
    case 0o100000:
      return "-";
    case 0o020000:
      return "c";
    case 0o060000:
      return "b";
    case 0o010000:
      return "p";
    case 0o140000:
      return "s";
    default:
      return "?";
  }
}

function rwx(bits: number): string {
  return (bits & 4 ? "r" : "-") + (bits & 2 ? "w" : "-") + (bits & 1 ? "x" : "-");
}

/** `list -l`'s mode string: type and three rwx triplets, setuid/setgid/sticky not shown (as the reference). */
export function modeString(mode: number): string {
  return typeChar(mode) + rwx(mode >> 6) + rwx(mode >> 3) + rwx(mode);
}

/** `info`'s mode string, like `ls -l`: s/S for setuid and setgid, t/T for sticky. */
export function fullModeString(mode: number): string {
  const u = rwx(mode >> 6).split("");
  const g = rwx(mode >> 3).split("");
  const o = rwx(mode).split("");
  if (mode & 0o4000) u[2] = u[2] === "x" ? "s" : "S";
  if (mode & 0o2000) g[2] = g[2] === "x" ? "s" : "S";
  if (mode & 0o1000) o[2] = o[2] === "x" ? "t" : "T";
  return typeChar(mode) + u.join("") + g.join("") + o.join("");
}

/** Permission bits as the reference's `(0%04o)`, e.g. `00644`, `04755`. */
export function octalMode(mode: number): string {
  return "0" + (mode & 0o7777).toString(8).padStart(4, "0");
}

/**
 * printf("%.1f") of a number: its exact binary value rounded to one decimal. toFixed does the same
 * except for exact ties, where glibc goes to the even digit (1.25 → "1.2") and toFixed up ("1.3").
 * A double is an exact tie at one decimal only when it is an odd multiple of 1/4.
 */
export function fixed1(x: number): string {
  if (x < 0) return `-${fixed1(-x)}`;
  const q = x * 4;
  if (Number.isInteger(q) && q % 2 === 1) {
    let n = Math.floor(x * 10);
    if (n % 2 === 1) n += 1;
    const whole = Math.floor(n / 10);
    return `${whole}.${n - whole * 10}`;
  }
  return x.toFixed(1);
}

const KIB = 1024;
const MIB = KIB * 1024;
const GIB = MIB * 1024;

/** `list`'s size column: `63B`, `256.0K`, `1.0M`, `2.5G`. */
export function shortSize(n: number): string {
  if (n < KIB) return `${n}B`;
  if (n < MIB) return `${fixed1(n / KIB)}K`;
  if (n < GIB) return `${fixed1(n / MIB)}M`;
  return `${fixed1(n / GIB)}G`;
}

/** `info`'s sizes: `12 bytes`, `256.0 KiB (262144 bytes)`. */
export function humanSize(n: number): string {
  if (n < KIB) return `${n} bytes`;
  if (n < MIB) return `${fixed1(n / KIB)} KiB (${n} bytes)`;
  if (n < GIB) return `${fixed1(n / MIB)} MiB (${n} bytes)`;
  return `${fixed1(n / GIB)} GiB (${n} bytes)`;
}

/** A ratio as a percentage with one decimal, `100.0%` when the base is 0 (as the reference). */
export function percent(part: number, whole: number): string {
  if (whole === 0) return "100.0%";
  return `${fixed1((part * 100) / whole)}%`;
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** Local date and time `YYYY-MM-DD HH:MM` (list's long format). */
export function localMinute(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

/** Local date and time `YYYY-MM-DD HH:MM:SS`. */
export function localSecond(ms: number): string {
  const d = new Date(ms);
  return `${localMinute(ms)}:${pad2(d.getSeconds())}`;
}

let zoneFormat: Intl.DateTimeFormat | null = null;

/** The local time zone's abbreviation at that instant (`UTC`, `EST`, or `GMT+1` where none exists). */
export function zoneName(ms: number): string {
  zoneFormat ??= new Intl.DateTimeFormat("en-US", { timeZoneName: "short" });
  const part = zoneFormat.formatToParts(new Date(ms)).find((p) => p.type === "timeZoneName");
  return part?.value ?? "";
}

/** `info`'s dates: `2024-01-02 03:04:05 UTC`, local time. */
export function localSecondZone(ms: number): string {
  return `${localSecond(ms)} ${zoneName(ms)}`;
}

/** Eight lowercase hex digits. */
export function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, "0");
}

/** Whole seconds and the non-negative nanosecond remainder (times before 1970 floor correctly). */
function splitNs(ns: bigint): [bigint, bigint] {
  const frac = ((ns % 1000000000n) + 1000000000n) % 1000000000n;
  return [(ns - frac) / 1000000000n, frac];
}

/** An mtime in nanoseconds as an RFC 3339 UTC timestamp with all nine fraction digits. */
export function isoNs(ns: bigint): string {
  const [sec, frac] = splitNs(ns);
  const base = new Date(Number(sec) * 1000).toISOString().slice(0, 19);
  return `${base}.${frac.toString().padStart(9, "0")}Z`;
}

/** Local time with nanoseconds and numeric offset, like stat(1): `2024-01-02 03:04:05.000000000 +0000`. */
export function localNs(ns: bigint): string {
  const [sec, frac] = splitNs(ns);
  const ms = Number(sec) * 1000;
  const off = -new Date(ms).getTimezoneOffset();
  const sign = off < 0 ? "-" : "+";
  const a = Math.abs(off);
  return `${localSecond(ms)}.${frac.toString().padStart(9, "0")} ${sign}${pad2(Math.floor(a / 60))}${pad2(a % 60)}`;
}

/** Bytes for progress displays: `512 B`, `1.5 MiB`. */
export function compactBytes(n: number): string {
  if (n < KIB) return `${Math.round(n)} B`;
  if (n < MIB) return `${(n / KIB).toFixed(1)} KiB`;
  if (n < GIB) return `${(n / MIB).toFixed(1)} MiB`;
  return `${(n / GIB).toFixed(2)} GiB`;
}

/** The JSON form of an entry (list --json, stat --json, info --json): see docs/cli.md. */
export interface EntryJson {
  path: string;
  type: "file" | "directory" | "symlink" | "other" | "character" | "block" | "fifo" | "socket";
  mode: number;
  permissions: string;
  modeString: string;
  size: number;
  mtime: string;
  mtimeNs: string;
  crc32c: string | null;
  compression: "none" | "zstd";
  encrypted: boolean;
  storedSize: number;
  payloadSize: number;
  offset: number;
  implicit?: true;
  target?: string | null;
  hardlinkOf?: string;
  nlink?: number;
  rdevMajor?: number;
  rdevMinor?: number;
  uid?: number;
  gid?: number;
  atime?: string;
  atimeNs?: string;
  ctime?: string;
  ctimeNs?: string;
  birthtime?: string;
  birthtimeNs?: string;
  /** Values base64-encoded. */
  xattrs?: Record<string, string>;
}

/** What the extension area records about an entry beyond the index (all optional). */
export interface EntryExtras extends EntryAttrs {
  /** For special entries (device nodes, fifos, sockets), which have no index entry. */
  specialType?: "character" | "block" | "fifo" | "socket";
  rdevMajor?: number;
  rdevMinor?: number;
  /** Hard links: the path whose object this entry shares, and the names in the group. */
  hardlinkOf?: string;
  nlink?: number;
}

export function entryJson(
  e: {
    path: string;
    type: "file" | "directory" | "symlink" | "other";
    mode: number;
    size: number;
    mtimeNs: bigint;
    crc32c: number;
    compression: "none" | "zstd";
    encrypted: boolean;
    objectSize: number;
    storedSize: number;
    objectOffset: number;
    index: number;
  },
  target?: string | null,
  x?: EntryExtras,
): EntryJson {
  const out: EntryJson = {
    path: e.path,
    type: x?.specialType ?? e.type,
    mode: e.mode,
    permissions: (e.mode & 0o7777).toString(8).padStart(4, "0"),
    modeString: fullModeString(e.mode),
    size: e.size,
    mtime: isoNs(e.mtimeNs),
    mtimeNs: e.mtimeNs.toString(),
    crc32c: e.type === "file" || e.type === "symlink" ? `0x${hex8(e.crc32c)}` : null,
    compression: e.compression,
    encrypted: e.encrypted,
    storedSize: e.objectSize,
    payloadSize: e.storedSize,
    offset: e.objectOffset,
  };
  if (e.index < 0 && x?.specialType === undefined) out.implicit = true;
  if (e.type === "symlink") out.target = target ?? null;
  if (x === undefined) return out;
  if (x.hardlinkOf !== undefined) out.hardlinkOf = x.hardlinkOf;
  if (x.nlink !== undefined && x.nlink > 1) out.nlink = x.nlink;
  if (x.specialType === "character" || x.specialType === "block") {
    out.rdevMajor = x.rdevMajor ?? 0;
    out.rdevMinor = x.rdevMinor ?? 0;
  }
  if (x.uid !== undefined) out.uid = x.uid;
  if (x.gid !== undefined) out.gid = x.gid;
  if (x.atimeNs !== undefined) {
    out.atime = isoNs(x.atimeNs);
    out.atimeNs = x.atimeNs.toString();
  }
  if (x.ctimeNs !== undefined) {
    out.ctime = isoNs(x.ctimeNs);
    out.ctimeNs = x.ctimeNs.toString();
  }
  if (x.birthtimeNs !== undefined) {
    out.birthtime = isoNs(x.birthtimeNs);
    out.birthtimeNs = x.birthtimeNs.toString();
  }
  if (x.xattrs !== undefined && x.xattrs.size > 0) {
    out.xattrs = Object.fromEntries([...x.xattrs].map(([k, v]) => [k, v.toString("base64")]));
  }
  return out;
}

/** "1 file", "2 files" (or the plural given). */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
