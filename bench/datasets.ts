/**
 * Deterministic benchmark datasets, generated on first use under bench/data/<scale>/ and reused
 * while their manifest matches. A few MiB of varied material (log-like text, JSON records, source-ish
 * lines and ~20% incompressible blocks) is built once from a seeded PRNG; every file is assembled
 * from slices of it at per-file random offsets, so generation never loops over bytes in JS.
 */
import fs from "node:fs";
import path from "node:path";
import { Writer } from "../src/index.ts";

export type ScaleName = "full" | "quick";
export type DatasetId = "a" | "b" | "c" | "d" | "e";

export interface Scale {
  name: ScaleName;
  many: { count: number; size: number };
  small: { count: number; dirs: number; min: number; max: number };
  big: { size: number };
  entries: { count: number };
  /** Dataset e: a tree of `count` entries (files + directories) for the VFS group. */
  tree: { count: number; pages: number; big: number };
}

const MiB = 1024 * 1024;
export const SCALES: Record<ScaleName, Scale> = {
  full: {
    name: "full",
    many: { count: 2000, size: MiB },
    small: { count: 50_000, dirs: 100, min: 1024, max: 8192 },
    big: { size: 2048 * MiB },
    entries: { count: 100_000 },
    tree: { count: 100_000, pages: 6000, big: 64 * MiB },
  },
  quick: {
    name: "quick",
    many: { count: 200, size: MiB },
    small: { count: 5000, dirs: 40, min: 1024, max: 8192 },
    big: { size: 256 * MiB },
    entries: { count: 10_000 },
    tree: { count: 10_000, pages: 1500, big: 16 * MiB },
  },
};

/** A directory tree to pack: `<parent>/<name>` (tools run in `parent` and name `name`). */
export interface Dataset {
  id: DatasetId;
  label: string;
  parent: string;
  name: string;
  files: number;
  bytes: number;
  /** For dataset d: the container and a path inside it to stat. */
  container?: string;
  probe?: string;
  /** For dataset e: its entries (files + directories), and the layout the VFS rows use. */
  entries?: number;
  tree?: TreeLayout;
}

/** Where dataset e keeps what the VFS rows read (paths relative to `<parent>/<name>`). */
export interface TreeLayout {
  /** The large file for random reads, and its size. */
  big: string;
  bigSize: number;
  /** The directory holding exactly FLAT_ENTRIES entries (4 KiB files). */
  flat: string;
  /** Directories of 4 KiB files, PAGES_PER_DIR each. */
  pageDirs: string[];
}

/** Bump when the generated content changes, so stale datasets are rebuilt. */
const GEN_VERSION = 2;
const POOL_BYTES = 12 * MiB;

/** sfc32: small, fast, seedable. */
export function prng(seed: number): () => number {
  let a = 0x9e3779b9 ^ seed;
  let b = 0x243f6a88 + seed * 7;
  let c = 0xb7e15162 ^ (seed << 3);
  let d = 1;
  const next = () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

const COMMON =
  "the of and to in is for on with as by at from that this it be are was not or an have has can will data file user value request error cache index server client build config".split(
    " ",
  );
const SYL =
  "ka ri to ne mu sa lo vi de po an el in or um ex bar con dat fil gen man net pro sec sys tem ver".split(
    " ",
  );

function vocabulary(rand: () => number): string[] {
  const words = [...COMMON];
  while (words.length < 600) {
    let w = "";
    const n = 2 + Math.floor(rand() * 3);
    for (let i = 0; i < n; i++) w += SYL[Math.floor(rand() * SYL.length)];
    words.push(w);
  }
  return words;
}

/** Builds the shared material: segments of text, JSON, code-like lines and random bytes. */
export function makePool(seed = 1, size = POOL_BYTES): Buffer {
  const rand = prng(seed);
  const words = vocabulary(rand);
  // Skewed choice: frequent words dominate, as in real text.
  const word = () => words[Math.floor(words.length * rand() ** 3)];
  const int = (n: number) => Math.floor(rand() * n);
  const hex = (n: number) => {
    let s = "";
    for (let i = 0; i < n; i++) s += "0123456789abcdef"[int(16)];
    return s;
  };
  // Recurring phrases (log messages, idioms) make the text as repetitive as real text.
  const phrases: string[] = [];
  for (let i = 0; i < 64; i++) phrases.push(Array.from({ length: 3 + int(5) }, word).join(" "));
  const phrase = () => phrases[Math.floor(phrases.length * rand() ** 2)];
  // Per segment a running clock and id, as in real logs and exports.
  let clock = Date.UTC(2024, 0, 1);
  let id = 100000;
  const stamp = () => {
    clock += int(2000);
    return new Date(clock).toISOString();
  };
  const nextId = () => {
    id += 1 + int(3);
    return id;
  };
  const levels = ["INFO", "INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
  const lines: Record<string, () => string> = {
    log: () =>
      `${stamp()} ${levels[int(levels.length)]} [${phrases[int(8)].split(" ")[0]}-${int(4)}] ${phrase()} ${int(1000)} ${rand() < 0.3 ? `req=${hex(6)} ` : ""}took ${int(500)} ms\n`,
    prose: () => `${phrase()} ${word()} ${phrase()}${rand() < 0.5 ? ` ${word()} ${word()}` : ""}.\n`,
    json: () =>
      `  {"id": ${nextId()}, "name": "${word()} ${word()}", "email": "${word()}@example.com", "tags": ["${word()}", "${word()}"], "score": ${int(100)}, "active": ${rand() < 0.8}, "created": "${stamp()}"},\n`,
    code: () =>
      `${"  ".repeat(1 + int(3))}const ${word()} = ${phrases[int(16)].split(" ")[0]}.${word()}(${int(100)}, "${word()}", ${rand() < 0.5 ? "true" : "null"});\n`,
  };
  const kinds = ["log", "prose", "json", "code"];
  const pool = Buffer.allocUnsafe(size);
  let at = 0;
  while (at < size) {
    const len = Math.min(size - at, 16 * 1024 + int(96 * 1024));
    if (rand() < 0.2) {
      // Incompressible block (already-compressed media, archives, keys).
      for (let i = 0; i + 4 <= len; i += 4) pool.writeUInt32LE((rand() * 4294967296) >>> 0, at + i);
      at += len;
      continue;
    }
    const make = lines[kinds[int(kinds.length)]];
    const parts: string[] = [];
    let n = 0;
    while (n < len) {
      const s = make();
      parts.push(s);
      n += s.length;
    }
    at += Buffer.from(parts.join("")).copy(pool, at, 0, len);
  }
  return pool;
}

/** Fills `buf` with slices of the pool at random offsets, after an optional unique header. */
export function fillFrom(pool: Buffer, rand: () => number, buf: Buffer, header = ""): void {
  let at = header ? buf.write(header) : 0;
  while (at < buf.length) {
    const len = Math.min(buf.length - at, 4096 + Math.floor(rand() * 60 * 1024));
    const off = Math.floor(rand() * (pool.length - len));
    at += pool.copy(buf, at, off, off + len);
  }
}

function du(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    files++;
    bytes += fs.statSync(path.join(e.parentPath, e.name)).size;
  }
  return { files, bytes };
}

function genMany(pool: Buffer, s: Scale, root: string): void {
  const buf = Buffer.allocUnsafe(s.many.size);
  for (let i = 0; i < s.many.count; i++) {
    const sub = path.join(root, `batch-${String(Math.floor(i / 250)).padStart(2, "0")}`);
    if (i % 250 === 0) fs.mkdirSync(sub, { recursive: true });
    const name = `blob-${String(i).padStart(5, "0")}.dat`;
    fillFrom(pool, prng(1000 + i), buf, `# ${name}\n`);
    fs.writeFileSync(path.join(sub, name), buf);
  }
}

const TOP = ["src", "docs", "assets", "test", "lib", "config", "data", "vendor", "scripts", "public"];
// No .ts: tsconfig includes bench/, and generated files must not be type-checked.
const EXT = [".js", ".js", ".py", ".json", ".md", ".txt", ".css", ".html", ".log", ".yaml"];

/** A realistic tree: `dirs` directories up to 4 deep, files spread with a skew. */
function treeDirs(rand: () => number, words: string[], count: number): string[] {
  const dirs = TOP.slice(0, Math.min(TOP.length, count));
  while (dirs.length < count) {
    const parent = dirs[Math.floor(rand() * dirs.length)];
    if (parent.split("/").length >= 4) continue;
    const d = `${parent}/${words[Math.floor(rand() * words.length)]}`;
    if (!dirs.includes(d)) dirs.push(d);
  }
  return dirs;
}

function genSmall(pool: Buffer, s: Scale, root: string): void {
  const rand = prng(7);
  const dirs = treeDirs(rand, vocabulary(prng(3)), s.small.dirs);
  for (const d of dirs) fs.mkdirSync(path.join(root, d), { recursive: true });
  for (let i = 0; i < s.small.count; i++) {
    const d = dirs[Math.floor(dirs.length * rand() ** 1.5)];
    const size = s.small.min + Math.floor(rand() * (s.small.max - s.small.min + 1));
    const off = Math.floor(rand() * (pool.length - size));
    const name = `f${String(i).padStart(5, "0")}${EXT[Math.floor(rand() * EXT.length)]}`;
    fs.writeFileSync(path.join(root, d, name), pool.subarray(off, off + size));
  }
}

function genBig(pool: Buffer, s: Scale, root: string): void {
  fs.mkdirSync(root, { recursive: true });
  const fd = fs.openSync(path.join(root, "big.bin"), "w");
  const chunk = Buffer.allocUnsafe(8 * MiB);
  const rand = prng(99);
  try {
    for (let done = 0; done < s.big.size; ) {
      const n = Math.min(chunk.length, s.big.size - done);
      fillFrom(pool, rand, chunk.subarray(0, n));
      done += fs.writeSync(fd, chunk, 0, n, done);
    }
  } finally {
    fs.closeSync(fd);
  }
}

const PKG_FILES = ["index.js", "package.json", "README.md", "LICENSE", "lib/index.js", "lib/utils.js"];

/** A container of `count` small entries named like an npm node_modules tree. */
async function genEntries(pool: Buffer, s: Scale, file: string): Promise<string> {
  const rand = prng(11);
  const words = vocabulary(prng(5));
  const w = await Writer.create(file, { compression: "none", overwrite: true });
  const names = new Set<string>();
  let pkg = 0;
  while (names.size < s.entries.count) {
    const base = `node_modules/${words[pkg % words.length]}-${pkg}`;
    pkg++;
    const extra = 10 + Math.floor(rand() * 60);
    const files = [...PKG_FILES];
    for (let i = 0; i < extra; i++) {
      const dir = ["lib", "dist", "src", "lib/internal", "dist/esm"][Math.floor(rand() * 5)];
      files.push(`${dir}/${words[Math.floor(rand() * words.length)]}-${i}.js`);
    }
    for (const f of files) {
      if (names.size >= s.entries.count) break;
      names.add(`${base}/${f}`);
    }
  }
  for (const name of names) {
    const size = 100 + Math.floor(rand() * 1900);
    const off = Math.floor(rand() * (pool.length - size));
    await w.addFile(name, pool.subarray(off, off + size));
  }
  await w.finish();
  const sorted = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  return sorted[Math.floor(sorted.length * 0.61)];
}

/** Dataset e: exactly this many entries in one directory (for readdir). */
export const FLAT_ENTRIES = 1024;
export const PAGE_SIZE = 4096;
const PAGES_PER_DIR = 100;

/**
 * Dataset e, the VFS tree: `tree.count` entries (files and directories, the root not counted): one
 * large file for random reads, `flat/` with exactly FLAT_ENTRIES 4 KiB files, `pages/pNN/` with
 * `tree.pages` more 4 KiB files, and an npm-like `node_modules/` of small files (100–2,000 bytes, up
 * to 5 levels deep) making up the rest.
 */
function genTree(pool: Buffer, s: Scale, root: string): TreeLayout {
  const rand = prng(13);
  const words = vocabulary(prng(17));
  let entries = 0;
  const mkdir = (rel: string) => {
    fs.mkdirSync(path.join(root, rel));
    entries++;
  };
  const write = (rel: string, size: number, header = "") => {
    const buf = Buffer.allocUnsafe(size);
    fillFrom(pool, rand, buf, header);
    fs.writeFileSync(path.join(root, rel), buf);
    entries++;
  };
  fs.mkdirSync(root, { recursive: true });
  const big = "big.bin";
  {
    const fd = fs.openSync(path.join(root, big), "w");
    const chunk = Buffer.allocUnsafe(8 * MiB);
    try {
      for (let done = 0; done < s.tree.big; ) {
        const n = Math.min(chunk.length, s.tree.big - done);
        fillFrom(pool, rand, chunk.subarray(0, n));
        done += fs.writeSync(fd, chunk, 0, n, done);
      }
    } finally {
      fs.closeSync(fd);
    }
    entries++;
  }
  mkdir("flat");
  for (let i = 0; i < FLAT_ENTRIES; i++) {
    const name = `flat/${words[i % words.length]}-${String(i).padStart(4, "0")}.txt`;
    write(name, PAGE_SIZE, `# ${name}\n`);
  }
  mkdir("pages");
  const pageDirs: string[] = [];
  for (let i = 0; i < s.tree.pages; i++) {
    if (i % PAGES_PER_DIR === 0) {
      const d = `pages/p${String(i / PAGES_PER_DIR).padStart(3, "0")}`;
      mkdir(d);
      pageDirs.push(d);
    }
    const name = `${pageDirs[pageDirs.length - 1]}/page-${String(i).padStart(5, "0")}.html`;
    write(name, PAGE_SIZE, `<!-- ${name} -->\n`);
  }
  mkdir("node_modules");
  const made = new Set<string>();
  for (let pkg = 0; entries < s.tree.count; pkg++) {
    const base = `node_modules/${words[pkg % words.length]}-${pkg}`;
    mkdir(base);
    const files = [...PKG_FILES];
    const extra = 10 + Math.floor(rand() * 60);
    for (let i = 0; i < extra; i++) {
      const dir = ["lib", "dist", "src", "lib/internal", "dist/esm"][Math.floor(rand() * 5)];
      files.push(`${dir}/${words[Math.floor(rand() * words.length)]}-${i}.js`);
    }
    for (const f of files) {
      // Parent directories first, each counted once.
      const parts = f.split("/");
      let need = 1;
      for (let k = 1; k < parts.length; k++) if (!made.has(`${base}/${parts.slice(0, k).join("/")}`)) need++;
      if (entries + need > s.tree.count) continue;
      for (let k = 1; k < parts.length; k++) {
        const d = `${base}/${parts.slice(0, k).join("/")}`;
        if (!made.has(d)) {
          made.add(d);
          mkdir(d);
        }
      }
      write(`${base}/${f}`, 100 + Math.floor(rand() * 1900));
      if (entries >= s.tree.count) break;
    }
  }
  return { big, bigSize: s.tree.big, flat: "flat", pageDirs };
}

function describe(id: DatasetId, s: Scale): { name: string; label: string } {
  switch (id) {
    case "a":
      return { name: "many1m", label: `(a) ${s.many.count}×${s.many.size / MiB}MiB` };
    case "b":
      return { name: "small", label: `(b) ${s.small.count} small` };
    case "c":
      return { name: "big", label: `(c) 1×${fmtSize(s.big.size)}` };
    case "d":
      return { name: "entries.bfc", label: `(d) ${s.entries.count} entries` };
    case "e":
      return { name: "tree", label: `(e) ${s.tree.count}-entry tree` };
  }
}

function fmtSize(n: number): string {
  return n >= 1024 * MiB ? `${n / (1024 * MiB)}GiB` : `${n / MiB}MiB`;
}

export function datasetLabel(id: DatasetId, s: Scale): string {
  return describe(id, s).label;
}

/** Returns the dataset, generating it first unless a matching complete copy exists. */
export async function ensureDataset(id: DatasetId, s: Scale, dataRoot: string): Promise<Dataset> {
  const parent = path.join(dataRoot, s.name, id);
  const manifest = path.join(dataRoot, s.name, `${id}.json`);
  const { name, label } = describe(id, s);
  // Each dataset's own parameters only, so adding one does not invalidate the others.
  const { tree, ...rest } = s;
  const params = JSON.stringify(
    id === "e" ? { v: GEN_VERSION, id, scale: s.name, tree } : { v: GEN_VERSION, id, scale: rest },
  );
  try {
    const m = JSON.parse(fs.readFileSync(manifest, "utf8")) as Dataset & { params: string };
    const target = path.join(parent, name);
    if (m.params === params && fs.existsSync(target)) {
      return { ...m, parent, container: id === "d" ? target : undefined };
    }
  } catch {
    // No manifest or unreadable: (re)generate.
  }
  fs.rmSync(manifest, { force: true });
  fs.rmSync(parent, { recursive: true, force: true });
  fs.mkdirSync(parent, { recursive: true });
  process.stderr.write(`generating dataset ${label} in ${parent} ...\n`);
  const t0 = performance.now();
  const pool = makePool();
  const target = path.join(parent, name);
  const ds: Dataset = { id, label, parent, name, files: 0, bytes: 0 };
  if (id === "a") genMany(pool, s, target);
  if (id === "b") genSmall(pool, s, target);
  if (id === "c") genBig(pool, s, target);
  if (id === "d") {
    ds.probe = await genEntries(pool, s, target);
    ds.container = target;
    ds.files = s.entries.count;
    ds.bytes = fs.statSync(target).size;
  } else {
    if (id === "e") ds.tree = genTree(pool, s, target);
    Object.assign(ds, du(target));
    if (id === "e") ds.entries = s.tree.count;
  }
  fs.writeFileSync(manifest, JSON.stringify({ ...ds, params }, null, 2));
  process.stderr.write(`  done in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  return ds;
}
