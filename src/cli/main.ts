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
import * as add from "./add.ts";
import { rewriteVerifyProgress } from "./argv.ts";
import * as cat from "./cat.ts";
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from "./common.ts";
import * as compact from "./compact.ts";
import * as container from "./container.ts";
import * as create from "./create.ts";
import * as digest from "./digest.ts";
import * as disk from "./disk.ts";
import * as extract from "./extract.ts";
import * as importCmd from "./import.ts";
import * as info from "./info.ts";
import * as limits from "./limits.ts";
import * as list from "./list.ts";
import * as log from "./log.ts";
import * as mount from "./mount.ts";
import * as mv from "./mv.ts";
import * as recover from "./recover.ts";
import * as rm from "./rm.ts";
import * as sign from "./sign.ts";
import * as stat from "./stat.ts";
import * as umount from "./umount.ts";
import * as verify from "./verify.ts";

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

export function buildProgram(): { program: Command; current: () => string | null } {
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
  create.register(program);
  list.register(program);
  extract.register(program);
  info.register(program);
  verify.register(program);
  digest.register(program);
  cat.register(program);
  stat.register(program);
  add.register(program);
  rm.register(program);
  mv.register(program);
  log.register(program);
  recover.register(program);
  compact.register(program);
  limits.register(program);
  sign.register(program);
  mount.register(program);
  umount.register(program);
  disk.register(program);
  importCmd.register(program);
  container.register(program);
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
  const { program, current } = buildProgram();
  try {
    await program.parseAsync(rewriteVerifyProgress(argv), { from: "user" });
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
