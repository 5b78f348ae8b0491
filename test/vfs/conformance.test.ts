/**
 * One conformance suite for every filesystem type: the same tree (test/vfs/fixture-tree.ts) as a host
 * folder, a zip made by the `zip` CLI, a bfc made by our writer, an ext4 image made by mkfs.ext4 -d
 * (the disk type) and a memory filesystem filled through the VFS write API, each mounted at /mnt and
 * compared with real node:fs on the host folder: listings, stats the type supports, contents,
 * positioned and ranged reads, symlinks, realpath, the exact errors (code, errno, syscall, path,
 * message) and writes (EROFS on read-only types, visible on writable ones). Then paths that cross
 * mounts.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { createVfs } from "../../src/vfs/index.ts";
import type { Vfs } from "../../src/vfs/vfs.ts";
import { buildExt4OfFolder, extToolsMissing } from "../disk/ext-fixtures.ts";
import { caught, prng, rejected, sha256, tempDir, writeTree } from "../helpers.ts";
import {
  buildBfc,
  buildZip,
  byPath,
  COMPRESSIBLE_SIZE,
  DIRS,
  ENTRIES,
  FILES,
  haveZip,
  materializeHost,
  materializeVfs,
  RANDOM_SIZE,
  SYMLINKS,
} from "./fixture-tree.ts";

const { S_IFMT } = fs.constants;

// ───────────────────────────────────────────────────────────────── fixtures

const BASE = fs.realpathSync(tempDir("bfc-conf-"));
/** The reference: node:fs runs here, and read-only host mounts see it. */
const REF = path.join(BASE, "ref");
/** A second copy for the writable host mount. */
const COPY = path.join(BASE, "copy");
const ZIP_FILE = path.join(BASE, "tree.zip");
const BFC_FILE = path.join(BASE, "tree.bfc");
const EXT4_FILE = path.join(BASE, "tree.ext4");
const EXT_MISSING = extToolsMissing();
if (EXT_MISSING) console.log(`# conformance: disk cases skipped: ${EXT_MISSING}`);
const ZIP = haveZip();
const ZIP_SKIP = ZIP ? false : "the zip binary is not installed";
if (!ZIP) console.log("# conformance: zip cases skipped: the `zip` binary is not installed");

materializeHost(REF);
materializeHost(COPY);
if (ZIP) buildZip(REF, ZIP_FILE);
await buildBfc(REF, BFC_FILE);
if (!EXT_MISSING) buildExt4OfFolder(REF, EXT4_FILE);

const MNT = "/mnt";
/** The VFS path of a tree-relative path. */
const V = (rel: string): string => (rel === "" ? MNT : `${MNT}/${rel}`);
/** The reference host path of a tree-relative path (not normalized: "link/.." must reach the OS). */
const H = (rel: string): string => (rel === "" ? REF : `${REF}/${rel}`);
/** A host path under REF (as node:fs reports it in errors) as the VFS path. */
const hostToV = (p: string): string =>
  p === REF ? MNT : p.startsWith(`${REF}/`) ? MNT + p.slice(REF.length) : p;

interface Profile {
  name: string;
  skip: string | false;
  /** Every write is refused with EROFS. */
  readonly: boolean;
  /** "ns": mtimes kept to the nanosecond; "s": to the second (zip). */
  mtime: "ns" | "s";
  /** Directories report st_nlink as 2 + subdirectories, as Linux filesystems do. */
  nlink: boolean;
  /** The host folder behind a writable host mount (writes must show there). */
  disk?: string;
  mount(vfs: Vfs): Promise<void>;
}

const PROFILES: Profile[] = [
  {
    name: "host",
    skip: false,
    readonly: false,
    mtime: "ns",
    nlink: true,
    disk: COPY,
    mount: async (vfs) => {
      await vfs.mount("host", MNT, { root: COPY });
    },
  },
  {
    name: "host (readonly)",
    skip: false,
    readonly: true,
    mtime: "ns",
    nlink: true,
    mount: async (vfs) => {
      await vfs.mount("host", MNT, { root: REF, readonly: true });
    },
  },
  {
    name: "zip",
    skip: ZIP_SKIP,
    readonly: true,
    mtime: "s",
    nlink: true,
    mount: async (vfs) => {
      await vfs.mount("zip", MNT, { path: ZIP_FILE });
    },
  },
  {
    name: "bfc",
    skip: false,
    readonly: true,
    mtime: "ns",
    nlink: true,
    mount: async (vfs) => {
      await vfs.mount("bfc", MNT, { path: BFC_FILE });
    },
  },
  {
    // An ext4 image made by mkfs.ext4 -d from the folder (which keeps whole seconds only).
    name: "disk (ext4)",
    skip: EXT_MISSING,
    readonly: true,
    mtime: "s",
    nlink: true,
    mount: async (vfs) => {
      await vfs.mount("disk", MNT, { image: EXT4_FILE });
    },
  },
  {
    name: "memory",
    skip: false,
    readonly: false,
    mtime: "ns",
    nlink: true,
    mount: async (vfs) => {
      await vfs.mount("memory", MNT, {});
      materializeVfs(vfs, MNT);
    },
  },
];

// ───────────────────────────────────────────────────────────────── helpers

type Kind = "file" | "dir" | "symlink" | "other";

function kindOf(x: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): Kind {
  if (x.isFile()) return "file";
  if (x.isDirectory()) return "dir";
  if (x.isSymbolicLink()) return "symlink";
  return "other";
}

/**
 * The VFS error has node's code, errno, syscall, path and dest (mapped into the VFS) and message.
 * `shownPath`: node leaves the path out of this error (opendir does), the VFS names it.
 */
function assertSameError(
  got: NodeJS.ErrnoException,
  want: NodeJS.ErrnoException,
  label: string,
  shownPath?: string,
): void {
  assert.equal(got.code, want.code, `${label}: code (${got.message})`);
  assert.equal(got.errno, want.errno, `${label}: errno`);
  assert.equal(got.syscall, want.syscall, `${label}: syscall`);
  assert.equal(got.path, want.path === undefined ? shownPath : hostToV(want.path), `${label}: path`);
  const wantDest = (want as { dest?: string }).dest;
  assert.equal(
    (got as { dest?: string }).dest,
    wantDest === undefined ? undefined : hostToV(wantDest),
    `${label}: dest`,
  );
  let wantMessage = want.message.replaceAll(`'${REF}/`, `'${MNT}/`).replaceAll(`'${REF}'`, `'${MNT}'`);
  if (want.path === undefined && shownPath !== undefined) wantMessage += ` '${shownPath}'`;
  assert.equal(got.message, wantMessage, `${label}: message`);
  assertErrorShape(got, want.code as string, label);
}

/** `CODE: description, syscall 'path'` (or without a path when there is none). */
function assertErrorShape(e: NodeJS.ErrnoException, code: string, label: string): void {
  assert.ok(e instanceof Error, `${label}: an Error`);
  assert.equal(e.code, code, `${label}: code (${e.message})`);
  assert.equal(typeof e.errno, "number", `${label}: errno`);
  assert.ok(typeof e.syscall === "string" && e.syscall.length > 0, `${label}: syscall`);
  const prefix = `${code}: `;
  assert.ok(e.message.startsWith(prefix), `${label}: message ${e.message}`);
  const rest = e.message.slice(prefix.length);
  assert.ok(
    rest.includes(`, ${e.syscall} '`) || rest.endsWith(`, ${e.syscall}`),
    `${label}: message names the syscall: ${e.message}`,
  );
  if (e.path !== undefined) assert.ok(e.message.includes(`'${e.path}'`), `${label}: message names the path`);
}

/** The same call against node:fs on the reference folder and against the VFS. */
interface SyncApi {
  statSync(p: string): unknown;
  lstatSync(p: string): unknown;
  readFileSync(p: string): unknown;
  readdirSync(p: string): unknown;
  readlinkSync(p: string): unknown;
  realpathSync(p: string): unknown;
  openSync(p: string, flags: string): number;
  opendirSync(p: string): unknown;
  accessSync(p: string): void;
  existsSync(p: string): boolean;
}

const HOST_API: SyncApi = {
  statSync: (p) => fs.statSync(p),
  lstatSync: (p) => fs.lstatSync(p),
  readFileSync: (p) => fs.readFileSync(p),
  readdirSync: (p) => fs.readdirSync(p),
  readlinkSync: (p) => fs.readlinkSync(p),
  // node's JS realpath reports the lstat of the component that failed; the native one reports
  // realpath(3) on the whole path, as the VFS does.
  realpathSync: (p) => fs.realpathSync.native(p),
  openSync: (p, flags) => fs.openSync(p, flags),
  opendirSync: (p) => fs.opendirSync(p),
  accessSync: (p) => fs.accessSync(p),
  existsSync: (p) => fs.existsSync(p),
};

function vfsApi(vfs: Vfs): SyncApi {
  return {
    statSync: (p) => vfs.statSync(p),
    lstatSync: (p) => vfs.lstatSync(p),
    readFileSync: (p) => vfs.readFileSync(p),
    readdirSync: (p) => vfs.readdirSync(p),
    readlinkSync: (p) => vfs.readlinkSync(p),
    realpathSync: (p) => vfs.realpathSync(p),
    openSync: (p, flags) => vfs.openSync(p, flags),
    opendirSync: (p) => vfs.opendirSync(p),
    accessSync: (p) => vfs.accessSync(p),
    existsSync: (p) => vfs.existsSync(p),
  };
}

type Where = (rel: string) => string;

/** Failing reads, with the errno Linux gives. */
const ERROR_CASES: [string, string, (f: SyncApi, at: Where) => unknown, string?][] = [
  ["stat of a missing path", "ENOENT", (f, at) => f.statSync(at("nope"))],
  ["lstat of a missing path", "ENOENT", (f, at) => f.lstatSync(at("nope"))],
  ["stat below a missing directory", "ENOENT", (f, at) => f.statSync(at("nope/deeper"))],
  ["readFile of a missing path", "ENOENT", (f, at) => f.readFileSync(at("a/missing.txt"))],
  ["open of a missing path", "ENOENT", (f, at) => f.openSync(at("nope"), "r")],
  ["readdir of a missing path", "ENOENT", (f, at) => f.readdirSync(at("nope"))],
  ["readlink of a missing path", "ENOENT", (f, at) => f.readlinkSync(at("nope"))],
  ["access of a missing path", "ENOENT", (f, at) => f.accessSync(at("nope"))],
  ["realpath of a missing path", "ENOENT", (f, at) => f.realpathSync(at("a/nope"))],
  ["stat of file/x", "ENOTDIR", (f, at) => f.statSync(at("hello.txt/x"))],
  ["lstat of file/x", "ENOTDIR", (f, at) => f.lstatSync(at("a/top.txt/x"))],
  ["readFile of file/x", "ENOTDIR", (f, at) => f.readFileSync(at("hello.txt/x"))],
  ["stat of link-to-file/x", "ENOTDIR", (f, at) => f.statSync(at("link-file/x"))],
  ["readdir of a file", "ENOTDIR", (f, at) => f.readdirSync(at("hello.txt"))],
  ["readdir of a symlink to a file", "ENOTDIR", (f, at) => f.readdirSync(at("link-file"))],
  // node's opendirSync leaves the path out of its error; the VFS names it.
  ["opendir of a file", "ENOTDIR", (f, at) => f.opendirSync(at("empty.txt")), V("empty.txt")],
  ["stat of file/ (trailing slash)", "ENOTDIR", (f, at) => f.statSync(`${at("hello.txt")}/`)],
  ["lstat of file/ (trailing slash)", "ENOTDIR", (f, at) => f.lstatSync(`${at("hello.txt")}/`)],
  ["readFile of file/ (trailing slash)", "ENOTDIR", (f, at) => f.readFileSync(`${at("hello.txt")}/`)],
  ["stat of link-to-file/ (trailing slash)", "ENOTDIR", (f, at) => f.statSync(`${at("link-file")}/`)],
  ["readFile of a directory", "EISDIR", (f, at) => f.readFileSync(at("a"))],
  ["readFile of a symlink to a directory", "EISDIR", (f, at) => f.readFileSync(at("link-dir"))],
  ["open of a directory for writing", "EISDIR", (f, at) => f.openSync(at("a/b"), "r+")],
  ["readlink of a file", "EINVAL", (f, at) => f.readlinkSync(at("hello.txt"))],
  ["readlink of a directory", "EINVAL", (f, at) => f.readlinkSync(at("a"))],
  ["stat of a dangling symlink", "ENOENT", (f, at) => f.statSync(at("dangling"))],
  ["readFile of a dangling symlink", "ENOENT", (f, at) => f.readFileSync(at("dangling"))],
  ["stat below a dangling symlink", "ENOENT", (f, at) => f.statSync(at("dangling/x"))],
  ["realpath of a dangling symlink", "ENOENT", (f, at) => f.realpathSync(at("dangling"))],
  ["stat of a 2-symlink loop", "ELOOP", (f, at) => f.statSync(at("loop1"))],
  ["readFile of a 2-symlink loop", "ELOOP", (f, at) => f.readFileSync(at("loop2"))],
  ["stat of a self-loop", "ELOOP", (f, at) => f.statSync(at("self"))],
  ["readdir of a self-loop", "ELOOP", (f, at) => f.readdirSync(at("self"))],
  ["stat below a loop", "ELOOP", (f, at) => f.statSync(at("loop1/x"))],
  ["lstat below a loop", "ELOOP", (f, at) => f.lstatSync(at("self/x"))],
  ["realpath of a loop", "ELOOP", (f, at) => f.realpathSync(at("loop1"))],
  ["open of a loop", "ELOOP", (f, at) => f.openSync(at("self"), "r")],
];

/** Directories to list, including through symlinks. */
const LISTED = ["", ...DIRS, "link-dir", "docs/to-a", "docs/to-a/b"];

/** Paths whose contents are compared: every file, and files reached through symlinks and "..". */
const READ_PATHS = [
  ...FILES,
  "link-file",
  "a/b/up-link",
  "link-dir/up-link",
  "link-dir/c/deep.txt",
  "link-dir/../top.txt",
  "docs/to-a/b/../top.txt",
  "a/./b/c/../c/deep.txt",
];

/** Paths for stat/lstat/realpath: every entry, the root, and paths through links. */
const STAT_PATHS = ["", ...ENTRIES.map((e) => e.path), "link-dir/c", "docs/to-a/b/up-link", "link-dir/.."];

/**
 * What a recursive readdir lists below a host directory. node's string form stats every name and
 * descends into symlinks to directories (its withFileTypes form does not); the VFS lists such links
 * without entering them in both forms (no loops), so the expectation is node's withFileTypes walk.
 */
function recursiveNames(hostDir: string): string[] {
  return recursiveEntries(hostDir)
    .map(([parent, name]) => (parent === "" ? name : `${parent}/${name}`))
    .sort();
}

/**
 * [parent relative to `hostDir`, name, kind] of everything below it, sorted: a breadth-first walk with
 * node:fs that lists symlinks to directories without entering them. (node 24's readdirSync with
 * `recursive` enters them, in both its string and withFileTypes forms, while fs.promises.readdir's
 * withFileTypes form does not; the VFS never enters them, so that links cannot make it loop.)
 */
function recursiveEntries(hostDir: string): [string, string, Kind][] {
  const out: [string, string, Kind][] = [];
  const queue = [""];
  for (let q = 0; q < queue.length; q++) {
    const rel = queue[q] as string;
    for (const e of fs.readdirSync(rel === "" ? hostDir : `${hostDir}/${rel}`, { withFileTypes: true })) {
      out.push([rel, e.name, kindOf(e)]);
      if (e.isDirectory()) queue.push(rel === "" ? e.name : `${rel}/${e.name}`);
    }
  }
  return out.sort((x, y) => (x.join("|") < y.join("|") ? -1 : 1));
}

function sortedNames(list: unknown[]): string[] {
  return (list as string[]).slice().sort();
}

async function collect(stream: NodeJS.ReadableStream & { toArray(): Promise<unknown[]> }): Promise<Buffer> {
  return Buffer.concat(((await stream.toArray()) as (Buffer | string)[]).map((c) => Buffer.from(c)));
}

// ───────────────────────────────────────────────────────────────── the suite, per type

for (const profile of PROFILES) {
  describe(`conformance: ${profile.name}`, { skip: profile.skip }, () => {
    let vfs: Vfs;
    let dev: number;

    it("mounts at /mnt", async () => {
      vfs = createVfs();
      await profile.mount(vfs);
      const mounts = vfs.mounts();
      assert.equal(mounts.length, 1);
      assert.equal(mounts[0]?.target, MNT);
      assert.equal(mounts[0]?.readonly, profile.readonly);
      dev = mounts[0]?.dev as number;
      assert.deepEqual(vfs.readdirSync("/"), ["mnt"]);
    });

    it("lists directories like node:fs (plain, withFileTypes, recursive)", () => {
      for (const d of LISTED) {
        const want = sortedNames(fs.readdirSync(H(d)));
        assert.deepEqual(sortedNames(vfs.readdirSync(V(d)) as string[]), want, `readdir ${d}`);

        const typed = (list: fs.Dirent[]) => list.map((e) => `${e.name}:${kindOf(e)}`).sort();
        assert.deepEqual(
          typed(vfs.readdirSync(V(d), { withFileTypes: true }) as fs.Dirent[]),
          typed(fs.readdirSync(H(d), { withFileTypes: true })),
          `readdir withFileTypes ${d}`,
        );
        for (const e of vfs.readdirSync(V(d), { withFileTypes: true }) as fs.Dirent[]) {
          assert.ok(e instanceof fs.Dirent);
          assert.equal(e.parentPath, V(d));
        }

        assert.deepEqual(
          sortedNames(vfs.readdirSync(V(d), { recursive: true }) as string[]),
          recursiveNames(H(d)),
          `readdir recursive ${d}`,
        );
        const deep = (vfs.readdirSync(V(d), { recursive: true, withFileTypes: true }) as fs.Dirent[])
          .map((e) => [path.posix.relative(V(d), e.parentPath), e.name, kindOf(e)].join("|"))
          .sort();
        assert.deepEqual(
          deep,
          recursiveEntries(H(d)).map((x) => x.join("|")),
          `readdir recursive withFileTypes ${d}`,
        );
      }
    });

    it("lists asynchronously too (callback, promises, opendir)", async () => {
      const want = sortedNames(fs.readdirSync(H("a")));
      const viaCallback = await new Promise<string[]>((resolve, reject) =>
        vfs.readdir(V("a"), (err: Error | null, names?: string[]) =>
          err ? reject(err) : resolve(names ?? []),
        ),
      );
      assert.deepEqual(sortedNames(viaCallback), want);
      assert.deepEqual(sortedNames((await vfs.promises.readdir(V("a"))) as string[]), want);
      const names: string[] = [];
      for await (const e of vfs.opendirSync(V("a"))) names.push(e.name);
      assert.deepEqual(names.sort(), want);
    });

    it("answers lstat and stat like node:fs for the fields the type keeps", () => {
      for (const rel of STAT_PATHS) {
        for (const follow of [false, true]) {
          const label = `${follow ? "stat" : "lstat"} ${rel || "(root)"}`;
          let want: fs.BigIntStats;
          try {
            want = follow ? fs.statSync(H(rel), { bigint: true }) : fs.lstatSync(H(rel), { bigint: true });
          } catch (e) {
            const err = caught(() => (follow ? vfs.statSync(V(rel)) : vfs.lstatSync(V(rel))));
            assertSameError(err, e as NodeJS.ErrnoException, label);
            continue;
          }
          const got = follow
            ? vfs.statSync(V(rel), { bigint: true })
            : vfs.lstatSync(V(rel), { bigint: true });
          const num = follow ? vfs.statSync(V(rel)) : vfs.lstatSync(V(rel));
          const wantNum = follow ? fs.statSync(H(rel)) : fs.lstatSync(H(rel));
          assert.ok(num instanceof fs.Stats, label);
          assert.equal(kindOf(got), kindOf(want), `${label}: type`);
          assert.equal(kindOf(num), kindOf(want), `${label}: type`);
          assert.equal(num.isSymbolicLink(), want.isSymbolicLink(), `${label}: isSymbolicLink`);
          assert.equal(got.mode & BigInt(S_IFMT), want.mode & BigInt(S_IFMT), `${label}: type bits`);
          assert.equal(got.dev, BigInt(dev), `${label}: dev`);
          assert.equal(num.dev, dev, `${label}: dev`);
          if (rel === "") {
            // The mount root: its mode and times belong to the folder or container file.
            assert.ok(got.isDirectory());
            if (profile.nlink) assert.equal(got.nlink, want.nlink, `${label}: nlink`);
            continue;
          }
          assert.equal(got.mode & 0o7777n, want.mode & 0o7777n, `${label}: permission bits`);
          assert.equal(num.mode, Number(got.mode), `${label}: number mode`);
          if (!want.isDirectory()) {
            assert.equal(got.size, want.size, `${label}: size`);
            assert.equal(num.size, Number(want.size), `${label}: size`);
          }
          if (want.isFile()) assert.equal(got.nlink, 1n, `${label}: nlink`);
          if (want.isDirectory() && profile.nlink) assert.equal(got.nlink, want.nlink, `${label}: nlink`);
          if (profile.mtime === "ns") {
            assert.equal(got.mtimeNs, want.mtimeNs, `${label}: mtimeNs`);
            assert.equal(got.mtimeMs, want.mtimeMs, `${label}: mtimeMs (bigint)`);
            assert.equal(num.mtimeMs, wantNum.mtimeMs, `${label}: mtimeMs`);
            assert.equal(num.mtime.getTime(), wantNum.mtime.getTime(), `${label}: mtime`);
          } else {
            assert.equal(got.mtimeNs / 1_000_000_000n, want.mtimeNs / 1_000_000_000n, `${label}: mtime (s)`);
            assert.equal(
              Math.floor(num.mtimeMs / 1000),
              Math.floor(wantNum.mtimeMs / 1000),
              `${label}: mtime`,
            );
          }
        }
      }
    });

    it("reads lstat of dangling and looping links but not stat; throwIfNoEntry", () => {
      for (const rel of ["dangling", "loop1", "loop2", "self"]) {
        const st = vfs.lstatSync(V(rel));
        assert.ok(st.isSymbolicLink(), rel);
        assert.equal(st.size, fs.lstatSync(H(rel)).size);
        assert.equal(vfs.existsSync(V(rel)), fs.existsSync(H(rel)), rel);
      }
      assert.equal(vfs.statSync(V("dangling"), { throwIfNoEntry: false }), undefined);
      assert.equal(vfs.statSync(V("hello.txt/x"), { throwIfNoEntry: false }), undefined);
      assert.equal(vfs.existsSync(V("hello.txt")), true);
      assert.equal(vfs.existsSync(V("nope")), false);
    });

    it("reads contents like node:fs (sync, callback, promises, string)", async () => {
      for (const rel of READ_PATHS) {
        const want = fs.readFileSync(H(rel));
        const digest = sha256(want);
        assert.equal(sha256(vfs.readFileSync(V(rel)) as Buffer), digest, `readFileSync ${rel}`);
        const viaCallback = await new Promise<Buffer>((resolve, reject) =>
          vfs.readFile(V(rel), (err: Error | null, data?: Buffer) =>
            err ? reject(err) : resolve(data as Buffer),
          ),
        );
        assert.equal(sha256(viaCallback), digest, `readFile ${rel}`);
        assert.equal(
          sha256((await vfs.promises.readFile(V(rel))) as Buffer),
          digest,
          `promises.readFile ${rel}`,
        );
        if (want.length < 4096) assert.equal(vfs.readFileSync(V(rel), "utf8"), want.toString("utf8"), rel);
      }
      const fh = await vfs.promises.open(V("big/random.bin"));
      try {
        assert.equal(sha256((await fh.readFile()) as Buffer), sha256(byPathData("big/random.bin")));
        assert.equal((await fh.stat()).size, RANDOM_SIZE);
      } finally {
        await fh.close();
      }
    });

    it("reads symlinks and resolves real paths like node:fs", async () => {
      for (const rel of [...SYMLINKS, "link-dir/up-link"]) {
        assert.equal(vfs.readlinkSync(V(rel)), fs.readlinkSync(H(rel)), `readlink ${rel}`);
        assert.deepEqual(vfs.readlinkSync(V(rel), "buffer"), Buffer.from(fs.readlinkSync(H(rel))));
      }
      for (const rel of STAT_PATHS) {
        let want: string;
        try {
          want = hostToV(fs.realpathSync.native(H(rel)));
        } catch (e) {
          assertSameError(
            caught(() => vfs.realpathSync(V(rel))),
            e as NodeJS.ErrnoException,
            `realpath ${rel}`,
          );
          continue;
        }
        // (node's JS fs.realpathSync would first drop "x/.." lexically; realpath(3) and the VFS resolve
        // the link before its "..".)
        assert.equal(vfs.realpathSync(V(rel)), want, `realpath ${rel}`);
        assert.equal(await vfs.promises.realpath(V(rel)), want, `promises.realpath ${rel}`);
      }
    });

    it("reads at positions like pread, and advances the offset without one", () => {
      for (const [rel, size] of [
        ["big/random.bin", RANDOM_SIZE],
        ["big/compressible.txt", COMPRESSIBLE_SIZE],
      ] as const) {
        const fdV = vfs.openSync(V(rel), "r");
        const fdH = fs.openSync(H(rel), "r");
        try {
          const next = prng(size);
          const cases: [number, number][] = [
            [0, 1],
            [size - 1, 10],
            [size, 10],
            [size + 1000, 5],
            [65535, 2],
            [65536 * 3 - 7, 300_000],
          ];
          for (let k = 0; k < 25; k++)
            cases.push([Math.floor(next() * size), 1 + Math.floor(next() * 100_000)]);
          for (const [pos, len] of cases) {
            const bv = Buffer.alloc(len + 8, 0xee);
            const bh = Buffer.alloc(len + 8, 0xee);
            const nv = vfs.readSync(fdV, bv, 4, len, pos);
            const nh = fs.readSync(fdH, bh, 4, len, pos);
            assert.equal(nv, nh, `${rel} pread(${pos}, ${len})`);
            assert.ok(bv.equals(bh), `${rel} pread(${pos}, ${len}) bytes`);
          }
          // Sequential reads continue from the offset, which positioned reads did not move.
          for (const len of [1000, 70_000, 3, size]) {
            const bv = Buffer.alloc(len);
            const bh = Buffer.alloc(len);
            const nv = vfs.readSync(fdV, bv, 0, len, null);
            const nh = fs.readSync(fdH, bh, 0, len, null);
            assert.equal(nv, nh);
            assert.ok(bv.subarray(0, nv).equals(bh.subarray(0, nh)));
          }
          assert.equal(vfs.readSync(fdV, Buffer.alloc(10), 0, 10, null), 0, "EOF");
        } finally {
          vfs.closeSync(fdV);
          fs.closeSync(fdH);
        }
      }
    });

    it("streams ranges like fs.createReadStream (start/end inclusive)", async () => {
      const ranges: [number | undefined, number | undefined, number | undefined][] = [
        [undefined, undefined, undefined],
        [0, 0, undefined],
        [0, 99, undefined],
        [100, 65_636, undefined],
        [RANDOM_SIZE - 10, undefined, undefined],
        [1000, RANDOM_SIZE + 5, 4096],
        [undefined, 5000, 1000],
        [RANDOM_SIZE + 3, undefined, undefined],
      ];
      for (const [start, end, highWaterMark] of ranges) {
        const opts = { start, end, highWaterMark };
        const want = await collect(fs.createReadStream(H("big/random.bin"), opts));
        const got = await collect(vfs.createReadStream(V("big/random.bin"), opts));
        assert.equal(got.length, want.length, `stream ${start}..${end}`);
        assert.equal(sha256(got), sha256(want), `stream ${start}..${end}`);
      }
      const text = await collect(vfs.createReadStream(V("link-file"), { encoding: "latin1" }));
      assert.equal(text.toString(), "hello world\n");
      const err = await rejected(() => collect(vfs.createReadStream(V("nope"))));
      assertSameError(
        err,
        await rejected(() => collect(fs.createReadStream(H("nope")))),
        "stream of a missing file",
      );
    });

    it("fails with node's errors: missing, file as directory, directory as file, links, loops", async () => {
      const api = vfsApi(vfs);
      for (const [label, code, run, shownPath] of ERROR_CASES) {
        const want = caught(() => run(HOST_API, H));
        assert.equal(want.code, code, `node itself: ${label}`);
        assertSameError(
          caught(() => run(api, V)),
          want,
          label,
          shownPath,
        );
      }
      // The async forms reject (or call back) with the same errors.
      const want = caught(() => fs.statSync(H("nope")));
      assertSameError(await rejected(() => vfs.promises.stat(V("nope"))), want, "promises.stat");
      const viaCallback = await new Promise<NodeJS.ErrnoException>((resolve) =>
        vfs.stat(V("nope"), (err: NodeJS.ErrnoException | null) => resolve(err as NodeJS.ErrnoException)),
      );
      assertSameError(viaCallback, want, "stat callback");
      assertSameError(
        await rejected(() => vfs.promises.readFile(V("a"))),
        await rejected(() => fs.promises.readFile(H("a"))),
        "promises.readFile of a directory",
      );
      assertSameError(
        await rejected(() => vfs.promises.readlink(V("hello.txt"))),
        await rejected(() => fs.promises.readlink(H("hello.txt"))),
        "promises.readlink of a file",
      );
    });

    if (profile.readonly) {
      it("refuses every write with EROFS and changes nothing", async () => {
        const writes: [string, () => unknown][] = [
          ["writeFileSync (new)", () => vfs.writeFileSync(V("new.txt"), "x")],
          ["writeFileSync (existing)", () => vfs.writeFileSync(V("hello.txt"), "x")],
          ["appendFileSync", () => vfs.appendFileSync(V("hello.txt"), "x")],
          ["openSync r+", () => vfs.openSync(V("hello.txt"), "r+")],
          ["openSync wx", () => vfs.openSync(V("a/new"), "wx")],
          ["truncateSync", () => vfs.truncateSync(V("hello.txt"), 0)],
          ["copyFileSync", () => vfs.copyFileSync(V("hello.txt"), V("copy.txt"))],
          ["mkdirSync", () => vfs.mkdirSync(V("newdir"))],
          ["mkdirSync recursive", () => vfs.mkdirSync(V("a/new/deeper"), { recursive: true })],
          ["unlinkSync (file)", () => vfs.unlinkSync(V("hello.txt"))],
          ["unlinkSync (symlink)", () => vfs.unlinkSync(V("dangling"))],
          ["rmdirSync", () => vfs.rmdirSync(V("empty-dir"))],
          ["renameSync", () => vfs.renameSync(V("hello.txt"), V("renamed.txt"))],
          ["renameSync (dir)", () => vfs.renameSync(V("a"), V("empty-dir/a"))],
          ["symlinkSync", () => vfs.symlinkSync("hello.txt", V("newlink"))],
          ["chmodSync", () => vfs.chmodSync(V("hello.txt"), 0o600)],
          ["chmodSync (dir)", () => vfs.chmodSync(V("a"), 0o700)],
          ["utimesSync", () => vfs.utimesSync(V("hello.txt"), 1, 1)],
          ["lutimesSync", () => vfs.lutimesSync(V("link-file"), 1, 1)],
          ["rmSync (file)", () => vfs.rmSync(V("hello.txt"))],
          ["rmSync (tree)", () => vfs.rmSync(V("a"), { recursive: true })],
          ["rmSync force", () => vfs.rmSync(V("empty.txt"), { force: true })],
        ];
        for (const [label, run] of writes) assertErrorShape(caught(run), "EROFS", label);
        const fd = vfs.openSync(V("hello.txt"), "r");
        try {
          const e = caught(() => vfs.writeSync(fd, "x"));
          assert.equal(e.code, "EBADF", "a descriptor opened for reading is not writable");
          assertErrorShape(
            caught(() => vfs.fchmodSync(fd, 0o600)),
            "EROFS",
            "fchmodSync",
          );
          assertErrorShape(
            caught(() => vfs.futimesSync(fd, 1, 1)),
            "EROFS",
            "futimesSync",
          );
        } finally {
          vfs.closeSync(fd);
        }
        assertErrorShape(
          await rejected(() => vfs.promises.writeFile(V("new.txt"), "x")),
          "EROFS",
          "promises.writeFile",
        );
        assertErrorShape(await rejected(() => vfs.promises.mkdir(V("newdir"))), "EROFS", "promises.mkdir");
        const viaCallback = await new Promise<NodeJS.ErrnoException>((resolve) =>
          vfs.unlink(V("hello.txt"), (err: NodeJS.ErrnoException | null) =>
            resolve(err as NodeJS.ErrnoException),
          ),
        );
        assertErrorShape(viaCallback, "EROFS", "unlink callback");
        assertErrorShape(
          caught(() => vfs.accessSync(V("hello.txt"), fs.constants.W_OK)),
          "EROFS",
          "access W_OK",
        );

        // Nothing changed, in the VFS or on disk.
        assert.deepEqual(sortedNames(vfs.readdirSync(MNT) as string[]), sortedNames(fs.readdirSync(REF)));
        assert.deepEqual(
          sortedNames(vfs.readdirSync(MNT, { recursive: true }) as string[]),
          recursiveNames(REF),
        );
        assert.equal(vfs.readFileSync(V("hello.txt"), "utf8"), "hello world\n");
        assert.equal(vfs.statSync(V("hello.txt")).mode & 0o7777, 0o644);
        assert.equal(fs.readFileSync(H("hello.txt"), "utf8"), "hello world\n");
      });
    } else {
      it("fails writes with node's errors (EEXIST, ENOTEMPTY, EISDIR, ENOENT, ENOTDIR)", () => {
        const cases: [string, string, (at: Where, f: typeof fs | Vfs) => unknown][] = [
          ["mkdir of an existing directory", "EEXIST", (at, f) => f.mkdirSync(at("a"))],
          ["mkdir over a file", "EEXIST", (at, f) => f.mkdirSync(at("hello.txt"))],
          ["mkdir over a dangling symlink", "EEXIST", (at, f) => f.mkdirSync(at("dangling"))],
          ["mkdir below a missing directory", "ENOENT", (at, f) => f.mkdirSync(at("nope/x"))],
          ["mkdir below a file", "ENOTDIR", (at, f) => f.mkdirSync(at("hello.txt/x"))],
          ["symlink over an existing name", "EEXIST", (at, f) => f.symlinkSync("x", at("hello.txt"))],
          ["symlink into a missing directory", "ENOENT", (at, f) => f.symlinkSync("x", at("nope/l"))],
          ["symlink below a file", "ENOTDIR", (at, f) => f.symlinkSync("x", at("hello.txt/l"))],
          ["rmdir of a non-empty directory", "ENOTEMPTY", (at, f) => f.rmdirSync(at("a"))],
          ["rmdir of a file", "ENOTDIR", (at, f) => f.rmdirSync(at("hello.txt"))],
          ["rmdir of a missing path", "ENOENT", (at, f) => f.rmdirSync(at("nope"))],
          ["unlink of a directory", "EISDIR", (at, f) => f.unlinkSync(at("a"))],
          ["unlink of a missing path", "ENOENT", (at, f) => f.unlinkSync(at("nope"))],
          ["unlink of file/x", "ENOTDIR", (at, f) => f.unlinkSync(at("hello.txt/x"))],
          ["rename of a missing path", "ENOENT", (at, f) => f.renameSync(at("nope"), at("x"))],
          [
            "rename into a missing directory",
            "ENOENT",
            (at, f) => f.renameSync(at("hello.txt"), at("nope/x")),
          ],
          ["rename from below a file", "ENOTDIR", (at, f) => f.renameSync(at("hello.txt/x"), at("y"))],
          ["rename a directory over a file", "ENOTDIR", (at, f) => f.renameSync(at("a"), at("hello.txt"))],
          [
            "rename a file over a directory",
            "EISDIR",
            (at, f) => f.renameSync(at("hello.txt"), at("empty-dir")),
          ],
          [
            "rename over a non-empty directory",
            "ENOTEMPTY",
            (at, f) => f.renameSync(at("empty-dir"), at("a")),
          ],
          ["rename a directory into itself", "EINVAL", (at, f) => f.renameSync(at("a"), at("a/b/inside"))],
          ["writeFile of a directory", "EISDIR", (at, f) => f.writeFileSync(at("a"), "x")],
          ["writeFile below a file", "ENOTDIR", (at, f) => f.writeFileSync(at("hello.txt/x"), "x")],
          [
            "writeFile with wx on an existing file",
            "EEXIST",
            (at, f) => f.writeFileSync(at("hello.txt"), "x", { flag: "wx" }),
          ],
          ["open of a loop for writing", "ELOOP", (at, f) => f.openSync(at("loop1"), "w")],
          ["truncate of a directory", "EISDIR", (at, f) => f.truncateSync(at("a"))],
        ];
        for (const [label, code, run] of cases) {
          const want = caught(() => run(H, fs));
          assert.equal(want.code, code, `node itself: ${label}`);
          assertSameError(
            caught(() => run(V, vfs)),
            want,
            label,
          );
        }
        // The failed calls changed nothing.
        assert.deepEqual(
          sortedNames(vfs.readdirSync(MNT, { recursive: true }) as string[]),
          recursiveNames(REF),
        );
      });

      it("applies writes, visible through the VFS (and on disk for host)", async () => {
        const disk = profile.disk;
        const onDisk = (rel: string): string => path.join(disk as string, rel);

        vfs.writeFileSync(V("new.txt"), "new data");
        assert.equal(vfs.readFileSync(V("new.txt"), "utf8"), "new data");
        vfs.appendFileSync(V("new.txt"), " + more");
        assert.equal(vfs.readFileSync(V("new.txt"), "utf8"), "new data + more");
        assert.equal(vfs.statSync(V("new.txt")).size, 15);
        if (disk) assert.equal(fs.readFileSync(onDisk("new.txt"), "utf8"), "new data + more");

        vfs.writeFileSync(V("hello.txt"), "overwritten");
        assert.equal(vfs.readFileSync(V("link-file"), "utf8"), "overwritten");
        if (disk) assert.equal(fs.readFileSync(onDisk("hello.txt"), "utf8"), "overwritten");

        assert.equal(vfs.mkdirSync(V("newdir")), undefined);
        assert.equal(vfs.mkdirSync(V("newdir/x/y"), { recursive: true }), V("newdir/x"));
        assert.ok(vfs.statSync(V("newdir/x/y")).isDirectory());
        if (disk) assert.ok(fs.statSync(onDisk("newdir/x/y")).isDirectory());

        vfs.symlinkSync("../new.txt", V("newdir/ln"));
        assert.equal(vfs.readlinkSync(V("newdir/ln")), "../new.txt");
        assert.equal(vfs.readFileSync(V("newdir/ln"), "utf8"), "new data + more");
        if (disk) assert.equal(fs.readlinkSync(onDisk("newdir/ln")), "../new.txt");

        vfs.renameSync(V("new.txt"), V("newdir/moved.txt"));
        assert.equal(vfs.existsSync(V("new.txt")), false);
        assert.equal(vfs.readFileSync(V("newdir/moved.txt"), "utf8"), "new data + more");
        assert.equal(caught(() => vfs.statSync(V("newdir/ln"))).code, "ENOENT", "the link now dangles");
        if (disk) assert.equal(fs.existsSync(onDisk("new.txt")), false);

        vfs.chmodSync(V("newdir/moved.txt"), 0o640);
        assert.equal(vfs.statSync(V("newdir/moved.txt")).mode, fs.constants.S_IFREG | 0o640);
        if (disk) assert.equal(fs.statSync(onDisk("newdir/moved.txt")).mode & 0o7777, 0o640);

        vfs.utimesSync(V("newdir/moved.txt"), 1_600_000_000, 1_600_000_000.5);
        assert.equal(vfs.statSync(V("newdir/moved.txt")).mtimeMs, 1_600_000_000_500);
        if (disk) assert.equal(fs.statSync(onDisk("newdir/moved.txt")).mtimeMs, 1_600_000_000_500);

        vfs.lutimesSync(V("newdir/ln"), 1_500_000_000, 1_500_000_000);
        assert.equal(vfs.lstatSync(V("newdir/ln")).mtimeMs, 1_500_000_000_000);

        vfs.truncateSync(V("newdir/moved.txt"), 3);
        assert.equal(vfs.readFileSync(V("newdir/moved.txt"), "utf8"), "new");

        vfs.copyFileSync(V("newdir/moved.txt"), V("newdir/copy.txt"));
        assert.equal(vfs.readFileSync(V("newdir/copy.txt"), "utf8"), "new");
        assert.equal(vfs.statSync(V("newdir/copy.txt")).mode & 0o777, 0o640);

        await vfs.promises.writeFile(V("newdir/async.txt"), "async");
        assert.equal(await vfs.promises.readFile(V("newdir/async.txt"), "utf8"), "async");

        vfs.unlinkSync(V("newdir/ln"));
        assert.equal(vfs.lstatSync(V("newdir/ln"), { throwIfNoEntry: false }), undefined);
        vfs.rmdirSync(V("newdir/x/y"));
        assert.deepEqual(vfs.readdirSync(V("newdir/x")), []);

        if (disk) {
          assert.deepEqual(
            sortedNames(vfs.readdirSync(MNT, { recursive: true }) as string[]),
            recursiveNames(disk),
          );
        }
        vfs.rmSync(V("newdir"), { recursive: true });
        assert.equal(vfs.existsSync(V("newdir")), false);
        if (disk) assert.equal(fs.existsSync(onDisk("newdir")), false);
        vfs.rmSync(V("newdir"), { recursive: true, force: true });

        // What is left is the original tree with one file rewritten.
        assert.deepEqual(
          sortedNames(vfs.readdirSync(MNT, { recursive: true }) as string[]),
          recursiveNames(REF),
        );
      });
    }

    it("unmounts", async () => {
      await vfs.unmount(MNT);
      assert.deepEqual(vfs.mounts(), []);
      assert.equal(caught(() => vfs.statSync(V("hello.txt"))).code, "ENOENT");
    });
  });
}

function byPathData(rel: string): Buffer {
  const e = byPath.get(rel);
  assert.ok(e && e.kind === "file");
  return e.data;
}

// ───────────────────────────────────────────────────────────────── crossing mounts

describe("conformance: crossing mounts", () => {
  // /z is the zip of the tree, or (without the zip binary) the bfc of the same tree.
  const zType = ZIP ? "zip" : "bfc";
  const crossDir = path.join(BASE, "cross");
  const crossBfc = path.join(BASE, "cross.bfc");
  let vfs: Vfs;

  it("sets up memory at /, a bfc at /a/mnt and a zip at /z", async () => {
    writeTree(crossDir, {
      "inner.txt": "inside the bfc\n",
      "sub/": "",
      "sub/leaf.txt": "leaf\n",
      "to-zip": { link: "/z/hello.txt" },
      "to-zip-dir": { link: "/z/a/b" },
      up: { link: "../x" },
      "up-abs": { link: "/a/x" },
    });
    await buildBfc(crossDir, crossBfc);
    vfs = createVfs();
    await vfs.mount("memory", "/");
    vfs.mkdirSync("/a/mnt", { recursive: true });
    vfs.writeFileSync("/a/x", "memory x\n");
    vfs.symlinkSync("/a/mnt/inner.txt", "/to-bfc");
    vfs.symlinkSync("mnt/sub", "/a/rel-into-bfc");
    vfs.symlinkSync("/a/mnt/to-zip", "/chain");
    await vfs.mount("bfc", "/a/mnt", { path: crossBfc });
    await vfs.mount(zType, "/z", { path: ZIP ? ZIP_FILE : BFC_FILE });
    assert.deepEqual(
      vfs.mounts().map((m) => [m.target, m.type, m.readonly]),
      [
        ["/", "memory", false],
        ["/a/mnt", "bfc", true],
        ["/z", zType, true],
      ],
    );
  });

  it("resolves '..' out of a mount to the directory holding the mount point", () => {
    assert.equal(vfs.readFileSync("/a/mnt/../x", "utf8"), "memory x\n");
    assert.equal(vfs.realpathSync("/a/mnt/../x"), "/a/x");
    assert.equal(vfs.realpathSync("/a/mnt/sub/../.."), "/a");
    assert.equal(vfs.readFileSync("/a/mnt/sub/../../x", "utf8"), "memory x\n");
    assert.equal(vfs.statSync("/a/mnt/../x").dev, vfs.statSync("/a/x").dev);
    assert.deepEqual(sortedNames(vfs.readdirSync("/z/..") as string[]), ["a", "chain", "to-bfc", "z"]);
    // A relative link inside the bfc climbing out of it lands in memory.
    assert.equal(vfs.readFileSync("/a/mnt/up", "utf8"), "memory x\n");
    assert.equal(vfs.realpathSync("/a/mnt/up"), "/a/x");
  });

  it("follows symlinks from one mount into another (absolute targets from the VFS root)", () => {
    assert.equal(vfs.readFileSync("/to-bfc", "utf8"), "inside the bfc\n");
    assert.equal(vfs.realpathSync("/to-bfc"), "/a/mnt/inner.txt");
    assert.deepEqual(vfs.readdirSync("/a/rel-into-bfc"), ["leaf.txt"]);
    assert.equal(vfs.realpathSync("/a/rel-into-bfc/leaf.txt"), "/a/mnt/sub/leaf.txt");

    assert.equal(vfs.readlinkSync("/a/mnt/to-zip"), "/z/hello.txt");
    assert.equal(vfs.readFileSync("/a/mnt/to-zip", "utf8"), "hello world\n");
    assert.equal(vfs.realpathSync("/a/mnt/to-zip"), "/z/hello.txt");
    assert.equal(vfs.statSync("/a/mnt/to-zip").dev, vfs.statSync("/z").dev);
    assert.equal(vfs.readFileSync("/a/mnt/up-abs", "utf8"), "memory x\n");
    // memory → bfc → zip, then a relative zip link with "..": /z/a/b/up-link → /z/docs/readme.md.
    assert.equal(vfs.readFileSync("/chain", "utf8"), "hello world\n");
    assert.equal(vfs.realpathSync("/chain"), "/z/hello.txt");
    assert.equal(vfs.realpathSync("/a/mnt/to-zip-dir/up-link"), "/z/docs/readme.md");
    assert.equal(vfs.readFileSync("/a/mnt/to-zip-dir/up-link", "utf8"), "# readme\n\nSome text.\n");
    assert.equal(vfs.realpathSync("/a/mnt/to-zip-dir/.."), "/z/a");
  });

  it("lists mount points in their parent directories", () => {
    assert.deepEqual(sortedNames(vfs.readdirSync("/a") as string[]), ["mnt", "rel-into-bfc", "x"]);
    const mnt = (vfs.readdirSync("/a", { withFileTypes: true }) as fs.Dirent[]).find((e) => e.name === "mnt");
    assert.ok(mnt?.isDirectory());
    assert.ok((vfs.readdirSync("/", { recursive: true }) as string[]).includes("a/mnt/sub/leaf.txt"));
    assert.ok((vfs.readdirSync("/", { recursive: true }) as string[]).includes("z/a/b/c/deep.txt"));
  });

  it("gives every mount its own dev", () => {
    const devs = new Set(
      ["/", "/a/x", "/a/mnt", "/a/mnt/inner.txt", "/z", "/z/hello.txt"].map((p) => vfs.statSync(p).dev),
    );
    assert.equal(devs.size, 3);
    assert.equal(vfs.statSync("/a/mnt").dev, vfs.statSync("/a/mnt/inner.txt").dev);
    assert.notEqual(vfs.statSync("/a").dev, vfs.statSync("/a/mnt").dev);
    assert.deepEqual(
      vfs.mounts().map((m) => m.dev),
      [vfs.statSync("/").dev, vfs.statSync("/a/mnt").dev, vfs.statSync("/z").dev],
    );
  });

  it("refuses renames across mounts (EXDEV) and removing mount points (EBUSY)", async () => {
    const exdev = caught(() => vfs.renameSync("/a/x", "/z/x"));
    assertErrorShape(exdev, "EXDEV", "rename into a zip");
    assert.equal(exdev.message, "EXDEV: cross-device link not permitted, rename '/a/x' -> '/z/x'");
    await vfs.mount("memory", "/m2");
    assertErrorShape(
      caught(() => vfs.renameSync("/a/x", "/m2/x")),
      "EXDEV",
      "rename between memory mounts",
    );
    assertErrorShape(
      caught(() => vfs.renameSync("/a/mnt/inner.txt", "/a/y")),
      "EXDEV",
      "rename out of the bfc",
    );
    assert.equal(vfs.readFileSync("/a/x", "utf8"), "memory x\n");
    assertErrorShape(
      caught(() => vfs.rmdirSync("/m2")),
      "EBUSY",
      "rmdir of a mount point",
    );
    assertErrorShape(
      caught(() => vfs.renameSync("/m2", "/m3")),
      "EBUSY",
      "rename of a mount point",
    );
    await vfs.unmount("/m2");
  });

  it("refuses a second mount on the same target and an unmount while a descriptor is open (EBUSY)", async () => {
    assert.equal((await rejected(() => vfs.mount("memory", "/a/mnt"))).code, "EBUSY");
    assert.equal((await rejected(() => vfs.mount("bfc", "/z/", { path: crossBfc }))).code, "EBUSY");
    assert.equal(caught(() => vfs.mountSync("memory", "/a/mnt")).code, "EBUSY");
    const fd = vfs.openSync("/z/hello.txt", "r");
    const busy = await rejected(() => vfs.unmount("/z"));
    assertErrorShape(busy, "EBUSY", "unmount with an open descriptor");
    assert.equal(vfs.readSync(fd, Buffer.alloc(5), 0, 5, 0), 5, "the descriptor still works");
    vfs.closeSync(fd);
    await vfs.unmount("/z");
    assert.equal(caught(() => vfs.statSync("/z/hello.txt")).code, "ENOENT");
    assert.equal(caught(() => vfs.readFileSync("/chain")).code, "ENOENT", "the chain now dangles");
    assert.equal(vfs.mounts().length, 2);
    await vfs.unmountAll();
    assert.deepEqual(vfs.mounts(), []);
  });

  it("lists mount points at / when nothing is mounted there (read-only)", async () => {
    const v = createVfs();
    await v.mount("memory", "/p/q");
    await v.mount("bfc", "/r", { path: crossBfc });
    assert.deepEqual(v.readdirSync("/"), ["p", "r"]);
    assert.deepEqual(v.readdirSync("/p"), ["q"]);
    assert.ok(v.statSync("/p").isDirectory());
    assert.equal(v.readFileSync("/r/inner.txt", "utf8"), "inside the bfc\n");
    v.writeFileSync("/p/q/f", "writable below the mount point");
    assert.equal(v.readFileSync("/p/q/../q/f", "utf8"), "writable below the mount point");
    assertErrorShape(
      caught(() => v.writeFileSync("/p/f", "x")),
      "EROFS",
      "write in a synthetic directory",
    );
    assertErrorShape(
      caught(() => v.mkdirSync("/new")),
      "EROFS",
      "mkdir at the empty root",
    );
    assert.equal(caught(() => v.statSync("/nope")).code, "ENOENT");
    await v.unmountAll();
    assert.deepEqual(v.readdirSync("/"), []);
  });
});
