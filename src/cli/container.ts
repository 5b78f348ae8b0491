/**
 * `bfc container create|start|run|state|logs|stop|delete|checkpoint|restore|checkpoints|list|backends`: OCI bundles stored as
 * containers (or plain folders), mounted read-only with a writable overlay and run by an OCI
 * runtime (runc). The configuration comes from --config, else $BFC_CONFIG, else the per-user file
 * (docs/cli.md has the schema).
 */
import fs from "node:fs";
import module from "node:module";
import { constants as osConstants } from "node:os";
import { type Command, Option } from "commander";
import type { ContainerInfo } from "../runtime/backend.ts";
import type { BackendManager } from "../runtime/manager.ts";
import { checkId } from "../runtime/oci-spec.ts";
import { type Ctx, intOption, printJson, run, UsageError, writeOut } from "./common.ts";
import { humanSize } from "./format.ts";

interface GroupOptions {
  config?: string;
}

/** The manager for a command; a malformed id is a usage error (exit 2), checked first. */
async function manager(cmd: Command, id?: string): Promise<BackendManager> {
  if (id !== undefined) {
    try {
      checkId(id);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  // The runtime, container and FUSE modules load below: compile them once, not at every command
  // (most of a `start`'s CPU time is otherwise spent compiling; Node keys the cache by content).
  module.enableCompileCache?.();
  const { config } = cmd.optsWithGlobals() as GroupOptions;
  const { BackendManager } = await import("../runtime/manager.ts");
  return BackendManager.open({ file: config });
}

/** A signal name (TERM, SIGTERM) or number, as runc takes it: SIGTERM. */
export function parseSignal(s: string): string {
  const signals = osConstants.signals as Record<string, number>;
  if (/^\d+$/.test(s)) {
    const name = Object.keys(signals).find((k) => signals[k] === Number(s));
    if (!name) throw new UsageError(`unknown signal number ${s}`);
    return name;
  }
  const name = s.toUpperCase().startsWith("SIG") ? s.toUpperCase() : `SIG${s.toUpperCase()}`;
  if (!(name in signals)) throw new UsageError(`unknown signal '${s}'`);
  return name;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Prints the log; with `follow`, keeps printing what is appended until the container stops. */
async function logs(ctx: Ctx, m: BackendManager, id: string, follow: boolean): Promise<number> {
  const file = m.logFile(id);
  ctx.flush();
  let pos = 0;
  const drain = async (): Promise<number> => {
    let fd: number;
    try {
      fd = fs.openSync(file, "r");
    } catch {
      return 0;
    }
    let n = 0;
    try {
      const buf = Buffer.alloc(256 * 1024);
      for (;;) {
        const got = fs.readSync(fd, buf, 0, buf.length, pos);
        if (got === 0) break;
        pos += got;
        n += got;
        await writeOut(buf.subarray(0, got));
      }
    } finally {
      fs.closeSync(fd);
    }
    return n;
  };
  await drain();
  if (!follow) return 0;
  let stop = false;
  const onSig = () => {
    stop = true;
  };
  process.once("SIGINT", onSig);
  try {
    while (!stop) {
      const s = await m.state(id);
      const running = s.status === "running" || s.status === "created" || s.status === "creating";
      const n = await drain();
      if (!running && n === 0) break;
      await sleep(200);
    }
  } finally {
    process.off("SIGINT", onSig);
  }
  return 0;
}

/** Left-aligned columns, the last one unpadded. */
function table(ctx: Ctx, head: string[], cells: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i] as number)))
      .join("  ")
      .trimEnd();
  ctx.print(line(head));
  for (const c of cells) ctx.print(line(c));
}

const isoSecond = (t: string): string => t.replace(/\.\d+Z$/, "Z");

function listTable(ctx: Ctx, rows: ContainerInfo[]): void {
  table(
    ctx,
    ["ID", "BACKEND", "STATUS", "PID", "SIZE", "CREATED", "CONTAINER"],
    rows.map((r) => [
      r.id,
      r.backend,
      r.status,
      r.pid === undefined ? "-" : String(r.pid),
      humanSize(r.diskBytes),
      isoSecond(r.created),
      r.artifact,
    ]),
  );
}

export function register(program: Command): void {
  const group = program
    .command("container")
    .description("create, run and manage OCI containers whose root filesystem is a BFC container")
    .option(
      "--config <file>",
      "runtime configuration (default: $BFC_CONFIG, else ~/.config/bfcfs/config.json)",
    )
    .addHelpText(
      "after",
      `
Needs root, an OCI runtime (runc) and, for the bfc backend, FUSE. Exit codes: 0 success, 1 failure,
2 usage; 'run' exits with the container process's status. See docs/cli.md for the configuration.

Examples:
  bfc container create web --bundle ./bundle        # pack ./bundle/rootfs into <container_path>/web.bfc
  bfc container start web && bfc container logs -f web
  bfc container state web                            # OCI state JSON
  bfc container stop --timeout 5 web && bfc container delete web
  bfc container run --bundle ./bundle job            # create if needed, run attached, exit with its status
  bfc container checkpoint --name v1 web             # the writable layer becomes commit N of web.bfc
  bfc container restore --from v1 web                # start again from that checkpoint`,
    );

  group
    .command("create")
    .description("pack an OCI bundle into a new container (or adopt an existing container file)")
    .argument("<id>", "container id: letters, digits, '_', '.', '-'")
    .option("-b, --bundle <dir>", "the OCI bundle (config.json and its root.path)")
    .option("--backend <name>", "storage backend (default: runtime.default_backend)")
    .action((id: string, o: { bundle?: string; backend?: string }, c: Command) =>
      run(c, async (ctx) => {
        const m = await manager(c, id);
        const s = await m.create(id, o);
        ctx.say(`created ${id} (${s.bfcfs.backend}: ${s.bfcfs.artifact})`);
        return 0;
      }),
    );

  group
    .command("start")
    .description("mount the container's root and start its process in the background")
    .argument("<id>")
    .action((id: string, _o: unknown, c: Command) =>
      run(c, async (ctx) => {
        const m = await manager(c, id);
        const s = await m.start(id);
        ctx.say(`started ${id}${s.pid ? ` (pid ${s.pid})` : ""}; output: bfc container logs ${id}`);
        return 0;
      }),
    );

  group
    .command("run")
    .description("create the container if needed, run it attached, exit with its process's status")
    .argument("<id>")
    .option("-b, --bundle <dir>", "the OCI bundle to create it from when it does not exist")
    .option("--backend <name>", "storage backend for a new container")
    .action((id: string, o: { bundle?: string; backend?: string }, c: Command) =>
      run(c, async (ctx) => {
        const m = await manager(c, id);
        ctx.flush();
        const forward: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
        let send: ((sig: NodeJS.Signals) => void) | null = null;
        const onSignal = (sig: NodeJS.Signals) => send?.(sig);
        // Signals go to the container (runc forwards them to the process); the exit status tells the end.
        for (const s of forward) process.on(s, onSignal);
        try {
          return await m.run(id, {
            ...o,
            io: { stdin: "inherit", stdout: process.stdout, stderr: process.stderr },
            onStarted: (signal) => {
              send = signal;
            },
          });
        } finally {
          for (const s of forward) process.off(s, onSignal);
        }
      }),
    );

  group
    .command("state")
    .description("print the OCI state of a container as JSON")
    .argument("<id>")
    .action((id: string, _o: unknown, c: Command) =>
      run(c, async (ctx) => {
        const m = await manager(c, id);
        printJson(ctx, await m.state(id));
        return 0;
      }),
    );

  group
    .command("logs")
    .description("print the output of a container's process")
    .argument("<id>")
    .option("-f, --follow", "keep printing new output until the container stops")
    .action((id: string, o: { follow?: boolean }, c: Command) =>
      run(c, async (ctx) => logs(ctx, await manager(c, id), id, o.follow === true)),
    );

  group
    .command("stop")
    .description("signal the process, wait, then SIGKILL; unmount the root")
    .argument("<id>")
    .option("-t, --timeout <seconds>", "seconds to wait before SIGKILL (default: runtime.stop_timeout, 10)")
    .option("-s, --signal <sig>", "first signal (default SIGTERM)")
    .action((id: string, o: { timeout?: string; signal?: string }, c: Command) =>
      run(c, async (ctx) => {
        const timeout = intOption(o.timeout, "--timeout", 0, 3600);
        const signal = o.signal === undefined ? undefined : parseSignal(o.signal);
        const m = await manager(c, id);
        await m.stop(id, { timeout, signal });
        ctx.say(`stopped ${id}`);
        return 0;
      }),
    );

  group
    .command("delete")
    .description("unmount everything and remove the container's state and file")
    .argument("<id>")
    .option("-f, --force", "stop a running container first (SIGKILL)")
    .option("--keep", "keep the container file (create it again later without --bundle)")
    .action((id: string, o: { force?: boolean; keep?: boolean }, c: Command) =>
      run(c, async (ctx) => {
        const m = await manager(c, id);
        await m.delete(id, o);
        ctx.say(`deleted ${id}`);
        return 0;
      }),
    );

  group
    .command("checkpoint")
    .description("commit the writable layer into the container file (a named checkpoint)")
    .argument("<id>")
    .option("-n, --name <name>", "checkpoint name (default checkpoint-<commit>)")
    .action((id: string, o: { name?: string }, c: Command) =>
      run(c, async (ctx) => {
        const m = await manager(c, id);
        const r = await m.checkpoint(id, o);
        ctx.say(
          `checkpoint ${r.name} of ${id}: commit ${r.commit} (${r.files} files, ${r.directories} directories, ${r.symlinks} symlinks, ${r.removed} removed${r.frozen ? "; frozen while read" : ""})`,
        );
        for (const p of r.skipped) ctx.warn(`skipped '${p}': a container holds no devices, FIFOs or sockets`);
        return 0;
      }),
    );

  group
    .command("restore")
    .description("start the container from a checkpoint (or a commit number)")
    .argument("<id>")
    .requiredOption("--from <checkpoint>", "a checkpoint's name, or a commit number (1 = as created)")
    .action((id: string, o: { from: string }, c: Command) =>
      run(c, async (ctx) => {
        const m = await manager(c, id);
        const s = await m.restore(id, o.from);
        ctx.say(`restored ${id} from ${o.from}${s.pid ? `; started (pid ${s.pid})` : ""}`);
        return 0;
      }),
    );

  group
    .command("checkpoints")
    .description("list a container's commits and checkpoints, newest first")
    .argument("<id>")
    .option("--json", "print JSON")
    .action((id: string, o: { json?: boolean }, c: Command) =>
      run(c, async (ctx) => {
        const m = await manager(c, id);
        const rows = await m.checkpoints(id);
        if (o.json) printJson(ctx, rows);
        else {
          table(
            ctx,
            ["COMMIT", "CHECKPOINT", "TIME"],
            rows.map((r) => [
              String(r.commit),
              r.name ?? (r.message ? `(${r.message})` : r.commit === 1 ? "(created)" : "-"),
              r.time ? isoSecond(r.time) : "-",
            ]),
          );
        }
        return 0;
      }),
    );

  group
    .command("list")
    .description("list containers with their backend and status")
    .option("--json", "print JSON")
    .action((o: { json?: boolean }, c: Command) =>
      run(c, async (ctx) => {
        const m = await manager(c);
        const rows = await m.list();
        if (o.json) printJson(ctx, rows);
        else listTable(ctx, rows);
        return 0;
      }),
    );

  group
    .command("backends")
    .description("list the storage backends, whether enabled and usable here")
    .addOption(new Option("--json", "print JSON"))
    .action((o: { json?: boolean }, c: Command) =>
      run(c, async (ctx) => {
        const m = await manager(c);
        const rows = m.discover();
        if (o.json) printJson(ctx, rows);
        else {
          for (const b of rows) {
            const what = !b.enabled ? "disabled" : b.unavailable ? `unavailable: ${b.unavailable}` : "ok";
            ctx.print(`${b.name}${b.default ? " (default)" : ""}: ${what}`);
          }
        }
        return 0;
      }),
    );
}
