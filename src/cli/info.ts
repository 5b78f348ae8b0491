/**
 * `bfc info [-d] [--json] <container> [entry]`: the reference's layout (reference spec §20), plus
 * what it hides: UUID, block size, feature bits, how the container is encrypted, and the
 * compression of each compressed file.
 */
import fs from "node:fs";
import type { Command } from "commander";
import type { Entry, Reader } from "../container/reader.ts";
import { fromSystemError } from "../errors.ts";
import { type Ctx, printJson, run } from "./common.ts";
import {
  entryJson,
  fullModeString,
  hex8,
  humanSize,
  isoNs,
  localSecondZone,
  octalMode,
  percent,
} from "./format.ts";
import { readerOptions } from "./password.ts";

export interface InfoOptions {
  commit?: string;
  detailed?: boolean;
  json?: boolean;
}

const TYPE_NAMES: Record<Entry["type"], string> = {
  file: "Regular file",
  directory: "Directory",
  symlink: "Symlink",
  other: "Special file",
};

function encryptionText(mode: "none" | "password" | "key"): string {
  if (mode === "password") return "yes, with a password (ChaCha20-Poly1305, key from Argon2id)";
  if (mode === "key") return "yes, with a key file (ChaCha20-Poly1305)";
  return "no";
}

function targetOf(r: Reader, e: Entry): string | null {
  try {
    return r.readlinkAtSync(e.index);
  } catch {
    return null;
  }
}

function entryInfo(ctx: Ctx, r: Reader, name: string, json: boolean): void {
  const e = r.stat(name);
  const target = e.type === "symlink" && e.index >= 0 ? targetOf(r, e) : undefined;
  if (json) {
    printJson(ctx, entryJson(e, target));
    return;
  }
  ctx.print(`Entry: ${e.path}`);
  ctx.print(`Type: ${TYPE_NAMES[e.type]}`);
  ctx.print(`Mode: ${fullModeString(e.mode)} (${octalMode(e.mode)})`);
  ctx.print(`Size: ${humanSize(e.size)}`);
  if (e.type === "file") {
    ctx.print(`Compression: ${e.compression}`);
    ctx.print(`Encryption: ${e.encrypted ? "ChaCha20-Poly1305" : "none"}`);
    ctx.print(`Stored size: ${humanSize(e.objectSize)}`);
    ctx.print(`Storage ratio: ${percent(e.objectSize, e.size)}`);
    if (e.compression !== "none") ctx.print(`Compression ratio: ${percent(e.size - e.objectSize, e.size)}`);
    ctx.print(`CRC32C: 0x${hex8(e.crc32c)}`);
    ctx.print(`Object offset: ${e.objectOffset}`);
  }
  if (e.index < 0) {
    ctx.print("Stored: no (implied by the entries beneath it)");
  } else {
    ctx.print(`Modified: ${localSecondZone(e.mtimeMs)}`);
  }
  if (e.type === "symlink") ctx.print(`Target: ${target ?? "(unreadable)"}`);
  if (e.type === "file") {
    ctx.print(`Payload size: ${humanSize(e.storedSize)}`);
  }
}

interface Totals {
  entries: number;
  files: number;
  directories: number;
  symlinks: number;
  other: number;
  /** Files that are another file's hard link (names sharing its object). */
  hardLinks: number;
  compressedFiles: number;
  encryptedFiles: number;
  uncompressedSize: number;
  storedSize: number;
}

function totalsOf(r: Reader): Totals {
  const t: Totals = {
    entries: 0,
    files: 0,
    directories: 0,
    symlinks: 0,
    other: 0,
    hardLinks: 0,
    compressedFiles: 0,
    encryptedFiles: 0,
    uncompressedSize: 0,
    storedSize: 0,
  };
  // Hard-linked names share one object: its content and stored bytes count once, as du counts them.
  const shared = new Set<number>();
  for (const e of r.entries()) {
    t.entries++;
    if (e.type === "file") {
      t.files++;
      if (e.compression !== "none") t.compressedFiles++;
      if (e.encrypted) t.encryptedFiles++;
      if (e.index >= 0 && r.hardlinkTarget(e.index) >= 0) t.hardLinks++;
      if (e.index >= 0 && r.sharesObject(e.index)) {
        if (shared.has(e.objectOffset)) continue;
        shared.add(e.objectOffset);
      }
      t.uncompressedSize += e.size;
      t.storedSize += e.objectSize;
    } else if (e.type === "directory") t.directories++;
    else if (e.type === "symlink") t.symlinks++;
    else t.other++;
  }
  return t;
}

async function info(ctx: Ctx, container: string, entry: string | undefined, o: InfoOptions): Promise<number> {
  const { Reader } = await import("../container/reader.ts");
  const { describeFeatures, formatUuid } = await import("../format/header.ts");
  ctx.debug(`Opening container: ${container}`);
  const r = await Reader.open(container, readerOptions(o));
  try {
    if (entry !== undefined) {
      entryInfo(ctx, r, entry, o.json === true);
      return 0;
    }
    let st: fs.BigIntStats;
    try {
      st = fs.statSync(container, { bigint: true });
    } catch (e) {
      throw fromSystemError(e, `cannot stat '${container}'`, container);
    }
    const t = totalsOf(r);
    const features = describeFeatures(r.header.features);
    if (o.json) {
      const doc: Record<string, unknown> = {
        container,
        size: r.fileSize,
        modified: isoNs(st.mtimeNs),
        uuid: formatUuid(r.header.uuid),
        blockSize: r.header.blockSize,
        features,
        encryption: r.encryptionMode,
        summary: {
          ...t,
          storageRatio: t.uncompressedSize === 0 ? null : t.storedSize / t.uncompressedSize,
        },
      };
      const ext = r.extension;
      if (ext.metadata) {
        const m = ext.metadata;
        doc.metadata = {
          creator: m.creator ?? null,
          created: m.createdNs === undefined ? null : isoNs(m.createdNs),
          modified: m.modifiedNs === undefined ? null : isoNs(m.modifiedNs),
          labels: m.labels ?? {},
        };
      }
      if (ext.limits) doc.limits = ext.limits;
      doc.commit = r.commit;
      if (ext.commitInfo?.message !== undefined) doc.commitMessage = ext.commitInfo.message;
      if (ext.signature) doc.signedBy = ext.signature.publicKey.toString("hex");
      if (r.tornTail > 0) doc.tornTail = r.tornTail;
      if (o.detailed) {
        doc.entries = [...r.entries()].map((e) =>
          entryJson(e, e.type === "symlink" ? targetOf(r, e) : undefined),
        );
      }
      printJson(ctx, doc);
      return 0;
    }
    ctx.print(`Container: ${container}`);
    ctx.print(`Container size: ${humanSize(r.fileSize)}`);
    ctx.print(`Modified: ${localSecondZone(Number(st.mtimeNs / 1000000n))}`);
    ctx.print(`UUID: ${formatUuid(r.header.uuid)}`);
    ctx.print(`Block size: ${r.header.blockSize}`);
    ctx.print(`Features: ${features.length ? features.join(", ") : "none"}`);
    ctx.print(`Encrypted: ${encryptionText(r.encryptionMode)}`);
    const ext = r.extension;
    if (ext.metadata) {
      const m = ext.metadata;
      if (m.creator !== undefined) ctx.print(`Creator: ${m.creator}`);
      if (m.createdNs !== undefined) ctx.print(`Created: ${isoNs(m.createdNs)}`);
      if (m.modifiedNs !== undefined) ctx.print(`Last modified: ${isoNs(m.modifiedNs)}`);
      for (const [k, v] of Object.entries(m.labels ?? {})) ctx.print(`Label: ${k}=${v}`);
    }
    if (ext.limits) {
      const l = ext.limits;
      const show = (v: number | undefined) => (v === undefined ? "unlimited" : String(v));
      ctx.print(
        `Limits: files ${show(l.maxFiles)}, directories ${show(l.maxDirectories)}, total bytes ${show(l.maxTotalBytes)}, file size ${show(l.maxFileSize)}`,
      );
    }
    if (r.commit > 1 || r.end !== r.tipEnd) {
      const msg = ext.commitInfo?.message;
      ctx.print(
        `Commit: ${r.commit}${r.end !== r.tipEnd ? " (not the latest)" : ""}${msg ? ` (${msg})` : ""}`,
      );
    }
    if (ext.signature)
      ctx.print(`Signed by: ${ext.signature.publicKey.toString("hex")} (check with verify --pubkey)`);
    if (r.tornTail > 0)
      ctx.print(`Torn tail: ${r.tornTail} bytes of an interrupted commit ('bfc recover' removes them)`);
    ctx.print("");
    if (o.detailed) {
      ctx.print("Entries:");
      const compressed: Entry[] = [];
      for (const e of r.entries()) {
        const crc = e.type === "file" ? `CRC32C:0x${hex8(e.crc32c)} ` : "";
        ctx.print(
          `  ${fullModeString(e.mode)} ${humanSize(e.size)} ${localSecondZone(e.mtimeMs)} ${crc}${e.path}`,
        );
        if (e.type === "file" && e.compression !== "none") compressed.push(e);
      }
      ctx.print("");
      if (compressed.length > 0) {
        ctx.print(
          "Compressed files (method, stored payload as a share of the original, payload size, path):",
        );
        for (const e of compressed) {
          ctx.print(
            `  ${e.compression} ${percent(e.storedSize, e.size)} ${humanSize(e.storedSize)} ${e.path}`,
          );
        }
        ctx.print("");
      }
    }
    ctx.print("Summary:");
    ctx.print(`  Total entries: ${t.entries}`);
    ctx.print(`  Files: ${t.files}`);
    ctx.print(`  Directories: ${t.directories}`);
    if (t.symlinks > 0) ctx.print(`  Symlinks: ${t.symlinks}`);
    if (t.encryptedFiles > 0) ctx.print("  Encryption: ChaCha20-Poly1305");
    if (t.uncompressedSize > 0) {
      ctx.print(`  Uncompressed size: ${humanSize(t.uncompressedSize)}`);
      ctx.print(`  Stored size: ${humanSize(t.storedSize)}`);
      ctx.print(`  Storage ratio: ${percent(t.storedSize, t.uncompressedSize)}`);
    }
    if (t.compressedFiles > 0) ctx.print(`  Compressed files: ${t.compressedFiles}`);
    if (t.other > 0) ctx.print(`  Special files: ${t.other}`);
    if (t.hardLinks > 0) ctx.print(`  Hard links: ${t.hardLinks}`);
    return 0;
  } finally {
    r.close();
  }
}

export function register(program: Command): void {
  program
    .command("info")
    .description("show information about a container or one of its entries")
    .argument("<container>", "the container to inspect")
    .argument("[entry]", "show this entry only")
    .option("-d, --detailed", "also list every entry (and the compression of each compressed file)")
    .option("--json", "print one JSON document (see docs/cli.md)")
    .option("--commit <n>", "show this commit instead of the latest (see 'bfc log')")
    .addHelpText(
      "after",
      `
Examples:
  bfc info archive.bfc                 container summary, UUID, features, encryption
  bfc info -d archive.bfc              ... and every entry
  bfc info archive.bfc docs/readme.txt one entry`,
    )
    .action((container: string, entry: string | undefined, opts: InfoOptions, cmd: Command) =>
      run(cmd, (ctx) => info(ctx, container, entry, opts)),
    );
}
