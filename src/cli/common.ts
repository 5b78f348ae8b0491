/**
 * What every command shares: the global options, output to stdout/stderr (kept clear of a progress
 * bar), the one-line error format `bfc: <command>: <what> (<reason>)` and the exit codes.
 */
import type { Command } from "commander";
import { BfcError } from "../errors.ts";

export const EXIT_OK = 0;
/** Operational failure: corrupt, not found, wrong key, partial extraction, failed verification. */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A mistake in how the command was called (exit 2). */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A failure the CLI itself detects, with the reason shown in parentheses (exit 1). */
export class CliError extends Error {
  override name = "CliError";
  readonly reason: string;
  constructor(message: string, reason: string) {
    super(message);
    this.reason = reason;
  }
}

/** The command already reported its problems; only the exit code is left to set. */
export class Failed extends Error {
  override name = "Failed";
  readonly exitCode: number;
  constructor(exitCode = EXIT_FAILURE) {
    super("failed");
    this.exitCode = exitCode;
  }
}

/** Something that draws on stderr and must be cleared before other output. */
export interface Overlay {
  clear(): void;
  redraw(): void;
}

export interface GlobalOptions {
  verbose?: boolean;
  quiet?: boolean;
}

/** Per-invocation state: options, output helpers. */
export class Ctx {
  readonly command: string;
  readonly verbose: boolean;
  readonly quiet: boolean;
  overlay: Overlay | null = null;
  private chunks: string[] = [];
  private pending = 0;

  constructor(command: string, globals: GlobalOptions) {
    this.command = command;
    this.verbose = globals.verbose === true;
    this.quiet = globals.quiet === true && !this.verbose;
  }

  static of(cmd: Command): Ctx {
    // A subcommand of a command group is named with its group: `container create`.
    const group = cmd.parent?.parent ? `${cmd.parent.name()} ` : "";
    return new Ctx(`${group}${cmd.name()}`, cmd.optsWithGlobals() as GlobalOptions);
  }

  /** Primary output (listings, content): always printed. Buffered; call flush(). */
  print(line: string): void {
    this.chunks.push(line, "\n");
    this.pending += line.length + 1;
    if (this.pending >= 64 * 1024 || process.stdout.isTTY) this.flush();
  }

  /** Progress chatter on stdout (`Added: …`, `Extracted: …`): suppressed by -q. */
  say(line: string): void {
    if (!this.quiet) this.print(line);
  }

  /** Writes buffered stdout now. */
  flush(): void {
    if (this.chunks.length === 0) return;
    const text = this.chunks.join("");
    this.chunks = [];
    this.pending = 0;
    const overlay = process.stdout.isTTY ? this.overlay : null;
    overlay?.clear();
    process.stdout.write(text);
    overlay?.redraw();
  }

  /** `Verbose: …` on stderr with -v. */
  debug(message: string): void {
    if (this.verbose) this.stderr(`Verbose: ${message}`);
  }

  /** A warning on stderr; not an error, does not change the exit code. */
  warn(message: string): void {
    this.stderr(`bfc: ${this.command}: warning: ${message}`);
  }

  /** An error line in the standard format. */
  error(what: string, reason: string): void {
    this.stderr(`bfc: ${this.command}: ${what} (${reason})`);
  }

  /** Reports any thrown value as one error line. */
  report(e: unknown): void {
    const d = describe(e);
    this.error(d.what, d.reason);
    if (this.verbose && d.internal && e instanceof Error && e.stack) this.stderr(e.stack);
  }

  stderr(line: string): void {
    this.flush();
    this.overlay?.clear();
    process.stderr.write(`${line}\n`);
    this.overlay?.redraw();
  }
}

interface Described {
  what: string;
  reason: string;
  internal: boolean;
}

/** What a failure says in one line, and the word in parentheses after it. */
export function describe(e: unknown): Described {
  if (e instanceof CliError) return { what: e.message, reason: e.reason, internal: false };
  if (e instanceof UsageError) return { what: e.message, reason: "USAGE", internal: false };
  if (e instanceof BfcError) {
    return { what: cleanMessage(e), reason: e.reason === "IO_ERROR" ? e.code : e.reason, internal: false };
  }
  const sys = e as NodeJS.ErrnoException;
  if (sys && typeof sys.code === "string" && typeof sys.syscall === "string") {
    const where = sys.path ? ` '${sys.path}'` : "";
    return { what: `${sys.syscall}${where}: ${errnoText(sys)}`, reason: sys.code, internal: false };
  }
  const msg = e instanceof Error ? e.message : String(e);
  return { what: `internal error: ${msg}`, reason: "BUG", internal: true };
}

/** Node's "ENOENT: no such file or directory, open 'x'" → "no such file or directory". */
function errnoText(e: NodeJS.ErrnoException): string {
  const m = /^[A-Z0-9]+: ([^,]+)/.exec(e.message);
  return m ? m[1] : e.message;
}

/**
 * A BfcError's message without the Node error text it wraps: `cannot open 'x': ENOENT: no such
 * file or directory, open 'x'` becomes `cannot open 'x': no such file or directory`.
 */
function cleanMessage(e: BfcError): string {
  const cause = e.cause as NodeJS.ErrnoException | undefined;
  if (cause && typeof cause.message === "string" && e.message.endsWith(`: ${cause.message}`)) {
    return `${e.message.slice(0, e.message.length - cause.message.length - 2)}: ${errnoText(cause)}`;
  }
  return e.message;
}

/** Parses an integer option within bounds, or throws a usage error naming the option. */
export function intOption(
  value: string | undefined,
  name: string,
  min: number,
  max: number,
): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value.trim())) throw new UsageError(`${name} must be a whole number, got '${value}'`);
  const n = Number(value.trim());
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${name} must be between ${min} and ${max}, got ${value}`);
  }
  return n;
}

/** Writes to stdout respecting backpressure. */
export function writeOut(chunk: Uint8Array | string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ok = process.stdout.write(chunk, (err) => (err ? reject(err) : undefined));
    if (ok) resolve();
    else process.stdout.once("drain", resolve);
  });
}

/** The exit code for a failure thrown out of a command. */
export function exitCodeFor(e: unknown): number {
  if (e instanceof Failed) return e.exitCode;
  if (e instanceof UsageError) return EXIT_USAGE;
  return EXIT_FAILURE;
}

/**
 * Runs a command body: builds its context, turns what it throws into one error line and an exit
 * code (0, 1 or 2; a number returned by the body is used as the exit code).
 */
export async function run(cmd: Command, body: (ctx: Ctx) => Promise<number | undefined>): Promise<void> {
  const ctx = Ctx.of(cmd);
  try {
    process.exitCode = (await body(ctx)) ?? EXIT_OK;
  } catch (e) {
    process.exitCode = exitCodeFor(e);
    if (!(e instanceof Failed)) ctx.report(e);
  } finally {
    ctx.flush();
  }
}

/** JSON on stdout, one document. */
export function printJson(ctx: Ctx, value: unknown): void {
  ctx.print(JSON.stringify(value, null, 2));
}
