#!/usr/bin/env node
/**
 * The `bfc` command: create, list, extract, info, verify, digest, cat, stat, add, rm, mv, log, recover,
 * compact, limits, sign, keygen, mount, umount, disk, import, container. Compatible with the reference
 * C tool's options and output (docs/cli.md lists every deliberate difference). Exit codes: 0 success,
 * 1 operational failure, 2 usage error. Each command's module loads the library parts it needs only
 * when it runs, so `bfc list` never loads the writer, the worker pool or the progress bar.
 */
import fs from "node:fs";
import module from "node:module";
import { Command, CommanderError } from "commander";
import { rewriteVerifyProgress } from "./argv.ts";
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from "./common.ts";

// The library parts a command loads from here on are compiled once and cached on disk (Node's
// compile cache, in the temp directory): later runs start faster.
module.enableCompileCache?.();

function versionText(): string {
  let v = "unknown";
  try {
    const pkg = JSON.parse(fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
    v = String(pkg.version);
  } catch {
    // a copy without its package.json
  }
  return [
    `bfc version ${v}`,
    "BFC v1 container tool (bfcfs, TypeScript; compatible with the reference bfc 1.0.0)",
    `Apache-2.0 licensed; running on Node.js ${process.versions.node}`,
  ].join("\n");
}

interface CommandModule {
  register(program: Command): void;
}

/**
 * Every command's module, in the order help lists them. Loaded on demand: a command run by name
 * loads only its own (the others' code costs a noticeable part of starting, which `bfc mount`
 * pays twice: once here and once in its serving process).
 */
const COMMANDS: [string[], () => Promise<CommandModule>][] = [
  [["create"], () => import("./create.ts")],
  [["list"], () => import("./list.ts")],
  [["extract"], () => import("./extract.ts")],
  [["info"], () => import("./info.ts")],
  [["verify"], () => import("./verify.ts")],
  [["digest"], () => import("./digest.ts")],
  [["cat"], () => import("./cat.ts")],
  [["stat"], () => import("./stat.ts")],
  [["add"], () => import("./add.ts")],
  [["rm"], () => import("./rm.ts")],
  [["mv"], () => import("./mv.ts")],
  [["log"], () => import("./log.ts")],
  [["recover"], () => import("./recover.ts")],
  [["compact"], () => import("./compact.ts")],
  [["limits"], () => import("./limits.ts")],
  [["sign", "keygen"], () => import("./sign.ts")],
  [["mount"], () => import("./mount.ts")],
  [["umount"], () => import("./umount.ts")],
  [["disk"], () => import("./disk.ts")],
  [["import"], () => import("./import.ts")],
  [["container"], () => import("./container.ts")],
];

/** The command `argv` runs, when it names one before anything else; undefined otherwise. */
function commandOf(argv: string[]): string | undefined {
  for (const a of argv) {
    // Help asked for before the command lists every command.
    if (a === "--" || a === "-h" || a === "--help") return undefined;
    if (a.startsWith("-")) continue;
    return COMMANDS.some(([names]) => names.includes(a)) ? a : undefined;
  }
  return undefined;
}

/** The program with the command `only` (when given and known) or every command. */
export async function buildProgram(
  only?: string,
): Promise<{ program: Command; current: () => string | null }> {
  const modules = await Promise.all(
    COMMANDS.filter(([names]) => only === undefined || names.includes(only)).map(([, load]) => load()),
  );
  let current: string | null = null;
  const program = new Command("bfc");
  program
    .description("Create, list, extract and verify BFC v1 single-file containers.")
    .usage("[options] <command> [command-options] [arguments]")
    .option("-v, --verbose", "print extra 'Verbose:' lines on stderr")
    .option("-q, --quiet", "no progress chatter on stdout (listings, contents and JSON are still printed)")
    .version(versionText(), "--version", "show version information")
    .helpOption("-h, --help", "show help")
    .helpCommand("help [command]", "show help for a command")
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .configureOutput({ outputError: () => {} })
    .hook("preSubcommand", (_self, sub) => {
      current = sub.name();
    })
    .addHelpText(
      "after",
      `
Options may appear anywhere; '--' ends them. Exit codes: 0 success, 1 failure (not found, corrupt,
wrong key, partial extraction), 2 usage error. Passwords: -e/-p PASS, --password-file F, $BFC_PASSWORD,
or a prompt on a terminal. See docs/cli.md.

Examples:
  bfc create archive.bfc ~/docs notes.txt
  bfc list -l archive.bfc
  bfc extract -k -C out archive.bfc
  bfc verify --deep archive.bfc
  bfc cat archive.bfc docs/readme.txt
  bfc mount archive.bfc /mnt/archive && bfc umount /mnt/archive
  bfc import --partition 1 -c zstd vm.qcow2 rootfs.bfc
  bfc container run --bundle ./bundle job   # an OCI bundle stored in job.bfc, run by runc`,
    );
  for (const m of modules) m.register(program);
  return { program, current: () => current };
}

function nodeTooOld(): boolean {
  const [major, minor] = process.versions.node.split(".").map(Number);
  return major < 24 || (major === 24 && minor < 7);
}

async function flushStdout(): Promise<void> {
  await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
}

async function main(argv: string[]): Promise<number> {
  if (nodeTooOld()) {
    process.stderr.write(
      `bfc: needs Node.js 24.7 or later, this is ${process.versions.node} (UNSUPPORTED)\n`,
    );
    return EXIT_FAILURE;
  }
  const args = rewriteVerifyProgress(argv);
  const { program, current } = await buildProgram(commandOf(args));
  try {
    await program.parseAsync(args, { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : EXIT_OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version") return EXIT_OK;
      // Help asked for (`bfc help list`) exits 0; help shown for want of a command exits 2.
      if (e.code === "commander.help") return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
      const cmd = current();
      const what = e.message
        .replace(/^error: /, "")
        .replace(/\. Expected/, ": expected")
        .replace(/\.$/, "");
      const hint = cmd ? `; see 'bfc ${cmd} --help'` : "; see 'bfc --help'";
      process.stderr.write(`bfc: ${cmd ? `${cmd}: ` : ""}${what}${hint} (USAGE)\n`);
      return EXIT_USAGE;
    }
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`bfc: internal error: ${msg} (BUG)\n`);
    return EXIT_FAILURE;
  }
}

process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  // The reader went away (`bfc list x.bfc | head`): stop quietly.
  if (e.code === "EPIPE") process.exit(typeof process.exitCode === "number" ? process.exitCode : EXIT_OK);
  throw e;
});

const code = await main(process.argv.slice(2));
await flushStdout();
process.exit(code);
