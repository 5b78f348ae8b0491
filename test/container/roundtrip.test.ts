/**
 * Writer → Reader → verify → extract round trips over random trees (fast-check, seeded): random
 * names (multi-byte, astral, long, odd characters), sizes around the compression threshold and a
 * few past the 4 MiB streaming limit, every compression mode and level, key and password
 * encryption, and every source kind (buffer, path, Readable, async generator).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { describe, it } from "node:test";
import fc from "fast-check";
import { referenceNormalize } from "../../src/format/path.ts";
import { extract, Reader, verify, Writer, type WriterOptions } from "../../src/index.ts";
import { type ContentKind, componentArb, content, Prng, storedIndexPaths } from "../craft.ts";
import { tempDir } from "../helpers.ts";

const MiB = 1024 * 1024;
const BIG = 4 * MiB + 4097;
const IS_ROOT = process.getuid?.() === 0;
/**
 * Encrypted files past 4 MiB written through the streaming path cannot be read back (see the
 * todo test in writer.test.ts). While that bug stands, encrypted trees keep their big file at
 * exactly 4 MiB (the whole-file path); set this to false once it is fixed.
 */
const STREAMING_ENCRYPTION_BUG = false;

type Source = "buffer" | "path" | "readable" | "generator";

interface LeafSpec {
  leaf: "file" | "symlink" | "dir";
  size: number;
  kind: ContentKind;
  seed: number;
  perm: number;
  mtimeNs: bigint;
  source: Source;
  /** For path sources: take mode and mtime from the file on disk instead of passing them. */
  fromStat: boolean;
  target: string;
  explicitDir: boolean;
  rank: number;
}

interface Expected {
  path: string;
  type: "file" | "directory" | "symlink";
  perm: number;
  mtimeNs: bigint;
  data?: Buffer;
  target?: string;
  explicit: boolean;
}

const longComponent = fc
  .tuple(fc.integer({ min: 100, max: 230 }), componentArb(3))
  .map(([n, tail]) => "L".repeat(n) + tail)
  .filter((s) => Buffer.byteLength(s) <= 250);

const treePathArb = fc
  .array(fc.oneof({ weight: 12, arbitrary: componentArb(10) }, { weight: 1, arbitrary: longComponent }), {
    minLength: 1,
    maxLength: 3,
  })
  .map((cs) => cs.join("/"));

const sizeArb = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(0, 1, 63, 64, 65, 1000, 4096, 5000) },
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 70000 }) },
  { weight: 2, arbitrary: fc.constant(BIG) },
);

const targetArb = fc
  .string({ unit: "binary", minLength: 1, maxLength: 40 })
  .filter((s) => !s.includes("\0") && Buffer.from(s).toString() === s);

const leafArb: fc.Arbitrary<LeafSpec> = fc.record({
  leaf: fc.constantFrom("file", "file", "file", "file", "symlink", "dir") as fc.Arbitrary<LeafSpec["leaf"]>,
  size: sizeArb,
  kind: fc.constantFrom("random", "text", "zeros") as fc.Arbitrary<ContentKind>,
  seed: fc.nat(),
  perm: fc.nat({ max: 0o7777 }),
  mtimeNs: fc.oneof(
    fc.bigInt({ min: 0n, max: 4_000_000_000_000_000_000n }),
    fc.integer({ min: 0, max: 4_000_000_000 }).map((s) => BigInt(s) * 1_000_000_000n),
  ),
  source: fc.constantFrom("buffer", "path", "readable", "generator") as fc.Arbitrary<Source>,
  fromStat: fc.boolean(),
  target: targetArb,
  explicitDir: fc.boolean(),
  rank: fc.nat(),
});

const optionsArb = fc.record({
  compression: fc.constantFrom("none", "zstd", "auto") as fc.Arbitrary<"none" | "zstd" | "auto">,
  level: fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 1, max: 3 }) },
    { weight: 2, arbitrary: fc.integer({ min: 4, max: 22 }) },
  ),
  threshold: fc.option(fc.constantFrom(0, 1, 64, 100, 4096), { nil: undefined }),
  crypt: fc.constantFrom("none", "none", "key", "key", "key", "password") as fc.Arbitrary<
    "none" | "key" | "password"
  >,
  workers: fc.constantFrom(1, 2, undefined),
});

/** Paths (unique) and one spec per path; prefixes of other paths become directories. */
const treeArb = fc
  .uniqueArray(treePathArb, { minLength: 1, maxLength: 10 })
  .chain((paths) =>
    fc.tuple(fc.constant(paths), fc.array(leafArb, { minLength: paths.length, maxLength: paths.length })),
  );

function buildModel(
  paths: string[],
  specs: LeafSpec[],
  encrypted: boolean,
): { entries: Expected[]; implicit: Set<string> } {
  const all = new Set<string>();
  for (const p of paths) {
    const parts = p.split("/");
    for (let i = 1; i <= parts.length; i++) all.add(parts.slice(0, i).join("/"));
  }
  const isParent = new Set<string>();
  for (const p of all) {
    const i = p.lastIndexOf("/");
    if (i > 0) isParent.add(p.slice(0, i));
  }
  const specOf = new Map(paths.map((p, i) => [p, specs[i]]));
  const entries: Expected[] = [];
  const implicit = new Set<string>();
  let bigSeen = false;
  for (const p of all) {
    const s = specOf.get(p) ?? specs[Buffer.byteLength(p) % specs.length];
    if (isParent.has(p)) {
      if (specOf.has(p) || s.explicitDir) {
        entries.push({
          path: p,
          type: "directory",
          perm: s.perm | 0o700,
          mtimeNs: s.mtimeNs,
          explicit: true,
        });
      } else implicit.add(p);
      continue;
    }
    if (!specOf.has(p)) continue;
    if (s.leaf === "dir") {
      entries.push({ path: p, type: "directory", perm: s.perm | 0o700, mtimeNs: s.mtimeNs, explicit: true });
    } else if (s.leaf === "symlink") {
      entries.push({
        path: p,
        type: "symlink",
        perm: 0o777,
        mtimeNs: s.mtimeNs,
        target: s.target,
        explicit: true,
      });
    } else {
      // At most one file past the streaming limit per tree keeps the run time bounded.
      let size = s.size;
      if (size === BIG) {
        if (bigSeen) size = 4096;
        else if (encrypted && STREAMING_ENCRYPTION_BUG) size = 4 * MiB;
        bigSeen = true;
      }
      entries.push({
        path: p,
        type: "file",
        perm: s.perm | 0o600,
        mtimeNs: s.mtimeNs,
        data: content(s.kind, size, s.seed),
        explicit: true,
      });
    }
  }
  return { entries, implicit };
}

function chunks(data: Buffer, seed: number): Buffer[] {
  const r = new Prng(seed);
  const out: Buffer[] = [];
  for (let p = 0; p < data.length; ) {
    const n = Math.min(data.length - p, r.pick([1, 100, 4096, 65536, MiB, 3 * MiB]));
    out.push(data.subarray(p, p + n));
    p += n;
  }
  return out;
}

async function* generate(parts: Buffer[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield new Uint8Array(p);
}

function sortBytes(names: Iterable<string>): string[] {
  return [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

function mtimeClose(actual: bigint, expected: bigint, what: string): void {
  // Node sets file times from a double in seconds (sub-microsecond precision is not available).
  const d = actual > expected ? actual - expected : expected - actual;
  assert.ok(d < 1000n, `${what}: mtime ${actual} vs stored ${expected}`);
}

const KEY = Buffer.alloc(32, 0x5c);
const PASSWORD = "pässwörd \u{1F511}";

describe("writer/reader round trip over random trees", () => {
  const root = tempDir("bfc-roundtrip-");
  let run = 0;
  let bigFiles = 0;
  let streamedCompressed = 0;
  let bigEncrypted = 0;
  const modes: Record<string, number> = {};

  it("every entry, byte, listing, verify and extraction matches (property)", {
    timeout: 120_000,
  }, async (t) => {
    await fc.assert(
      fc.asyncProperty(treeArb, optionsArb, async ([paths, specs], o) => {
        const dir = path.join(root, String(run++));
        fs.mkdirSync(dir);
        const mode = `${o.compression}/${o.crypt}`;
        modes[mode] = (modes[mode] ?? 0) + 1;
        const { entries, implicit } = buildModel(paths, specs, o.crypt !== "none");
        const specOf = new Map(paths.map((p, i) => [p, specs[i]]));
        const hasBig = entries.some((e) => (e.data?.length ?? 0) > 4 * MiB);
        const warned: string[] = [];
        const creds = o.crypt === "key" ? { key: KEY } : o.crypt === "password" ? { password: PASSWORD } : {};
        const options: WriterOptions = {
          compression: o.compression,
          level: hasBig ? Math.min(o.level, 3) : o.level,
          threshold: o.threshold,
          workers: o.workers,
          onWarning: (_m, p) => warned.push(p ?? ""),
          ...creds,
        };
        const file = path.join(dir, "t.bfc");
        const w = await Writer.create(file, options);
        const srcDir = path.join(dir, "src");
        fs.mkdirSync(srcDir);
        const order = [...entries].sort(
          (a, b) => (specOf.get(a.path)?.rank ?? 0) - (specOf.get(b.path)?.rank ?? 0),
        );
        let n = 0;
        try {
          for (const e of order) {
            const s = specOf.get(e.path) ?? specs[0];
            const meta = { mode: e.perm, mtime: e.mtimeNs };
            if (e.type === "directory") await w.addDirectory(e.path, meta);
            else if (e.type === "symlink") await w.addSymlink(e.path, e.target!, { mtime: e.mtimeNs });
            else {
              const data = e.data!;
              let source = s.source;
              if (data.length > 4 * MiB && source === "buffer") source = "path";
              if (data.length > 4 * MiB) {
                bigFiles++;
                if (o.crypt !== "none") bigEncrypted++;
              }
              if (source === "path") {
                const f = path.join(srcDir, String(n++));
                fs.writeFileSync(f, data);
                if (s.fromStat) {
                  fs.chmodSync(f, e.perm);
                  const st = fs.statSync(f, { bigint: true });
                  e.perm = Number(st.mode) & 0o7777;
                  e.mtimeNs = st.mtimeNs;
                  await w.addFile(e.path, f);
                } else await w.addFile(e.path, f, meta);
              } else if (source === "buffer") await w.addFile(e.path, data, meta);
              else if (source === "readable")
                await w.addFile(e.path, Readable.from(chunks(data, s.seed)), meta);
              else await w.addFile(e.path, generate(chunks(data, s.seed)), meta);
            }
          }
          const summary = await w.finish();
          assert.equal(summary.entries, entries.length);
          assert.equal(summary.files, entries.filter((e) => e.type === "file").length);
          assert.equal(summary.directories, entries.filter((e) => e.type === "directory").length);
          assert.equal(summary.symlinks, entries.filter((e) => e.type === "symlink").length);
        } catch (e) {
          await w.abort();
          throw e;
        }
        assert.deepEqual(fs.readdirSync(dir).sort(), ["src", "t.bfc"], "no temporary file is left");

        // Warnings name exactly the paths the reference could not look up.
        assert.deepEqual(
          sortBytes(warned),
          sortBytes(entries.filter((e) => referenceNormalize(e.path) !== e.path).map((e) => e.path)),
        );

        // The raw index is stored in byte-wise order.
        const raw = fs.readFileSync(file);
        const stored = storedIndexPaths(raw);
        assert.deepEqual(
          stored.map((b) => b.toString()),
          sortBytes(entries.map((e) => e.path)),
        );

        const r = await Reader.open(file, creds);
        try {
          const features = r.header.features;
          assert.equal((features & 1) !== 0, o.compression !== "none");
          assert.equal((features & 2) !== 0, o.crypt !== "none");
          const files = entries.filter((e) => e.type === "file");
          if (o.crypt !== "none" && files.length) assert.equal(r.encryptionMode, o.crypt);
          if (o.crypt === "none") assert.equal(r.encryptionMode, "none");

          const listed = [...r.entries()];
          assert.deepEqual(
            listed.map((e) => e.path),
            sortBytes(entries.map((e) => e.path)),
          );
          const byPath = new Map(entries.map((e) => [e.path, e]));
          const rng = new Prng(run * 7919);
          for (const got of listed) {
            const want = byPath.get(got.path)!;
            assert.equal(got.type, want.type, got.path);
            const typeBits =
              want.type === "file" ? 0o100000 : want.type === "directory" ? 0o040000 : 0o120000;
            assert.equal(got.mode, typeBits | want.perm, got.path);
            assert.equal(got.mtimeNs, want.mtimeNs, got.path);
            if (want.type === "directory") {
              assert.equal(got.size, 0);
              continue;
            }
            if (want.type === "symlink") {
              assert.equal(got.size, Buffer.byteLength(want.target!));
              assert.equal(got.encrypted, false, "symlink targets are stored in clear");
              assert.equal(await r.readlink(got.path), want.target);
              assert.equal(r.readlinkSync(got.path), want.target);
              continue;
            }
            const data = want.data!;
            assert.equal(got.size, data.length, got.path);
            assert.equal(got.encrypted, o.crypt !== "none");
            const threshold = o.threshold ?? 64;
            if (o.compression === "none" || data.length < threshold || data.length === 0) {
              assert.equal(got.compression, "none", `${got.path} (${data.length} bytes) must stay raw`);
            }
            if (got.compression === "zstd") {
              assert.ok(
                got.storedSize - (got.encrypted ? 28 : 0) < data.length,
                "stored compressed only when smaller",
              );
            } else {
              assert.equal(got.storedSize, data.length + (got.encrypted ? 28 : 0));
            }
            if (
              o.compression === "zstd" &&
              data.length >= threshold &&
              data.length > 0 &&
              data.length >= 4096
            ) {
              if (want.data && specOf.get(got.path)?.kind !== "random") {
                assert.equal(got.compression, "zstd", `${got.path}: compressible data is compressed`);
                if (data.length > 4 * MiB) streamedCompressed++;
              } else {
                assert.equal(got.compression, "none", `${got.path}: random data stays raw`);
              }
            }

            assert.ok((await r.readFile(got.path)).equals(data), `readFile ${got.path}`);
            assert.ok(r.readFileSync(got.path).equals(data), `readFileSync ${got.path}`);
            for (let k = 0; k < 3; k++) {
              const pos = rng.int(0, data.length + 2);
              const len = rng.pick([0, 1, 17, 4096, 70000, data.length]);
              const want = data.subarray(pos, pos + len);
              assert.ok((await r.read(got.path, pos, len)).equals(want), `read ${got.path} @${pos}+${len}`);
              assert.ok(r.readSync(got.path, pos, len).equals(want), `readSync ${got.path} @${pos}+${len}`);
            }
            const start = rng.int(0, data.length);
            const end = rng.int(start, data.length + 5);
            const streamed = Buffer.concat(await r.createReadStream(got.path, { start, end }).toArray());
            assert.ok(
              streamed.equals(data.subarray(start, end + 1)),
              `createReadStream ${got.path} ${start}..${end}`,
            );
            if (data.length <= 70000) {
              const whole = Buffer.concat(await r.createReadStream(got.path).toArray());
              assert.ok(whole.equals(data), `createReadStream ${got.path}`);
            }
          }

          // readdir: immediate children, implicit parents included, byte-wise order.
          const children = new Map<string, Set<string>>();
          const dirs = new Set<string>([""]);
          for (const e of entries) if (e.type === "directory") dirs.add(e.path);
          for (const d of implicit) dirs.add(d);
          for (const p of [...entries.map((e) => e.path), ...implicit]) {
            const i = p.lastIndexOf("/");
            const parent = i < 0 ? "" : p.slice(0, i);
            if (!children.has(parent)) children.set(parent, new Set());
            children.get(parent)!.add(p.slice(i + 1));
          }
          for (const d of dirs) {
            assert.deepEqual(r.readdir(d), sortBytes(children.get(d) ?? []), `readdir '${d}'`);
          }
          for (const d of implicit) {
            const st = r.stat(d);
            assert.equal(st.type, "directory");
            assert.equal(st.index, -1);
          }

          const report = await verify(r, { deep: true });
          assert.deepEqual(report.problems, []);
          assert.equal(report.ok, true);
          assert.equal(report.checked, entries.length);

          const out = path.join(dir, "out");
          const x = await extract(r, out);
          assert.deepEqual(x.failed, []);
          assert.equal(x.extracted, entries.length);
          for (const e of entries) {
            const full = path.join(out, e.path);
            const st = fs.lstatSync(full, { bigint: true });
            if (e.type === "symlink") {
              assert.ok(st.isSymbolicLink(), e.path);
              assert.equal(fs.readlinkSync(full), e.target);
              continue;
            }
            const mask = IS_ROOT ? 0o7777 : 0o1777;
            assert.equal(
              (Number(st.mode) & mask).toString(8),
              (e.perm & mask).toString(8),
              `mode of ${e.path}`,
            );
            mtimeClose(st.mtimeNs, e.mtimeNs, e.path);
            if (e.type === "directory") assert.ok(st.isDirectory(), e.path);
            else {
              assert.ok(st.isFile(), e.path);
              assert.ok(fs.readFileSync(full).equals(e.data!), `extracted content of ${e.path}`);
            }
          }
          for (const d of implicit) assert.ok(fs.lstatSync(path.join(out, d)).isDirectory(), d);
          // Nothing else was created.
          const onDisk = (fs.readdirSync(out, { recursive: true }) as string[]).length;
          assert.equal(onDisk, entries.length + implicit.size);
        } finally {
          r.close();
          fs.rmSync(dir, { recursive: true, force: true });
        }
      }),
      { seed: 20261123, numRuns: 40, endOnFailure: true },
    );
    // The generator must actually reach the streaming path.
    assert.ok(bigFiles >= 1, `big files generated: ${bigFiles}`);
    assert.ok(
      Object.keys(modes).some((m) => m.endsWith("/password")),
      JSON.stringify(modes),
    );
    t.diagnostic(
      `runs ${run}; files past 4 MiB: ${bigFiles} (${streamedCompressed} compressed, ${bigEncrypted} encrypted); ${JSON.stringify(modes)}`,
    );
  });
});
