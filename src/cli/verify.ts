/**
 * `bfc verify [--deep] [--root HEX] [--progress] [-p PASS | -K KEYFILE | --password-file F] [--json] <container>`.
 * Deep verification really decodes compressed and encrypted files (the reference only compares
 * raw bytes, so it fails every compressed or encrypted container); encrypted containers need the
 * password or key for that.
 */
import type { KeyObject } from "node:crypto";
import type { Command } from "commander";
import type { checkSignature } from "../container/signature.ts";
import type { VerifyProblem } from "../container/verify.ts";
import { BfcError } from "../errors.ts";
import { type Ctx, printJson, run } from "./common.ts";
import { parseRootDigest } from "./digest.ts";
import { addSecretOptions, openWithCredentials, readerOptions, type SecretOptions } from "./password.ts";
import { Progress } from "./progress.ts";

export interface VerifyCliOptions extends SecretOptions {
  deep?: boolean;
  progress?: boolean;
  json?: boolean;
  /** Expected root digest (hex); checked after the normal verification passes. */
  root?: string;
  /** Ed25519 public key (PEM) that must have signed the commit. */
  pubkey?: string;
}

async function verifyCommand(ctx: Ctx, container: string, o: VerifyCliOptions): Promise<number> {
  const started = performance.now();
  const deep = o.deep === true;
  const expected = o.root === undefined ? null : parseRootDigest(o.root);
  // The key file is read first, so a missing or malformed one fails before any work.
  let signing: { key: KeyObject; check: typeof checkSignature } | null = null;
  if (o.pubkey !== undefined) {
    const s = await import("../container/signature.ts");
    signing = { key: s.readSigningKey(o.pubkey, "public"), check: s.checkSignature };
  }
  const r = await openWithCredentials(
    ctx,
    container,
    o,
    (rd) => (deep || expected !== null || o.pubkey !== undefined) && rd.encrypted,
    readerOptions(o),
  );
  try {
    const { verify } = await import("../container/verify.ts");
    if (!o.json) {
      ctx.say(`Verifying container: ${container}`);
      ctx.say(
        deep
          ? "Mode: Deep verification (checking all file contents and CRC32C checksums)"
          : "Mode: Quick verification (checking container structure and index)",
      );
      ctx.say("");
    }
    let totalBytes = 0;
    if (deep) for (const e of r.entries()) if (e.type === "file") totalBytes += e.size;
    const progress = new Progress(
      ctx,
      { bytes: totalBytes, entries: r.count },
      { label: "Verifying", force: o.progress },
    );
    await progress.ready();
    let report: Awaited<ReturnType<typeof verify>>;
    try {
      report = await verify(r, { deep, onProgress: (p) => progress.update(p.bytes, p.entries) });
    } finally {
      progress.stop();
    }
    let actual: string | null = null;
    // A digest over entries already known to be damaged would only repeat those problems.
    if (expected !== null && report.ok) {
      try {
        const { rootDigest } = await import("../container/digest.ts");
        actual = (await rootDigest(r)).digest;
        if (actual !== expected) {
          report.problems.push({
            path: null,
            reason: "DIGEST_MISMATCH",
            message: `root digest mismatch: expected ${expected}, got ${actual}`,
          });
        }
      } catch (e) {
        report.problems.push(digestProblem(e, container, "cannot compute the root digest"));
      }
      report.ok = report.problems.length === 0;
    }
    let signed: { ok: boolean; key: string | null } | null = null;
    if (signing !== null && report.ok) {
      try {
        const s = await signing.check(r, signing.key);
        signed = { ok: s.ok, key: s.signature?.publicKey.toString("hex") ?? null };
        if (!s.ok)
          report.problems.push({
            path: null,
            reason: "SIGNATURE_INVALID",
            message: `signature check failed: ${s.problem}`,
          });
      } catch (e) {
        // The digest the signature covers could not be computed (a damaged entry, a missing key).
        signed = { ok: false, key: r.extension.signature?.publicKey.toString("hex") ?? null };
        report.problems.push(digestProblem(e, container, "cannot check the signature"));
      }
      report.ok = report.problems.length === 0;
    }
    const seconds = (performance.now() - started) / 1000;
    ctx.debug(
      `checked ${report.entries} entries${deep ? `, decoded ${report.checked} (${report.bytes} bytes)` : ""}`,
    );
    if (o.json) {
      printJson(ctx, {
        container,
        ok: report.ok,
        deep,
        entries: report.entries,
        checked: report.checked,
        bytes: report.bytes,
        seconds: Math.round(seconds * 1000) / 1000,
        ...(expected === null ? {} : { root: { expected, actual, ok: actual === expected } }),
        ...(signed === null ? {} : { signature: signed }),
        problems: report.problems,
      });
      return report.ok ? 0 : 1;
    }
    if (report.ok) {
      ctx.say("Verification successful");
      ctx.say("Container is valid and all checksums match");
      if (expected !== null) ctx.say(`Root digest matches: ${expected}`);
      if (signed?.ok) ctx.say(`Signature valid (Ed25519 key ${signed.key})`);
      ctx.say(`Verification completed in ${seconds.toFixed(2)} seconds`);
      return 0;
    }
    let encrypted = 0;
    for (const e of r.entries()) if (e.type === "file" && e.encrypted) encrypted++;
    const wrongKey =
      deep &&
      encrypted > 0 &&
      report.problems.length === encrypted &&
      report.problems.every((p) => p.reason === "AUTH_FAILED");
    if (wrongKey && !ctx.verbose) {
      // Every encrypted file failed its tag: the key is wrong, not each file damaged.
      ctx.error(
        `wrong password or key: none of the ${encrypted} encrypted files could be authenticated`,
        "AUTH_FAILED",
      );
    } else {
      for (const p of report.problems) ctx.error(p.message, p.reason);
    }
    ctx.say(`Verification failed after ${seconds.toFixed(2)} seconds`);
    return 1;
  } finally {
    r.close();
  }
}

/** A failure while computing the root digest, as a verification problem. */
function digestProblem(e: unknown, container: string, what: string): VerifyProblem {
  const err = e instanceof BfcError ? e : null;
  return {
    path: err?.path === container ? null : (err?.path ?? null),
    reason: err?.reason ?? "IO_ERROR",
    message: `${what}: ${err?.message ?? String((e as Error)?.message ?? e)}`,
  };
}

export function register(program: Command): void {
  const cmd = program
    .command("verify")
    .description("check the integrity of a container")
    .argument("<container>", "the container to verify")
    .option("--deep", "decode and check every file's content (needs the key for encrypted files)")
    .option("--root <hex>", "also check the root digest against this one (see 'bfc digest')")
    .option("--pubkey <public.pem>", "also check the commit's Ed25519 signature (see 'bfc sign')")
    .option("--progress", "show a progress bar at once (default: only for long runs on a terminal)")
    .option("--no-progress", "never show a progress bar");
  addSecretOptions(cmd)
    .option("--json", "print one JSON document (see docs/cli.md)")
    .addHelpText(
      "after",
      `
The reference's '-p' (progress) is '--progress' here, and '-p PASS' is the password as for extract;
'-p' followed by another option or by the container alone still means progress.

Examples:
  bfc verify archive.bfc                       quick structural check
  bfc verify --deep archive.bfc                decode and check every file
  bfc verify --root 3f1c…e2 archive.bfc        check against a pinned root digest
  BFC_PASSWORD=secret bfc verify --deep a.bfc  deep check of a password-encrypted container`,
    )
    .action((container: string, opts: VerifyCliOptions, c: Command) =>
      run(c, (ctx) => verifyCommand(ctx, container, opts)),
    );
}
