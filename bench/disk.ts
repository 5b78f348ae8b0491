/**
 * Disk-image block layer: `node bench/disk.ts [--size-mib 200] [--reps 3] [--text] [--keep]`.
 * Builds a raw disk of mixed content (random, text, runs, holes; --text: text only, every cluster
 * compressed and nothing sparse, the slow case for decompression) and its QCOW2 variants with
 * qemu-img in bench/data/disk/, then for each image streams the whole virtual disk through
 * openImage() in 1 MiB reads (a fresh image object per run, so no cache carries over; page cache
 * warm) and times `qemu-img convert -O raw` of the same image. Best of N; every read is checked
 * against the raw disk's sha256 once.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { openImage } from "../src/disk/open-disk.ts";
import {
  convertToQcow2,
  makePatternDisk,
  missingTools,
  QCOW2_VARIANTS,
  type Qcow2Variant,
  sha256File,
  sha256Source,
} from "../test/disk/disk-fixtures.ts";

const { values: opts } = parseArgs({
  options: {
    "size-mib": { type: "string", default: "200" },
    reps: { type: "string", default: "3" },
    keep: { type: "boolean", default: false },
    text: { type: "boolean", default: false },
  },
});
const sizeMiB = Number(opts["size-mib"]);
const reps = Number(opts.reps);
const missing = missingTools(["qemu-img"]);
if (missing.length > 0) {
  console.error(`needs ${missing.join(", ")} (apt-get install qemu-utils)`);
  process.exit(1);
}

const dir = path.join(import.meta.dirname, "data", "disk");
fs.mkdirSync(dir, { recursive: true });
const kind = opts.text ? "text" : "mixed";
const raw = path.join(dir, `disk-${kind}-${sizeMiB}.raw`);
if (!fs.existsSync(raw) || fs.statSync(raw).size !== sizeMiB * 1024 * 1024) {
  makePatternDisk(raw, sizeMiB, 42, opts.text);
}
const rawHash = sha256File(raw);

const variants: [string, Qcow2Variant | null][] = [
  ["raw", null],
  ["qcow2 v3", QCOW2_VARIANTS.v3],
  ["qcow2 zlib", QCOW2_VARIANTS.zlib],
  ["qcow2 zstd", QCOW2_VARIANTS.zstd],
  ["qcow2 2M+l2ext", QCOW2_VARIANTS["2m-l2ext"]],
  ["qcow2 4k zlib", QCOW2_VARIANTS["4k-zlib"]],
];

function best(fn: () => void): number {
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    min = Math.min(min, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return min;
}

function stream(file: string): void {
  const src = openImage(file);
  const buf = Buffer.allocUnsafe(1024 * 1024);
  for (let p = 0; p < src.size; p += buf.length)
    src.read(buf.subarray(0, Math.min(buf.length, src.size - p)), p);
  src.close();
}

const MB = 1e6;
const virtual = sizeMiB * 1024 * 1024;
console.log(
  `${kind} virtual disk ${sizeMiB} MiB (${(virtual / MB).toFixed(1)} MB), best of ${reps}, 1 MiB reads`,
);
console.log("image            file MB   bfcfs s   bfcfs MB/s   qemu-img convert s   qemu MB/s");
for (const [name, v] of variants) {
  let file = raw;
  if (v !== null) {
    file = path.join(dir, `disk-${kind}-${sizeMiB}-${name.replace(/\W+/g, "-")}.qcow2`);
    if (!fs.existsSync(file)) convertToQcow2(raw, file, v);
  }
  const check = openImage(file);
  if (sha256Source(check) !== rawHash) throw new Error(`${name}: content differs from the raw disk`);
  check.close();
  const ours = best(() => stream(file));
  const out = path.join(dir, "convert-out.raw");
  const qemu = best(() => {
    execFileSync("qemu-img", ["convert", "-O", "raw", file, out]);
    fs.rmSync(out);
  });
  const fileMB = fs.statSync(file).blocks * 512;
  console.log(
    `${name.padEnd(15)} ${(fileMB / MB).toFixed(1).padStart(8)} ${ours.toFixed(3).padStart(9)} ${(virtual / MB / ours).toFixed(0).padStart(12)} ${qemu.toFixed(3).padStart(20)} ${(virtual / MB / qemu).toFixed(0).padStart(11)}`,
  );
}
if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true });
