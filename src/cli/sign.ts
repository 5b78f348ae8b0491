/**
 * `bfc sign --key PRIVATE.pem <container>`: signs the root digest with Ed25519 (a new commit holds the
 * signature); `bfc keygen PRIVATE.pem PUBLIC.pem` makes a key pair. Check with `bfc verify --pubkey`.
 */
import type { Command } from "commander";
import { type Ctx, run, UsageError } from "./common.ts";
import { addUpdateOptions, openForUpdate, type UpdateCliOptions } from "./update.ts";

interface SignOptions extends UpdateCliOptions {
  key?: string;
}

async function sign(ctx: Ctx, container: string, o: SignOptions): Promise<number> {
  if (!o.key) throw new UsageError("--key <private.pem> is required");
  const { readSigningKey, signOpen } = await import("../container/signature.ts");
  // The key first: a bad key file fails before a password is asked for or a lock taken.
  const key = readSigningKey(o.key, "private");
  const c = await openForUpdate(ctx, container, o);
  let r: Awaited<ReturnType<typeof signOpen>>;
  try {
    r = await signOpen(c, key, o.message);
  } finally {
    c.close();
  }
  ctx.say(`Signed commit ${r.commit} of '${container}'`);
  ctx.say(`root digest ${r.digest}`);
  ctx.say(`public key  ${r.publicKey}`);
  return 0;
}

async function keygen(ctx: Ctx, privateFile: string, publicFile: string): Promise<number> {
  const { generateSigningKey } = await import("../container/signature.ts");
  generateSigningKey(privateFile, publicFile);
  ctx.say(`Wrote ${privateFile} (keep it secret) and ${publicFile}`);
  return 0;
}

export function register(program: Command): void {
  const cmd = program
    .command("sign")
    .description("sign the root digest with an Ed25519 key (recorded as a new commit)")
    .argument("<container>", "the container")
    .option("--key <private.pem>", "the Ed25519 private key (PEM, e.g. from 'bfc keygen')");
  addUpdateOptions(cmd, false)
    .addHelpText(
      "after",
      `
The signature covers the root digest (every path, mode, mtime and byte); any later commit drops it.

Examples:
  bfc keygen signing.pem signing.pub
  bfc sign --key signing.pem release.bfc
  bfc verify --pubkey signing.pub release.bfc`,
    )
    .action((container: string, opts: SignOptions, c: Command) =>
      run(c, (ctx) => sign(ctx, container, opts)),
    );
  program
    .command("keygen")
    .description("write a new Ed25519 key pair for 'bfc sign'")
    .argument("<private>", "private key file to create (PEM, mode 0600)")
    .argument("<public>", "public key file to create (PEM)")
    .action((priv: string, pub: string, _o: unknown, c: Command) => run(c, (ctx) => keygen(ctx, priv, pub)));
}
