/**
 * What the commands that change a container share (add, rm, mv, limits, sign): opening it for
 * update with its credentials, the storage options for new content, and the commit report.
 */
import type { Command } from "commander";
import type { CommitResult, Container, UpdateOptions } from "../container/container.ts";
import type { Compression } from "../container/writer.ts";
import { type Ctx, intOption, UsageError } from "./common.ts";
import { explicitCredentials, implicitPassword, type SecretOptions } from "./password.ts";

export interface UpdateCliOptions extends SecretOptions {
  message?: string;
  compression?: string;
  compressionLevel?: string;
  wait?: string;
}

/** -m, -c, -l and --wait, plus the reading commands' credential options. */
export function addUpdateOptions(cmd: Command, storage: boolean): Command {
  cmd
    .option("-m, --message <text>", "a message recorded with the commit (shown by 'bfc log')")
    .option(
      "-p, --password <pass>",
      "password of an encrypted container (visible to other users: prefer the options below)",
    )
    .option("-K, --keyfile <file>", "32-byte key file of a key-encrypted container")
    .option("--password-file <file>", "read the password from the first line of <file> ('-' for stdin)")
    .option("--wait <seconds>", "wait this long for another update of the container to finish", "0");
  if (storage) {
    cmd
      .option("-c, --compression <type>", "how new files are stored: none, zstd or auto", "none")
      .option("-l, --compression-level <n>", "zstd level 1..22", "3");
  }
  return cmd;
}

/**
 * Opens a container for update. New entries of an encrypted container are encrypted with its key,
 * which is proven first; a password comes from the options, $BFC_PASSWORD or a prompt.
 */
export async function openForUpdate(
  ctx: Ctx,
  file: string,
  o: UpdateCliOptions,
  extra: Partial<UpdateOptions> = {},
): Promise<Container> {
  const compression = (o.compression ?? "none") as Compression;
  if (!["none", "zstd", "auto"].includes(compression)) {
    throw new UsageError(`-c/--compression must be none, zstd or auto, got '${o.compression}'`);
  }
  const level = intOption(o.compressionLevel, "-l/--compression-level", 1, 22);
  const wait = intOption(o.wait, "--wait", 0, 86400) ?? 0;
  let creds = (await explicitCredentials(o)) ?? {};
  const { Container } = await import("../container/container.ts");
  if (creds.password === undefined && creds.key === undefined) {
    const { Reader } = await import("../container/reader.ts");
    const r = await Reader.open(file);
    const mode = r.encryptionMode;
    r.close();
    if (mode === "password") {
      const pw = await implicitPassword(ctx, `'${file}'`);
      if (pw !== undefined) creds = { password: pw };
    }
  }
  ctx.debug(`Opening container for update: ${file}`);
  return Container.openForUpdate(file, {
    ...creds,
    compression,
    level,
    lockTimeout: wait * 1000,
    onWarning: (m) => ctx.warn(m),
    ...extra,
  });
}

/** One line about what a commit did. */
export function reportCommit(ctx: Ctx, file: string, r: CommitResult): void {
  if (!r.changed) {
    ctx.say(`Nothing to commit; '${file}' is unchanged (commit ${r.commit}).`);
    return;
  }
  ctx.say(
    `Committed ${r.commit} to '${file}': ${r.entries} entries, ${r.written} written, ${r.carried - r.moved} unchanged${r.moved ? `, ${r.moved} moved` : ""}, +${r.bytesAdded} bytes.`,
  );
}
