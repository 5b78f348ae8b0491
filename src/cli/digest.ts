/**
 * `bfc digest [-p PASS | -K KEYFILE | --password-file F] [--json] <container>`: the root digest
 * (docs/format.md), a SHA-256 of every entry's metadata and content that can be pinned and later
 * checked with `bfc verify --root`.
 */
import type { Command } from "commander";
import type { Reader } from "../container/reader.ts";
import { type Ctx, printJson, run, UsageError } from "./common.ts";
import { addSecretOptions, openWithCredentials, type SecretOptions } from "./password.ts";

export interface DigestCliOptions extends SecretOptions {
  json?: boolean;
}

/** A root digest given on the command line: 64 hex digits, either case. */
export function parseRootDigest(value: string): string {
  const v = value.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(v)) {
    throw new UsageError(`--root must be 64 hexadecimal digits (a SHA-256), got '${value}'`);
  }
  return v.toLowerCase();
}

/** Any encrypted file means the digest needs the key. */
export function needsKeyForDigest(r: Reader): boolean {
  return r.encrypted;
}

async function digestCommand(ctx: Ctx, container: string, o: DigestCliOptions): Promise<number> {
  const r = await openWithCredentials(ctx, container, o, needsKeyForDigest);
  try {
    const { rootDigest } = await import("../container/digest.ts");
    const d = await rootDigest(r);
    ctx.debug(`hashed ${d.entries} entries, ${d.bytes} bytes of content`);
    if (o.json) printJson(ctx, { digest: d.digest, entries: d.entries, bytes: d.bytes });
    else ctx.print(d.digest);
    return 0;
  } finally {
    r.close();
  }
}

export function register(program: Command): void {
  const cmd = program
    .command("digest")
    .description("print the root digest: a SHA-256 of every entry's metadata and content")
    .argument("<container>", "the container");
  addSecretOptions(cmd)
    .option("--json", "print one JSON document (see docs/cli.md)")
    .addHelpText(
      "after",
      `
The digest does not depend on compression, encryption or layout; encrypted containers need the
password or key. Pin it and check later with 'bfc verify --root <hex>'.

Examples:
  bfc digest archive.bfc
  bfc verify --root "$(bfc digest archive.bfc)" copy.bfc`,
    )
    .action((container: string, opts: DigestCliOptions, c: Command) =>
      run(c, (ctx) => digestCommand(ctx, container, opts)),
    );
}
