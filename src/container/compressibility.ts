/**
 * Per-file choice for `compression: "auto"`: skip formats that are already compressed (by name and
 * by magic bytes) and data whose sampled byte entropy says zstd would gain nothing; compress the rest.
 */

const COMPRESSED_EXTENSIONS = new Set([
  "7z",
  "apk",
  "avif",
  "br",
  "bz2",
  "cab",
  "deb",
  "docx",
  "epub",
  "flac",
  "gif",
  "gz",
  "heic",
  "jar",
  "jpeg",
  "jpg",
  "lz",
  "lz4",
  "lzma",
  "m4a",
  "m4v",
  "mkv",
  "mov",
  "mp3",
  "mp4",
  "odt",
  "ogg",
  "opus",
  "png",
  "pptx",
  "rar",
  "rpm",
  "tgz",
  "txz",
  "webm",
  "webp",
  "whl",
  "woff",
  "woff2",
  "xlsx",
  "xz",
  "zip",
  "zst",
  "zstd",
]);

/** Leading bytes of compressed container and media formats. */
const MAGICS: [number, number[]][] = [
  [0, [0x50, 0x4b, 0x03, 0x04]], // zip and its derivatives
  [0, [0x1f, 0x8b]], // gzip
  [0, [0x28, 0xb5, 0x2f, 0xfd]], // zstd
  [0, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]], // xz
  [0, [0x42, 0x5a, 0x68]], // bzip2
  [0, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]], // 7z
  [0, [0x52, 0x61, 0x72, 0x21, 0x1a, 0x07]], // rar
  [0, [0x89, 0x50, 0x4e, 0x47]], // png
  [0, [0xff, 0xd8, 0xff]], // jpeg
  [0, [0x47, 0x49, 0x46, 0x38]], // gif
  [4, [0x66, 0x74, 0x79, 0x70]], // mp4 / mov / heic ("ftyp")
  [0, [0x1a, 0x45, 0xdf, 0xa3]], // matroska / webm
  [0, [0x4f, 0x67, 0x67, 0x53]], // ogg
  [0, [0x66, 0x4c, 0x61, 0x43]], // flac
  [0, [0x04, 0x22, 0x4d, 0x18]], // lz4
];

const SAMPLE = 16 * 1024;

function hasMagic(head: Uint8Array): boolean {
  outer: for (const [at, bytes] of MAGICS) {
    if (head.length < at + bytes.length) continue;
    for (let i = 0; i < bytes.length; i++) if (head[at + i] !== bytes[i]) continue outer;
    return true;
  }
  return false;
}

/** Shannon entropy of the sample in bits per byte (8 = indistinguishable from random). */
export function sampleEntropy(data: Uint8Array): number {
  const n = Math.min(data.length, SAMPLE);
  if (n === 0) return 0;
  const counts = new Uint32Array(256);
  for (let i = 0; i < n; i++) counts[data[i]]++;
  let h = 0;
  for (let b = 0; b < 256; b++) {
    const c = counts[b];
    if (c) {
      const p = c / n;
      h -= p * Math.log2(p);
    }
  }
  return h;
}

/** Whether to try zstd on a file, from its name and first bytes. */
export function shouldCompress(name: string, head: Uint8Array): boolean {
  const dot = name.lastIndexOf(".");
  if (dot >= 0 && COMPRESSED_EXTENSIONS.has(name.slice(dot + 1).toLowerCase())) return false;
  if (hasMagic(head)) return false;
  // Small samples overstate randomness less than they understate it; 7.5 bits/byte leaves
  // text, code, tables and binaries with structure on the compress side.
  return sampleEntropy(head) < 7.5;
}
