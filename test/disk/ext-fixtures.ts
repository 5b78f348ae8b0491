/**
 * ext2/ext3/ext4 fixture images, built at test time with e2fsprogs (mkfs -d from a generated source
 * tree, then e2fsck -fyD for htree directories and debugfs -w for what mkfs cannot set: 32-bit
 * owners, nanoseconds and epoch bits, device nodes, xattrs). See ../shared/reference/disk-images.md §3.
 *
 * Other tests put these images into GPT/MBR disks and QCOW2 files: `buildExtImages` returns their
 * paths, and `SPECIAL` lists what debugfs set so tests can check it.
 */
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { randomBytes, tempDir } from "../helpers.ts";

export type ExtImageName =
  | "ext4"
  | "ext4-inline"
  | "ext3"
  | "ext2"
  | "ext4-metabg"
  | "ext4-bigalloc"
  | "ext4-64k";
export const EXT_IMAGE_NAMES: readonly ExtImageName[] = [
  "ext4",
  "ext4-inline",
  "ext3",
  "ext2",
  "ext4-metabg",
  "ext4-bigalloc",
  "ext4-64k",
];

const UUID = "6a1f3c2e-5b4d-4e8f-9a0b-1c2d3e4f5a6b";
/**
 * Which source tree an image is made from: "full" has everything; "main" leaves out the 72 MiB
 * sparse file (only 1 KiB block maps need it, for triple-indirect blocks); "small" also leaves out
 * the 3000-entry directory and the 5 MiB file, for the images that exercise layouts only.
 */
export type SourceTree = "full" | "main" | "small";

/** How each image is made. */
const MKFS: Record<
  ExtImageName,
  { cmd: string; args: string[]; size: string; tree: SourceTree; inode128?: boolean }
> = {
  ext4: { cmd: "mkfs.ext4", args: ["-b", "4096", "-O", "64bit,metadata_csum"], size: "96M", tree: "main" },
  "ext4-inline": {
    cmd: "mkfs.ext4",
    args: ["-b", "4096", "-O", "inline_data,^64bit"],
    size: "96M",
    tree: "main",
  },
  ext3: { cmd: "mkfs.ext3", args: ["-b", "4096"], size: "96M", tree: "main" },
  ext2: { cmd: "mkfs.ext2", args: ["-b", "1024", "-I", "128"], size: "96M", tree: "full", inode128: true },
  // 1 KiB blocks and 64-byte descriptors: 16 groups per meta group, 37 groups, so three meta groups.
  "ext4-metabg": {
    cmd: "mkfs.ext4",
    args: ["-b", "1024", "-O", "meta_bg,^resize_inode", "-N", "4096"],
    size: "300M",
    tree: "small",
  },
  "ext4-bigalloc": {
    cmd: "mkfs.ext4",
    args: ["-b", "4096", "-O", "bigalloc", "-C", "16384"],
    size: "128M",
    tree: "small",
  },
  "ext4-64k": { cmd: "mkfs.ext4", args: ["-b", "65536"], size: "128M", tree: "small" },
};

/** Whether `tree` holds the path `p` (see `SourceTree`). */
export function inTree(tree: SourceTree, p: string): boolean {
  if (tree === "full") return true;
  if (p === "sparse-tind.bin") return false;
  return tree === "main" || !(p.startsWith("dir3000/") || p === "dir3000" || p === "big/random-5m.bin");
}

/** The tree an image is made from. */
export function treeOf(name: ExtImageName): SourceTree {
  return MKFS[name].tree;
}

/** The source tree's regular files with their contents (others: see `writeExtSourceTree`). */
export interface SourceFile {
  path: string;
  mode: number;
  /** Content, or islands of a sparse file. */
  data?: Buffer;
  sparse?: { size: number; islands: [number, Buffer][] };
}

export const BASE_MTIME = 1_600_000_000;
export const FUTURE_2100 = 4_102_444_800;
export const PAST_1960 = -315_619_200;
export const DIR3000 = 3000;

/** Targets of the symlinks, by link path: 9, 28, 104 and 999 bytes. */
export const SYMLINKS: Record<string, string> = {
  link9: "hello.txt",
  "links/link28": "../big/random-300k.bin.nope1",
  "links/link104": `../${"d".repeat(96)}/x.txt`,
  "links/link999": `${"long-target/".repeat(83)}end`,
};

function text(n: number, seed: string): Buffer {
  return Buffer.from(seed.repeat(Math.ceil(n / seed.length)).slice(0, n));
}

export const FILES: SourceFile[] = [
  { path: "hello.txt", mode: 0o644, data: Buffer.from("hello world\n") },
  { path: "empty", mode: 0o644, data: Buffer.alloc(0) },
  { path: "s59.txt", mode: 0o644, data: text(59, "fifty-nine ") },
  { path: "s150.txt", mode: 0o640, data: text(150, "one hundred fifty ") },
  { path: "big/random-5m.bin", mode: 0o644, data: randomBytes(5 * 1024 * 1024, 0xe4f5) },
  { path: "big/random-300k.bin", mode: 0o600, data: randomBytes(300 * 1024, 0x300) },
  {
    path: "sparse.bin",
    mode: 0o644,
    sparse: {
      size: 16 * 1024 * 1024,
      islands: Array.from({ length: 16 }, (_, k) => [
        k * 1024 * 1024 + 12288,
        randomBytes(4096 + k, 0x5a + k),
      ]),
    },
  },
  {
    path: "sparse-tind.bin",
    mode: 0o644,
    sparse: { size: 72 * 1024 * 1024, islands: [[70 * 1024 * 1024, randomBytes(4096, 0x70)]] },
  },
  { path: "modes/setuid", mode: 0o4755, data: Buffer.from("#!/bin/sh\n") },
  { path: "modes/setgid", mode: 0o2755, data: Buffer.from("#!/bin/sh\n") },
  { path: "modes/private", mode: 0o600, data: Buffer.from("secret\n") },
  { path: "ünïcödé/日本語.txt", mode: 0o644, data: Buffer.from("こんにちは\n") },
  { path: "hard-a", mode: 0o644, data: Buffer.from("shared by two names\n") },
  { path: "future-2100", mode: 0o644, data: Buffer.from("future\n") },
  { path: "past-1960", mode: 0o644, data: Buffer.from("past\n") },
];
for (let i = 0; i < DIR3000; i++) {
  const name = `dir3000/entry-with-a-longish-name-${String(i).padStart(4, "0")}`;
  FILES.push({ path: name, mode: 0o644, data: i % 10 === 0 ? Buffer.from(`entry ${i}\n`) : Buffer.alloc(0) });
}

/** Directories with non-default modes. */
export const DIRS: Record<string, number> = {
  big: 0o755,
  modes: 0o755,
  "modes/sticky": 0o1777,
  links: 0o755,
  "links/sub": 0o750,
  special: 0o755,
  ünïcödé: 0o755,
  dir3000: 0o755,
  "empty-dir": 0o700,
};

/** Hard links made in the source tree: path → existing path. */
export const HARDLINKS: Record<string, string> = { "links/sub/hard-b": "hard-a" };

/** The POSIX ACL set on modes/private, in the generic xattr format with the kernel's ids. */
export const ACL_VALUE = Buffer.from(
  "02000000" +
    "01000600ffffffff" +
    "02000400e8030000" +
    "04000400ffffffff" +
    "10000400ffffffff" +
    "20000000ffffffff",
  "hex",
);
export const BIG_XATTR = text(600, "xattr-value ");

/** What debugfs sets after mkfs, for checks by value. */
export const SPECIAL = {
  uid: { path: "big/random-300k.bin", uid: 100000, gid: 200000 },
  devices: [
    { path: "special/dev-null", type: "character", major: 1, minor: 3, mode: 0o20666 },
    { path: "special/dev-sda", type: "block", major: 8, minor: 0, mode: 0o60660 },
    { path: "special/dev-big", type: "character", major: 300, minor: 1000, mode: 0o20600 },
  ],
  /** mtime_extra 0x1d6f3454: 123456789 ns. */
  hello: { path: "hello.txt", ns: 123456789 },
  future: { path: "future-2100", sec: FUTURE_2100, ns: 1 },
  past: { path: "past-1960", sec: PAST_1960, ns: 5 },
  /** s59.txt: atime, ctime and crtime with their own ns (crtime also with epoch bit 1). */
  times: { path: "s59.txt", atimeNs: 7, ctimeNs: 11, crtimeNs: 13, crtimeEpoch: 1 },
  xattrs: [
    { path: "hello.txt", name: "user.comment", value: Buffer.from("hello xattr") },
    { path: "s150.txt", name: "user.big", value: BIG_XATTR },
    { path: "modes/private", name: "system.posix_acl_access", value: ACL_VALUE },
  ],
} as const;

export interface ExtFixtures {
  dir: string;
  /** The generated source trees the images were made from (see `treeOf`). */
  sources: Partial<Record<SourceTree, string>>;
  images: Partial<Record<ExtImageName, string>>;
}

/** Why the fixtures cannot be built here, or false when they can. */
export function extToolsMissing(): string | false {
  for (const tool of ["mkfs.ext4", "debugfs", "e2fsck"]) {
    const r = spawnSync(tool, ["-V"], { stdio: "ignore" });
    if (r.error) return `${tool} is not installed (Debian package e2fsprogs)`;
  }
  return false;
}

function run(cmd: string, args: string[], okCodes = [0]): { stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", env: { ...process.env, LC_ALL: "C.UTF-8" } });
  if (r.error) throw r.error;
  if (!okCodes.includes(r.status ?? -1)) {
    throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}: ${r.stderr}${r.stdout}`);
  }
  return { stdout: r.stdout, stderr: r.stderr };
}

async function makeSocket(at: string): Promise<void> {
  // Node unlinks a listening socket's path when it closes, so the socket is kept under a second name.
  const tmp = `${at}.tmp`;
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(tmp, resolve);
  });
  fs.linkSync(tmp, at);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  fs.rmSync(tmp, { force: true });
}

/** Writes a source tree under `root` (created), with fixed modes and mtimes. */
export async function writeExtSourceTree(root: string, tree: SourceTree = "full"): Promise<void> {
  const dirs = Object.keys(DIRS).filter((d) => inTree(tree, d));
  const files = FILES.filter((f) => inTree(tree, f.path));
  fs.mkdirSync(root, { recursive: true });
  for (const d of dirs) fs.mkdirSync(path.join(root, d), { recursive: true });
  for (const f of files) {
    const full = path.join(root, f.path);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    if (f.data) fs.writeFileSync(full, f.data);
    else if (f.sparse) {
      const fd = fs.openSync(full, "w");
      try {
        fs.ftruncateSync(fd, f.sparse.size);
        for (const [at, bytes] of f.sparse.islands) fs.writeSync(fd, bytes, 0, bytes.length, at);
      } finally {
        fs.closeSync(fd);
      }
    }
  }
  for (const [link, existing] of Object.entries(HARDLINKS))
    fs.linkSync(path.join(root, existing), path.join(root, link));
  for (const [link, target] of Object.entries(SYMLINKS)) fs.symlinkSync(target, path.join(root, link));
  execFileSync("mkfifo", [path.join(root, "special/fifo")]);
  await makeSocket(path.join(root, "special/socket"));
  // Modes and times last (creating children moves a directory's mtime); deepest paths first.
  const all: string[] = [];
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const p = rel === "" ? e.name : `${rel}/${e.name}`;
      all.push(p);
      if (e.isDirectory()) walk(p);
    }
  };
  walk("");
  all.sort();
  for (const f of files) fs.chmodSync(path.join(root, f.path), f.mode);
  for (const d of dirs) fs.chmodSync(path.join(root, d), DIRS[d] as number);
  all.forEach((p, k) => {
    const t = p === "future-2100" ? FUTURE_2100 : p === "past-1960" ? PAST_1960 : BASE_MTIME + 1000 * k;
    // A Date, because node's utimes takes a negative number of seconds to mean "now".
    const d = new Date(t * 1000);
    fs.lutimesSync(path.join(root, p), d, d);
  });
  fs.utimesSync(root, BASE_MTIME, BASE_MTIME);
}

/** The debugfs script that sets what mkfs -d cannot. */
function debugfsScript(dir: string, name: ExtImageName): string {
  const big = path.join(dir, "big-xattr.val");
  const acl = path.join(dir, "acl.val");
  fs.writeFileSync(big, BIG_XATTR);
  fs.writeFileSync(acl, ACL_VALUE);
  const lines = [
    `sif /${SPECIAL.uid.path} uid ${SPECIAL.uid.uid}`,
    `sif /${SPECIAL.uid.path} gid ${SPECIAL.uid.gid}`,
    "cd /special",
    ...SPECIAL.devices.flatMap((d) => [
      `mknod ${path.basename(d.path)} ${d.type === "block" ? "b" : "c"} ${d.major} ${d.minor}`,
      `sif ${path.basename(d.path)} mode 0${d.mode.toString(8)}`,
      `sif ${path.basename(d.path)} mtime ${BASE_MTIME}`,
    ]),
    "cd /",
    `ea_set /${SPECIAL.xattrs[0].path} ${SPECIAL.xattrs[0].name} "hello xattr"`,
    `ea_set -f ${big} /${SPECIAL.xattrs[1].path} ${SPECIAL.xattrs[1].name}`,
    `ea_set -f ${acl} /${SPECIAL.xattrs[2].path} ${SPECIAL.xattrs[2].name}`,
  ];
  if (!MKFS[name].inode128) {
    const t = SPECIAL.times;
    lines.push(
      `sif /${SPECIAL.hello.path} mtime_extra 0x1d6f3454`,
      `sif /${SPECIAL.future.path} mtime_extra ${(SPECIAL.future.ns << 2) | 1}`,
      `sif /${SPECIAL.past.path} mtime_extra ${SPECIAL.past.ns << 2}`,
      `sif /${t.path} atime_extra ${t.atimeNs << 2}`,
      `sif /${t.path} ctime_extra ${t.ctimeNs << 2}`,
      `sif /${t.path} crtime_extra ${(t.crtimeNs << 2) | t.crtimeEpoch}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** Builds one image from `source` into `file` (`scratch` holds the debugfs script and value files). */
export function buildExtImage(name: ExtImageName, source: string, file: string, scratch: string): void {
  const spec = MKFS[name];
  fs.rmSync(file, { force: true });
  run(spec.cmd, [
    "-q",
    "-F",
    "-U",
    UUID,
    "-E",
    `root_owner=0:0,hash_seed=${UUID}`,
    ...spec.args,
    "-d",
    source,
    file,
    spec.size,
  ]);
  // mkfs -d never builds hashed directories; e2fsck -D does (exit 1: "file system was modified").
  run("e2fsck", ["-fyD", file], [0, 1]);
  const script = path.join(scratch, `${name}.debugfs`);
  fs.writeFileSync(script, debugfsScript(scratch, name));
  // debugfs exits 0 even when a command fails; its complaints go to stderr after the version banner.
  const { stderr } = run("debugfs", ["-w", "-f", script, file]);
  const complaints = stderr.split("\n").filter((l) => l !== "" && !l.startsWith("debugfs "));
  if (complaints.length > 0) throw new Error(`debugfs on ${name}: ${complaints.join("; ")}`);
  run("e2fsck", ["-fn", file]);
}

/**
 * Builds the source tree and the images (all of them unless `only` names some) in a temporary
 * directory removed at exit; about 1 s per image.
 */
export async function buildExtImages(only: readonly ExtImageName[] = EXT_IMAGE_NAMES): Promise<ExtFixtures> {
  const dir = tempDir("bfc-ext-");
  const sources: Partial<Record<SourceTree, string>> = {};
  for (const tree of new Set(only.map(treeOf))) {
    sources[tree] = path.join(dir, `src-${tree}`);
    await writeExtSourceTree(sources[tree], tree);
  }
  const images: Partial<Record<ExtImageName, string>> = {};
  for (const name of only) {
    const file = path.join(dir, `${name}.img`);
    buildExtImage(name, sources[treeOf(name)] as string, file, dir);
    images[name] = file;
  }
  return { dir, sources, images };
}

/**
 * An ext4 image of an arbitrary folder (mkfs -d), without lost+found so that its listings equal the
 * folder's: the VFS conformance suite mounts it with the disk type.
 */
export function buildExt4OfFolder(folder: string, file: string): void {
  fs.rmSync(file, { force: true });
  run("mkfs.ext4", ["-q", "-F", "-U", UUID, "-E", "root_owner=0:0", "-b", "4096", "-d", folder, file, "32M"]);
  const { stderr } = run("debugfs", ["-w", "-R", "rmdir lost+found", file]);
  const complaints = stderr.split("\n").filter((l) => l !== "" && !l.startsWith("debugfs "));
  if (complaints.length > 0) throw new Error(`debugfs on ${file}: ${complaints.join("; ")}`);
}
