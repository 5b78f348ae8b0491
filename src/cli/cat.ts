/**
 * `bfc cat [-p PASS | -K KEYFILE | --password-file F] <container> <path>…`: file contents to stdout,
 * one after the other. Symlinks are followed inside the container. No byte of an entry is written
 * before the whole entry has been checked (checksum, and tag when encrypted).
 */
import fs from "node:fs";
import type { Command } from "commander";
import type { Entry, Reader } from "../container/reader.ts";
import { BfcError } from "../errors.ts";
import { CliError, type Ctx, run, writeOut } from "./common.ts";
import { addSecretOptions, openWithCredentials, type SecretOptions } from "./password.ts";

const MAX_HOPS = 40;
const WHOLE = 8 * 1024 * 1024;

/** The entry a path names, following symlinks whose targets stay inside the container. */
export function resolveEntry(r: Reader, name: string): Entry {
  let cur = name;
  for (let hops = 0; hops <= MAX_HOPS; hops++) {
    const e = r.stat(cur);
    if (e.type !== "symlink") return e;
    const target = r.readlinkAtSync(e.index);
    if (target.startsWith("/")) {
      throw new CliError(`'${name}' leads to '${target}', outside the container`, "UNSAFE_PATH");
    }
    const slash = e.path.lastIndexOf("/");
    const parts = slash < 0 ? [] : e.path.slice(0, slash).split("/");
    for (const c of target.split("/")) {
      if (c === "" || c === ".") continue;
      if (c === "..") {
        if (parts.length === 0) {
          throw new CliError(`'${name}' leads to '${target}', outside the container`, "UNSAFE_PATH");
        }
        parts.pop();
      } else parts.push(c);
    }
    cur = parts.join("/");
  }
  throw new BfcError("ELOOP", "INVALID_ARGUMENT", `'${name}': too many levels of symbolic links`, {
    path: name,
  });
}

async function catOne(r: Reader, name: string): Promise<void> {
  const e = resolveEntry(r, name);
  if (e.type === "directory") {
    throw new BfcError("EISDIR", "IS_A_DIRECTORY", `'${name}' is a directory`, { path: name });
  }
  if (e.type !== "file")
    throw new BfcError("EINVAL", "NOT_A_FILE", `'${name}' is not a regular file`, { path: name });
  if (e.size <= WHOLE) {
    await writeOut(await r.readFileAt(e.index));
    return;
  }
  // Checked as a whole first, then decoded again into reused memory as it is written out (the
  // second pass checks again, so a container changed in between fails instead of passing).
  await r.verifyEntry(e.index);
  // Into a pipe or terminal the second pass decodes on a thread too; into a file it does not (see
  // contentChunks: writing new files at that pace cost more than it saved).
  const thread = !stdoutIsFile();
  for await (const chunk of r.contentChunks(e.index, { reuse: true, thread })) await writeFlushed(chunk);
}

function stdoutIsFile(): boolean {
  try {
    return fs.fstatSync(1).isFile();
  } catch {
    return false;
  }
}

/** Writes to stdout and waits until the bytes have left `chunk` (which is then reused). */
function writeFlushed(chunk: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(chunk, (err) => (err ? reject(err) : resolve()));
  });
}

async function cat(ctx: Ctx, container: string, paths: string[], o: SecretOptions): Promise<number> {
  const r = await openWithCredentials(ctx, container, o, (rd) =>
    paths.some((p) => {
      try {
        const e = resolveEntry(rd, p);
        return e.type === "file" && e.encrypted;
      } catch {
        return false;
      }
    }),
  );
  let failed = 0;
  try {
    for (const p of paths) {
      try {
        await catOne(r, p);
      } catch (e) {
        failed++;
        ctx.report(e);
      }
    }
  } finally {
    r.close();
  }
  return failed > 0 ? 1 : 0;
}

export function register(program: Command): void {
  const cmd = program
    .command("cat")
    .description("write the contents of files in a container to stdout")
    .argument("<container>", "the container to read")
    .argument("<paths...>", "files to print, in order (symlinks inside the container are followed)");
  addSecretOptions(cmd)
    .addHelpText(
      "after",
      `
Examples:
  bfc cat archive.bfc docs/readme.txt
  bfc cat archive.bfc config.json | jq .version
  BFC_PASSWORD=secret bfc cat secret.bfc notes.txt`,
    )
    .action((container: string, paths: string[], opts: SecretOptions, c: Command) =>
      run(c, (ctx) => cat(ctx, container, paths, opts)),
    );
}
