import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import { Worker } from "node:worker_threads";
import { BfcError } from "../errors.ts";
import { createVfs } from "../vfs/index.ts";
import { type MountOptions, Vfs } from "../vfs/vfs.ts";
import { MAX_IO, RequestHandler } from "./handler.ts";
import type { FromWorker, ToWorker, WorkerData } from "./kernel-worker.ts";
import type { FuseMount, FuseMountOptions } from "./mount.ts";
import { fuseMountpoints } from "./mountpoints.ts";
import { NodeTable } from "./node-table.ts";
import { replyWriter } from "./session.ts";
import { SharedNodeTable } from "./shared-node-table.ts";

/** One mount of a VFS recipe: `vfs.mount(type, target, options)`. */
export interface MountSpec {
  type: string;
  target: string;
  options: MountOptions;
  /**
   * The options serving threads mount with instead (e.g. a store's share() where this thread holds
   * the store itself); structured-cloneable.
   */
  threadOptions?: MountOptions;
}

/**
 * What a mount serves: a live VFS (answered on this thread), or the recipe of one, which worker
 * threads open each for themselves when the source is immutable, so that no request ever waits for
 * another thread.
 */
export type FuseSource = Vfs | { mounts: MountSpec[] };

/** Why the kernel protocol cannot be used here, or undefined when it can. */
export function kernelBackendUnavailable(): string | undefined {
  if (process.platform !== "linux") return "FUSE's kernel protocol is Linux's";
  if (process.getuid?.() !== 0) return "mounting without fusermount needs root";
  if (!fs.existsSync("/dev/fuse")) return "/dev/fuse is absent";
  return undefined;
}

const unsupported = (message: string, cause?: unknown) =>
  new BfcError("ENOTSUP", "UNSUPPORTED", message, { cause });

/** Runs a command to its end: exit status and stderr. */
function run(cmd: string, args: string[], stdio3?: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      stdio: stdio3 === undefined ? ["ignore", "ignore", "pipe"] : ["ignore", "ignore", "pipe", stdio3],
    });
    let stderr = "";
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (d: string) => {
      stderr += d;
    });
    child.on("error", (e) => resolve({ code: null, stderr: e.message }));
    child.on("close", (code) => resolve({ code, stderr: stderr.trim() }));
  });
}

/**
 * The mount itself: util-linux `mount -i` (no mount.fuse helper) makes the mount(2) call with the
 * /dev/fuse descriptor passed as its fd 3, as fusermount does for unprivileged users.
 */
async function mountSyscall(fuseFd: number, mp: string, options: FuseMountOptions): Promise<void> {
  const o = [
    "fd=3",
    "rootmode=40000",
    `user_id=${process.getuid?.() ?? 0}`,
    `group_id=${process.getgid?.() ?? 0}`,
    `max_read=${MAX_IO}`,
  ];
  if (options.immutable) o.push("ro");
  if (options.allowOther) o.push("allow_other", "default_permissions");
  const source = options.fsname ?? "bfc";
  const r = await run("mount", ["-i", "-t", "fuse.bfc", "-o", o.join(","), source, mp], fuseFd);
  if (r.code !== 0) throw unsupported(`cannot mount at '${mp}': mount: ${r.stderr || `exit ${r.code}`}`);
}

/**
 * Lets the kernel read ahead 1 MiB (FUSE requests can now be that large; the default is 128 KiB),
 * so sequential reads go out in 1 MiB requests. Best effort: only root can.
 */
function raiseReadahead(mp: string): void {
  try {
    for (const line of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
      const f = line.split(" ");
      if (f[4] === mp && f[2])
        fs.writeFileSync(`/sys/class/bdi/${f[2]}/read_ahead_kb`, String(MAX_IO / 1024));
    }
  } catch {
    // left at the default
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } {
  let resolve: () => void = () => {};
  let reject: (e: Error) => void = () => {};
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

function workerFile(): URL {
  const ext = import.meta.url.endsWith(".ts") ? ".ts" : ".js";
  return new URL(`./kernel-worker${ext}`, import.meta.url);
}

/**
 * Serves `source` at `mp` (checked by the caller) by speaking the FUSE kernel protocol directly:
 * /dev/fuse is opened here, mounted with `mount -i`, and read by worker threads with blocking
 * reads. For an immutable recipe, one thread per core each answers from its own VFS (node ids come
 * from a table in shared memory); reads that must wait (a large compressed file without a decoded
 * copy yet) go to this thread, which has its own VFS too. Otherwise one thread reads requests and
 * this thread answers them all. Resolves once the kernel's INIT is answered; throws an
 * UNSUPPORTED BfcError when /dev/fuse or the mount itself is refused (the caller may fall back).
 */
export async function mountKernel(
  source: FuseSource,
  mp: string,
  options: FuseMountOptions,
): Promise<FuseMount> {
  const log = options.debug ? (line: string) => process.stderr.write(`${line}\n`) : undefined;
  const recipe = source instanceof Vfs ? undefined : source;
  const threaded = recipe !== undefined && options.immutable === true;
  const threads = threaded ? Math.max(1, Math.min(options.threads ?? os.availableParallelism(), 16)) : 1;

  let fuseFd: number;
  try {
    fuseFd = fs.openSync("/dev/fuse", "r+");
  } catch (e) {
    throw unsupported(`cannot open /dev/fuse: ${(e as Error).message}`, e);
  }

  let ready = 0;
  let exited = 0;
  let pending = 0;
  let initDone = false;
  let finished = false;
  let mainHandler: RequestHandler | undefined;
  let resolveClosed: () => void = () => {};
  const closed = new Promise<void>((r) => {
    resolveClosed = r;
  });
  const whenReady = deferred();
  const whenInit = deferred();
  const setupFailed = (e: Error) => {
    if (initDone) {
      log?.(`bfc mount: a serving thread failed: ${e.message}`);
      return;
    }
    whenReady.reject(e);
    whenInit.reject(e);
  };

  const finish = () => {
    if (finished || exited < threads || pending > 0) return;
    finished = true;
    // Only now: a reply written after the descriptor is closed could land in a reused one.
    fs.closeSync(fuseFd);
    void (async () => {
      if (recipe && vfs) await vfs.unmountAll().catch(() => {});
      resolveClosed();
    })();
  };

  const answer = (request: Uint8Array) => {
    const b = Buffer.from(request.buffer, request.byteOffset, request.byteLength);
    const r = (mainHandler as RequestHandler).handle(b, b.length);
    if (r) {
      pending++;
      r.catch((e: unknown) => log?.(`bfc mount: ${(e as Error).message}`)).finally(() => {
        pending--;
        finish();
      });
    }
  };

  const data: WorkerData = {
    role: threaded ? "serve" : "pump",
    fuseFd,
    mounts: recipe?.mounts,
    handler: {
      immutable: options.immutable === true,
      uid: options.uid,
      gid: options.gid,
      readdirplus: options.readdirplus,
      debug: options.debug,
    },
  };
  const workers: Worker[] = [];
  for (let k = 0; k < threads; k++) {
    // A roomy young generation: a listing's objects live for one request and should die young
    // instead of being copied between semi-spaces and promoted.
    const w = new Worker(workerFile(), {
      workerData: data,
      resourceLimits: { maxYoungGenerationSizeMb: 64 },
    });
    w.on("message", (m: FromWorker) => {
      switch (m.type) {
        case "ready":
          if (++ready === threads) whenReady.resolve();
          return;
        case "failed":
          setupFailed(
            new BfcError((m.code as "EIO") ?? "EIO", (m.reason as "IO_ERROR") ?? "IO_ERROR", m.message),
          );
          return;
        case "init":
          initDone = true;
          whenInit.resolve();
          return;
        case "forward":
        case "request":
          answer(m.request);
          return;
        case "done":
          return;
      }
    });
    w.on("error", setupFailed);
    w.on("exit", () => {
      exited++;
      if (!initDone)
        setupFailed(new BfcError("EIO", "IO_ERROR", "a serving thread ended before the mount was ready"));
      finish();
    });
    workers.push(w);
  }

  let vfs: Vfs | undefined = source instanceof Vfs ? source : undefined;
  let mounted = false;
  try {
    if (recipe) {
      vfs = createVfs();
      for (const m of recipe.mounts) await vfs.mount(m.type, m.target, m.options);
    }
    const v = vfs as Vfs;
    const nodes = threaded ? SharedNodeTable.create(nodeBound(v)) : new NodeTable();
    mainHandler = new RequestHandler(v, nodes, replyWriter(fuseFd, log), {
      immutable: options.immutable === true,
      uid: options.uid,
      gid: options.gid,
      log,
      readdirplus: options.readdirplus,
      onInit: () => {
        initDone = true;
        whenInit.resolve();
      },
    });
    await mountSyscall(fuseFd, mp, options);
    mounted = true;
    await whenReady.promise;
    const go: ToWorker = { type: "go", nodes: nodes instanceof SharedNodeTable ? nodes.share() : undefined };
    for (const w of workers) w.postMessage(go);
    await whenInit.promise;
  } catch (e) {
    // Unmounting aborts the connection: workers blocked on /dev/fuse return and can be ended.
    finished = true;
    if (mounted) await run("umount", ["-i", "-l", mp]);
    await Promise.all(workers.map((w) => w.terminate()));
    fs.closeSync(fuseFd);
    if (recipe && vfs) await vfs.unmountAll().catch(() => {});
    throw e;
  }
  raiseReadahead(mp);
  log?.(`bfc mount: serving ${mp} with ${threaded ? `${threads} threads` : "one thread"} (kernel protocol)`);

  return {
    mountpoint: mp,
    backend: "kernel",
    closed,
    async unmount() {
      if (!finished && fuseMountpoints().has(mp)) {
        const r = await run("umount", ["-i", mp]);
        if (r.code !== 0 && fuseMountpoints().has(mp)) {
          const busy = /busy/i.test(r.stderr);
          throw new BfcError(busy ? "EBUSY" : "EIO", "IO_ERROR", `cannot unmount '${mp}': ${r.stderr}`, {
            path: mp,
          });
        }
      }
      await closed;
    },
  };
}

/** How many nodes a shared table must hold for `vfs`: its entries, with room for implied directories. */
function nodeBound(vfs: Vfs): number {
  let files = 0;
  try {
    files = (vfs.statfsSync("/") as fs.StatsFs).files;
  } catch {
    // unknown: the default below
  }
  return Math.max(65_536, files * 3 + 1024);
}
