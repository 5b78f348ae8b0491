/**
 * Where passwords and keys come from. On top of the reference's `-e`/`-p PASS` and `-k`/`-K FILE`:
 * `--password-file F` (first line; `-` is stdin), the BFC_PASSWORD environment variable and, when
 * stdin is a terminal, a prompt without echo. Key and password files are read relative to the
 * directory bfc was started in, before anything else happens (unlike the reference's `-C`).
 */
import fs from "node:fs";
import type { Command } from "commander";
import type { Credentials } from "../container/keys.ts";
import type { Reader } from "../container/reader.ts";
import { BfcError, fromSystemError } from "../errors.ts";
import { CliError, type Ctx, Failed, UsageError } from "./common.ts";

export const PASSWORD_ENV = "BFC_PASSWORD";

export interface SecretOptions {
  password?: string;
  passwordFile?: string;
  keyfile?: string;
  /** --commit N: read an older commit. */
  commit?: string;
}

/** Reader options from the reading commands' shared flags (--commit N). */
export function readerOptions(opts: SecretOptions): { commit?: number } {
  if (opts.commit === undefined) return {};
  if (!/^\d+$/.test(opts.commit) || Number(opts.commit) < 1) {
    throw new UsageError(`--commit must be a commit number (1, 2, …; see 'bfc log'), got '${opts.commit}'`);
  }
  return { commit: Number(opts.commit) };
}

/** Adds the reading commands' credential options: -p/--password, -K/--keyfile, --password-file. */
export function addSecretOptions(cmd: Command): Command {
  return cmd
    .option(
      "-p, --password <pass>",
      "password of an encrypted container (visible to other users: prefer the options below)",
    )
    .option("-K, --keyfile <file>", "32-byte key file of a key-encrypted container")
    .option(
      "--password-file <file>",
      `read the password from the first line of <file> ('-' for stdin); also $${PASSWORD_ENV}, or a prompt on a terminal`,
    )
    .option("--commit <n>", "read this commit instead of the latest (see 'bfc log')");
}

/** The first line of a file (or of stdin for "-"), without its line ending. */
export function readPasswordFile(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (e) {
    throw fromSystemError(e, `cannot read password file '${file}'`, file);
  }
  const nl = text.search(/\r?\n/);
  const pw = nl >= 0 ? text.slice(0, nl) : text;
  if (pw.length === 0) throw new CliError(`password file '${file}' is empty`, "BAD_KEY");
  return pw;
}

async function readKey(file: string): Promise<Buffer> {
  const { readKeyFile } = await import("../container/keys.ts");
  return readKeyFile(file);
}

/** Credentials given explicitly on the command line, read now; null when none was given. */
export async function explicitCredentials(
  opts: SecretOptions,
  passwordFlag = "-p",
): Promise<Credentials | null> {
  const given = [opts.password, opts.passwordFile, opts.keyfile].filter((v) => v !== undefined).length;
  if (given > 1) {
    throw new UsageError(`give only one of ${passwordFlag}, --password-file and the key file option`);
  }
  if (opts.password !== undefined) {
    if (opts.password === "") throw new UsageError("the password is empty");
    return { password: opts.password };
  }
  if (opts.passwordFile !== undefined) return { password: readPasswordFile(opts.passwordFile) };
  if (opts.keyfile !== undefined) return { key: await readKey(opts.keyfile) };
  return null;
}

interface PromptInput extends NodeJS.EventEmitter {
  isTTY?: boolean;
  isRaw?: boolean;
  setRawMode?(mode: boolean): unknown;
  setEncoding(enc: BufferEncoding): unknown;
  resume(): unknown;
  pause(): unknown;
}

/** Thrown when the user interrupts a prompt with Ctrl-C or ends input with Ctrl-D. */
export class PromptCancelled extends Error {
  override name = "PromptCancelled";
}

/**
 * Reads a line from a terminal without echoing it. Backspace, Ctrl-U (erase all), Ctrl-C and
 * Ctrl-D (cancel) are handled; the prompt and the final newline go to `output` (stderr).
 */
export function promptPassword(
  prompt: string,
  input: PromptInput = process.stdin,
  output: { write(s: string): unknown } = process.stderr,
): Promise<string> {
  return new Promise((resolve, reject) => {
    // No echo from before the prompt appears: typing ahead must not show the password.
    const wasRaw = input.isRaw === true;
    input.setRawMode?.(true);
    input.setEncoding("utf8");
    output.write(prompt);
    let chars: string[] = [];
    const finish = () => {
      input.off("data", onData);
      input.setRawMode?.(wasRaw);
      input.pause();
      output.write("\n");
    };
    const onData = (s: string) => {
      for (const ch of s) {
        if (ch === "\r" || ch === "\n") {
          finish();
          resolve(chars.join(""));
          return;
        }
        if (ch === "\u0003" || (ch === "\u0004" && chars.length === 0)) {
          finish();
          reject(new PromptCancelled("password prompt cancelled"));
          return;
        }
        if (ch === "\u007f" || ch === "\b") chars.pop();
        else if (ch === "\u0015") chars = [];
        else if (ch >= " ") chars.push(ch);
      }
    };
    input.on("data", onData);
    input.resume();
  });
}

function canPrompt(): boolean {
  return process.stdin.isTTY === true && process.stderr.isTTY === true;
}

async function ask(ctx: Ctx, prompt: string): Promise<string> {
  try {
    return await promptPassword(prompt);
  } catch (e) {
    if (e instanceof PromptCancelled) {
      ctx.error("cancelled", "ECANCELED");
      throw new Failed(130);
    }
    throw e;
  }
}

/** A password from the environment or, on a terminal, from the user; undefined when neither. */
export async function implicitPassword(ctx: Ctx, what: string): Promise<string | undefined> {
  const env = process.env[PASSWORD_ENV];
  if (env) {
    ctx.debug(`using the password from $${PASSWORD_ENV}`);
    return env;
  }
  if (!canPrompt()) return undefined;
  const pw = await ask(ctx, `Password for ${what}: `);
  return pw === "" ? undefined : pw;
}

export interface CreateSecretOptions {
  encrypt?: string;
  keyfile?: string;
  passwordFile?: string;
  askPassword?: boolean;
}

/** Credentials for `create`: -e, -k, --password-file or --ask-password (env, else prompt twice). */
export async function createCredentials(ctx: Ctx, opts: CreateSecretOptions): Promise<Credentials> {
  const given = [opts.encrypt, opts.keyfile, opts.passwordFile, opts.askPassword || undefined].filter(
    (v) => v !== undefined,
  ).length;
  if (given > 1) {
    throw new UsageError("give only one of -e/--encrypt, -k/--keyfile, --password-file and --ask-password");
  }
  if (opts.encrypt !== undefined) {
    if (opts.encrypt === "") throw new UsageError("the password is empty");
    return { password: opts.encrypt };
  }
  if (opts.keyfile !== undefined) return { key: await readKey(opts.keyfile) };
  if (opts.passwordFile !== undefined) return { password: readPasswordFile(opts.passwordFile) };
  if (!opts.askPassword) return {};
  const env = process.env[PASSWORD_ENV];
  if (env) {
    ctx.debug(`using the password from $${PASSWORD_ENV}`);
    return { password: env };
  }
  if (!canPrompt()) {
    throw new UsageError(`--ask-password needs a terminal or the ${PASSWORD_ENV} environment variable`);
  }
  const first = await ask(ctx, "Password: ");
  if (first === "") throw new CliError("the password is empty", "BAD_KEY");
  const second = await ask(ctx, "Repeat password: ");
  if (first !== second) throw new CliError("the passwords do not match", "BAD_KEY");
  return { password: first };
}

/**
 * Opens a container for reading content. Explicit credentials are used as given; otherwise, when
 * the container is password-encrypted and `needsKey` says the work touches encrypted entries, the
 * password comes from $BFC_PASSWORD or a prompt. Without any, the container opens without a key
 * and each encrypted entry fails on its own (KEY_REQUIRED), as the reference reports it.
 */
export async function openWithCredentials(
  ctx: Ctx,
  file: string,
  opts: SecretOptions,
  needsKey: (r: Reader) => boolean,
  extra: { commit?: number } = readerOptions(opts),
): Promise<Reader> {
  const explicit = await explicitCredentials(opts);
  const { Reader } = await import("../container/reader.ts");
  ctx.debug(`Opening container: ${file}`);
  if (explicit) return Reader.open(file, { ...explicit, ...extra });
  const r = await Reader.open(file, extra);
  warnTornTail(ctx, r);
  if (r.encryptionMode !== "password" || !needsKey(r)) return r;
  const pw = await implicitPassword(ctx, `'${file}'`);
  if (pw === undefined) return r;
  r.close();
  return Reader.open(file, { password: pw, ...extra });
}

/** A warning when the container ends in the leftovers of an interrupted commit (readers skip them). */
export function warnTornTail(ctx: Ctx, r: Reader): void {
  if (r.tornTail > 0) {
    ctx.warn(
      `${r.tornTail} bytes after the last complete commit belong to an interrupted commit; 'bfc recover' removes them`,
    );
  }
}

/** Whether an error means the key is wrong or missing (rather than the data being damaged). */
export function isKeyProblem(e: unknown): boolean {
  return (
    e instanceof BfcError &&
    (e.reason === "KEY_REQUIRED" ||
      e.reason === "BAD_KEY" ||
      (e.reason === "AUTH_FAILED" && e.code === "EACCES"))
  );
}
