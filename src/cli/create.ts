/**
 * `bfc create [-f] [-c none|zstd|auto] [-l N] [-t N] [-b N] [-e PASS | -k KEYFILE | …] <container> <inputs…>`.
 * Each input is stored under its base name (a directory with everything beneath it, a symlink as a
 * symlink). The container is written to a temporary file and moved into place only when complete:
 * a failed or interrupted create leaves nothing behind and never harms an existing container.
 */
import fs from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import type { Compression, Writer } from "../container/writer.ts";
import { fromSystemError } from "../errors.ts";
import { CliError, type Ctx, intOption, run, UsageError } from "./common.ts";
import { hex8 } from "./format.ts";
import { type CreateSecretOptions, createCredentials, PASSWORD_ENV } from "./password.ts";
import { Progress, progressAllowed } from "./progress.ts";

export interface CreateOptions extends CreateSecretOptions {
  force?: boolean;
  compression?: string;
  compressionLevel?: string;
  compressionThreshold?: string;
  blockSize?: string;
  progress?: boolean;
}

export interface Input {
  arg: string;
  name: string;
  st: fs.BigIntStats;
}

/** The name an input is stored under: its base name after trailing slashes, as the reference. */
export function storedName(arg: string): string {
  const trimmed = arg.replace(/\/+$/, "");
  const base = path.basename(trimmed);
  if (trimmed === "" || base === "." || base === ".." || base === "") {
    throw new UsageError(
      `input '${arg}' has no name to store it under; name the directory itself (e.g. ../dir)`,
    );
  }
  return base;
}

/**
 * The inputs with the names they are stored under (below `into` when given), checked before anything
 * is written: each exists, and no two would be stored under the same name.
 */
export function collectInputs(args: string[], into?: string): Input[] {
  const inputs: Input[] = [];
  const names = new Map<string, string>();
  for (const arg of args) {
    const base = storedName(arg);
    const name = into ? `${into.replace(/\/+$/, "")}/${base}` : base;
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(arg, { bigint: true });
    } catch (e) {
      throw fromSystemError(e, `cannot access '${arg}'`, arg);
    }
    const prev = names.get(name);
    if (prev !== undefined) {
      throw new CliError(`inputs '${prev}' and '${arg}' would both be stored as '${name}'`, "DUPLICATE_PATH");
    }
    names.set(name, arg);
    inputs.push({ arg, name, st });
  }
  return inputs;
}

/** The input directory that holds `dir` (a real path), or undefined: a container there would store itself. */
export function inputHolding(inputs: Input[], dir: string): Input | undefined {
  for (const i of inputs) {
    if (!i.st.isDirectory()) continue;
    const real = realDir(i.arg);
    if (real !== null && inside(dir, real)) return i;
  }
  return undefined;
}

function inside(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep);
}

function realDir(p: string): string | null {
  try {
    return fs.realpathSync(p);
  } catch {
    return null;
  }
}

/** Files and bytes under the inputs, for the progress bar's totals (only computed when a bar may be shown). */
function measure(inputs: Input[]): { bytes: number; entries: number } {
  let bytes = 0;
  let entries = 0;
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const full = path.join(dir, n);
      let st: fs.Stats;
      try {
        st = fs.lstatSync(full);
      } catch {
        continue;
      }
      entries++;
      if (st.isFile()) bytes += st.size;
      else if (st.isDirectory()) walk(full);
    }
  };
  for (const i of inputs) {
    entries++;
    if (i.st.isFile()) bytes += Number(i.st.size);
    else if (i.st.isDirectory()) walk(i.arg);
  }
  return { bytes, entries };
}

async function create(ctx: Ctx, container: string, args: string[], o: CreateOptions): Promise<number> {
  const compression = (o.compression ?? "none") as Compression;
  if (!["none", "zstd", "auto"].includes(compression)) {
    throw new UsageError(`-c/--compression must be none, zstd or auto, got '${o.compression}'`);
  }
  const level = intOption(o.compressionLevel, "-l/--compression-level", 1, 22);
  const threshold = intOption(o.compressionThreshold, "-t/--compression-threshold", 0, 1024 * 1024);
  const blockSize = intOption(o.blockSize, "-b/--block-size", 1, 1024 * 1024);

  const inputs = collectInputs(args);
  const target = path.resolve(container);
  let existing: fs.Stats | null = null;
  try {
    existing = fs.statSync(target);
  } catch {
    existing = null;
  }
  if (existing && !o.force) {
    throw new CliError(`container '${container}' already exists; use -f to overwrite`, "ALREADY_EXISTS");
  }
  if (existing?.isDirectory()) {
    throw new CliError(`'${container}' is a directory`, "EISDIR");
  }
  const targetDir = realDir(path.dirname(target));
  if (targetDir === null) {
    throw new CliError(`cannot create '${container}': its directory does not exist`, "ENOENT");
  }
  const holder = inputHolding(inputs, targetDir);
  if (holder) {
    throw new UsageError(
      `the container '${container}' would be inside the input '${holder.arg}'; write it elsewhere`,
    );
  }

  const creds = await createCredentials(ctx, o);
  if (o.encrypt !== undefined)
    ctx.debug(
      `the password is visible to other users on the command line; $${PASSWORD_ENV} or --password-file avoid that`,
    );
  const { Writer } = await import("../container/writer.ts");
  const progress = progressAllowed(ctx, o.progress)
    ? new Progress(ctx, measure(inputs), { label: "Adding", force: o.progress })
    : null;
  await progress?.ready();
  ctx.debug(
    `Creating container: ${container} (block size: ${blockSize ?? 4096}, compression: ${compression})`,
  );
  let w: Writer | null = null;
  const interrupted = () => {
    progress?.stop();
    ctx.error("interrupted; nothing was written", "ECANCELED");
    const done = () => process.exit(130);
    if (w) w.abort().then(done, done);
    else done();
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  try {
    w = await Writer.create(container, {
      overwrite: o.force === true,
      compression,
      level,
      threshold,
      blockSize,
      ...creds,
      onEntry: (e) => {
        if (e.type === "directory") ctx.say(`Added: ${e.path}/`);
        else if (e.type === "symlink") ctx.say(`Added: ${e.path} -> ${e.target}`);
        else ctx.say(`Added: ${e.path} (CRC32C: 0x${hex8(e.crc32c)})`);
      },
      onWarning: (message) => ctx.warn(message),
      onProgress: (p) => progress?.update(p.bytes, p.entries),
    });
    for (const i of inputs) {
      if (i.st.isDirectory()) {
        ctx.debug(`Adding directory: ${i.arg} -> ${i.name}`);
        await w.addTree(i.arg, i.name);
      } else if (i.st.isFile()) {
        ctx.debug(`Adding file: ${i.arg} -> ${i.name}`);
        await w.addFile(i.name, i.arg);
      } else if (i.st.isSymbolicLink()) {
        let linkTarget: Buffer;
        try {
          linkTarget = fs.readlinkSync(i.arg, { encoding: "buffer" });
        } catch (e) {
          throw fromSystemError(e, `cannot read link '${i.arg}'`, i.arg);
        }
        ctx.debug(`Adding symlink: ${i.arg} -> ${i.name}`);
        await w.addSymlink(i.name, linkTarget, { mode: Number(i.st.mode), mtime: i.st.mtimeNs });
      } else {
        ctx.warn(`skipped '${i.arg}': not a regular file, directory or symlink`);
      }
    }
    ctx.debug("Finalizing container...");
    const summary = await w.finish();
    progress?.stop();
    ctx.say(`Container '${container}' created successfully.`);
    ctx.debug(
      `${summary.entries} entries (${summary.files} files, ${summary.directories} directories, ${summary.symlinks} symlinks), ` +
        `${summary.bytesIn} bytes of content stored in ${summary.bytesStored} bytes, container ${summary.size} bytes`,
    );
    return 0;
  } catch (e) {
    progress?.stop();
    await w?.abort();
    throw e;
  } finally {
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
  }
}

export function register(program: Command): void {
  program
    .command("create")
    .description("create a container from files and directories")
    .argument("<container>", "the container to write")
    .argument("<inputs...>", "files, directories and symlinks, each stored under its base name")
    .option("-f, --force", "replace an existing container (only once the new one is complete)")
    .option("-c, --compression <type>", "none, zstd, or auto (zstd for files that gain from it)", "none")
    .option("-l, --compression-level <n>", "zstd level 1..22", "3")
    .option("-t, --compression-threshold <bytes>", "store files smaller than this uncompressed", "64")
    .option("-b, --block-size <bytes>", "block size recorded in the header, 1..1048576", "4096")
    .option(
      "-e, --encrypt <pass>",
      "encrypt with this password (visible to other users: prefer the options below)",
    )
    .option("-k, --keyfile <file>", "encrypt with the 32-byte key in <file>")
    .option("--password-file <file>", "encrypt with the password on the first line of <file> ('-' for stdin)")
    .option(
      "--ask-password",
      `encrypt with a password from $${PASSWORD_ENV}, else asked twice on the terminal`,
    )
    .option("--progress", "show a progress bar at once (default: only for long runs on a terminal)")
    .option("--no-progress", "never show a progress bar")
    .addHelpText(
      "after",
      `
Examples:
  bfc create archive.bfc ~/docs notes.txt        stores docs/..., notes.txt
  bfc create -f -c zstd -l 9 archive.bfc data/   replace archive.bfc, compress every file
  bfc create -c auto archive.bfc site/           compress only what gains from it
  bfc create --ask-password secret.bfc private/  encrypt; the password is asked for`,
    )
    .action((container: string, inputs: string[], opts: CreateOptions, c: Command) =>
      run(c, (ctx) => create(ctx, container, inputs, opts)),
    );
}
