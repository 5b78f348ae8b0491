/**
 * A golden listing of an ext image made with debugfs, the reference this project compares its ext
 * reader with: `ls -p` per directory (by inode number, so no path quoting), `stat` per inode (hex
 * time fields; `ls -l` would misprint pre-1970 times), `dump` or `cat` for contents and slow
 * symlink targets, `ea_list` values as printed.
 *
 * debugfs 1.47.0 pads inline-data contents to 60 bytes when dumping; contents are cut to the size
 * stat reports (see ../shared/reference/disk-images.md §2).
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { ExtFileType } from "../../src/disk/ext/inode.ts";

/** debugfs's type names, as the ext reader (and the VFS) name the types. */
export const DEBUGFS_TYPES: Record<string, ExtFileType> = {
  regular: "file",
  directory: "directory",
  symlink: "symlink",
  "character special": "character",
  "block special": "block",
  FIFO: "fifo",
  socket: "socket",
};

export interface GoldenTime {
  /** Raw 32-bit second field. */
  sec: number;
  /** The *_extra field, when the inode has one. */
  extra?: number;
}

export interface GoldenXattr {
  name: string;
  size: number;
  /** The value when debugfs prints it (a quoted string or hex bytes). */
  value?: Buffer;
}

export interface GoldenEntry {
  path: string;
  ino: number;
  /** Full mode from `ls -p` (octal there). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  type: string;
  links: number;
  flags: number;
  generation: number;
  blockcount: number;
  times: { atime?: GoldenTime; ctime?: GoldenTime; mtime?: GoldenTime; crtime?: GoldenTime };
  rdev?: { major: number; minor: number };
  linkTarget?: Buffer;
  sha256?: string;
  xattrs: GoldenXattr[];
}

function debugfs(image: string, commands: string[], scratch: string, tag: string): string {
  const script = path.join(scratch, `${tag}.cmds`);
  fs.writeFileSync(script, `${commands.join("\n")}\n`);
  const r = spawnSync("debugfs", ["-f", script, image], {
    encoding: "latin1",
    maxBuffer: 1 << 28,
    env: { ...process.env, LC_ALL: "C" },
  });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`debugfs exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** Splits -f output into each command's output, by the "debugfs: <command>" echo lines. */
function perCommand(out: string): Map<string, string> {
  const map = new Map<string, string>();
  let current: string | undefined;
  let lines: string[] = [];
  for (const line of out.split("\n")) {
    if (line.startsWith("debugfs: ")) {
      if (current !== undefined) map.set(current, lines.join("\n"));
      current = line.slice("debugfs: ".length);
      lines = [];
    } else lines.push(line);
  }
  if (current !== undefined) map.set(current, lines.join("\n"));
  return map;
}

function parseTime(m: RegExpMatchArray | null): GoldenTime | undefined {
  if (!m) return undefined;
  const t: GoldenTime = { sec: Number.parseInt(m[1] as string, 16) };
  if (m[2] !== undefined) t.extra = Number.parseInt(m[2], 16);
  return t;
}

/** Values as `ea_list` prints them: "text" with C escapes, or hex bytes. */
function parseXattrValue(s: string): Buffer | undefined {
  if (s.startsWith('"') && s.endsWith('"')) {
    const body = s
      .slice(1, -1)
      .replace(/\\(\d{3}|.)/g, (_, e: string) =>
        e.length === 3 ? String.fromCharCode(Number.parseInt(e, 8)) : e,
      );
    return Buffer.from(body, "latin1");
  }
  if (/^([0-9a-f]{2} )+$/.test(`${s} `)) return Buffer.from(s.replaceAll(" ", ""), "hex");
  return undefined;
}

function parseStat(text: string, e: GoldenEntry): void {
  const num = (re: RegExp): number => {
    const m = text.match(re);
    if (!m) throw new Error(`debugfs stat of inode ${e.ino}: no ${re}`);
    return Number(m[1]);
  };
  e.type = (text.match(/Type: (.+?)\s{2,}Mode:/)?.[1] ?? "").trim();
  e.flags = num(/Flags: (0x[0-9a-f]+)/);
  e.generation = num(/Generation: (\d+)/);
  e.links = num(/Links: (\d+)/);
  e.blockcount = num(/Blockcount: (\d+)/);
  for (const which of ["atime", "ctime", "mtime", "crtime"] as const) {
    const t = parseTime(text.match(new RegExp(`^\\s*${which}: 0x([0-9a-f]{8})(?::([0-9a-f]{8}))?`, "m")));
    if (t) e.times[which] = t;
  }
  const dev = text.match(/Device major\/minor number: (\d+):(\d+)/);
  if (dev) e.rdev = { major: Number(dev[1]), minor: Number(dev[2]) };
  const fast = text.match(/^Fast link dest: "(.*)"$/m);
  if (fast) e.linkTarget = Buffer.from(fast[1] as string, "latin1");
  const ea = text.match(/Extended attributes:\n((?: {2}.*\n?)*)/);
  if (ea) {
    for (const line of (ea[1] as string).split("\n")) {
      const m = line.match(/^ {2}(\S+) \((\d+)\)(?: = (.*))?$/);
      if (!m) continue;
      const x: GoldenXattr = { name: m[1] as string, size: Number(m[2]) };
      const v = m[3] === undefined ? undefined : parseXattrValue((m[3] as string).trimEnd());
      if (v) x.value = v;
      e.xattrs.push(x);
    }
  }
}

function streamHash(image: string, ino: number, size: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn("debugfs", ["-R", `cat <${ino}>`, image], { stdio: ["ignore", "pipe", "ignore"] });
    const h = createHash("sha256");
    let got = 0;
    p.stdout.on("data", (chunk: Buffer) => {
      const take = Math.min(chunk.length, size - got);
      if (take > 0) h.update(chunk.subarray(0, take));
      got += chunk.length;
    });
    p.on("error", reject);
    p.on("close", () =>
      got < size ? reject(new Error(`cat <${ino}>: ${got} of ${size} bytes`)) : resolve(h.digest("hex")),
    );
  });
}

/** The golden listing of `image`, keyed by path ("" is the root). */
export async function debugfsGolden(image: string, scratch: string): Promise<Map<string, GoldenEntry>> {
  fs.mkdirSync(scratch, { recursive: true });
  const entries = new Map<string, GoldenEntry>();
  const blank = (
    p: string,
    ino: number,
    mode: number,
    uid: number,
    gid: number,
    size: number,
  ): GoldenEntry => ({
    path: p,
    ino,
    mode,
    uid,
    gid,
    size,
    type: "",
    links: 0,
    flags: 0,
    generation: 0,
    blockcount: 0,
    times: {},
    xattrs: [],
  });
  entries.set("", blank("", 2, 0o40755, 0, 0, 0));
  // Breadth first, one debugfs run per level.
  let frontier: [string, number][] = [["", 2]];
  for (let round = 0; frontier.length > 0; round++) {
    const out = perCommand(
      debugfs(
        image,
        frontier.map(([, ino]) => `ls -p <${ino}>`),
        scratch,
        `ls${round}`,
      ),
    );
    const next: [string, number][] = [];
    for (const [dir, ino] of frontier) {
      const text = out.get(`ls -p <${ino}>`) ?? "";
      for (const line of text.split("\n")) {
        if (!line.startsWith("/")) continue;
        const f = line.slice(1, -1).split("/");
        const name = Buffer.from(f[4] as string, "latin1").toString("utf8");
        // Unused slots show as inode 0 in inline directories.
        if (name === ".." || f[0] === "0") continue;
        if (name === ".") {
          if (dir === "") (entries.get("") as GoldenEntry).mode = Number.parseInt(f[1] as string, 8);
          continue;
        }
        const p = dir === "" ? name : `${dir}/${name}`;
        const mode = Number.parseInt(f[1] as string, 8);
        const e = blank(p, Number(f[0]), mode, Number(f[2]), Number(f[3]), f[5] === "" ? 0 : Number(f[5]));
        entries.set(p, e);
        if ((mode & 0o170000) === 0o040000) next.push([p, e.ino]);
      }
    }
    frontier = next;
  }
  const inodes = [...new Set([...entries.values()].map((e) => e.ino))];
  const stats = perCommand(
    debugfs(
      image,
      inodes.map((i) => `stat <${i}>`),
      scratch,
      "stat",
    ),
  );
  for (const e of entries.values()) {
    parseStat(stats.get(`stat <${e.ino}>`) ?? "", e);
    const kind = e.mode & 0o170000;
    if (kind === 0o040000) e.size = Number(stats.get(`stat <${e.ino}>`)?.match(/Size: (\d+)/)?.[1]);
  }
  // Contents: small files dumped in one run, large ones streamed through a hash.
  const dumps: string[] = [];
  const big: GoldenEntry[] = [];
  for (const e of entries.values()) {
    const kind = e.mode & 0o170000;
    const slowLink = kind === 0o120000 && e.linkTarget === undefined;
    if (kind !== 0o100000 && !slowLink) continue;
    if (e.size > 8 * 1024 * 1024) big.push(e);
    else if (e.size > 0) dumps.push(`dump <${e.ino}> ${path.join(scratch, `ino-${e.ino}`)}`);
  }
  debugfs(image, dumps, scratch, "dump");
  for (const e of entries.values()) {
    const kind = e.mode & 0o170000;
    if (kind !== 0o100000 && !(kind === 0o120000 && e.linkTarget === undefined)) continue;
    if (e.size > 8 * 1024 * 1024) continue;
    let data = Buffer.alloc(0);
    if (e.size > 0) {
      data = fs.readFileSync(path.join(scratch, `ino-${e.ino}`));
      if (data.length < e.size) throw new Error(`dump of ${e.path}: ${data.length} of ${e.size} bytes`);
      data = data.subarray(0, e.size);
    }
    if (kind === 0o120000) e.linkTarget = data;
    else e.sha256 = createHash("sha256").update(data).digest("hex");
  }
  await Promise.all(big.map(async (e) => (e.sha256 = await streamHash(image, e.ino, e.size))));
  return entries;
}

/** Decodes a golden time as the ext4 kernel does (signed seconds, epoch bits, nanoseconds). */
export function goldenTimeNs(t: GoldenTime): bigint {
  const sec = BigInt(t.sec | 0);
  if (t.extra === undefined) return sec * 1_000_000_000n;
  return (sec + (BigInt(t.extra & 3) << 32n)) * 1_000_000_000n + BigInt(t.extra >>> 2);
}
