import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import { Worker } from "node:worker_threads";
import { BfcError } from "../errors.ts";
import { loadBuiltinType } from "../vfs/type-loader.ts";
import type { MountOptions, Vfs } from "../vfs/vfs.ts";
import { cachedWorkerEntry, workerExecArgv, workerScript } from "../worker-script.ts";
import { Backlog, TICK_MS } from "./backlog.ts";
import { EIO } from "./errno.ts";
import type { RequestHandler } from "./handler.ts";
import type { FromWorker, ToWorker, WorkerData } from "./kernel-worker.ts";
import type { FuseMount, FuseMountOptions } from "./mount.ts";
import { fuseMountpoints } from "./mountpoints.ts";
import { getU64, MAX_IO, newOut, OUT_HEADER_SIZE, writeOutHeader } from "./protocol.ts";
import { RequestSlots } from "./request-slots.ts";
import { newReadBuffer, readFailure, replyWriter } from "./session.ts";
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
export type FuseSource = Vfs | Recipe;

/**
 * The mounts of a VFS, or a function preparing them (e.g. reading a container's index), which the
 * kernel backend calls while the mount(2) call is under way.
 */
export type Recipe = { mounts: MountSpec[] } | { prepare: () => Promise<MountSpec[]> };

const prepared = new WeakMap<Recipe, Promise<MountSpec[]>>();

/** A recipe's mounts (prepared once, however often asked). */
export function recipeMounts(recipe: Recipe): Promise<MountSpec[]> {
  if ("mounts" in recipe) return Promise.resolve(recipe.mounts);
  let p = prepared.get(recipe);
  if (!p) {
    p = recipe.prepare();
    prepared.set(recipe, p);
  }
  return p;
}

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

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: Error) => void } {
  let resolve: (v: T) => void = () => {};
  let reject: (e: Error) => void = () => {};
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/**
 * The serving thread's entry: Node's on-disk compile cache first (each thread loads and compiles
 * most of the library, which dominates the time to mount), then the worker module.
 */
function workerEntry(): string {
  return cachedWorkerEntry(workerScript(import.meta.url, "kernel-worker"));
}

/** WorkerData and resource limits every serving thread starts with. */
function newServingThread(workerData: WorkerData): Worker {
  // A roomy young generation: a listing's objects live for one request and should die young
  // instead of being copied between semi-spaces and promoted.
  // (Decoded copies a thread makes must outlive it: its descriptors are not closed when it ends.)
  return new Worker(workerEntry(), {
    eval: true,
    workerData,
    resourceLimits: { maxYoungGenerationSizeMb: 64 },
    trackUnmanagedFds: false,
    execArgv: workerExecArgv(),
  });
}

/** A recipe rather than a live VFS (a Vfs has a `mounts()` method; a recipe, `mounts` or `prepare`). */
export function isRecipe(source: FuseSource): source is Recipe {
  if (typeof (source as { prepare?: unknown }).prepare === "function") return true;
  return Array.isArray((source as { mounts?: unknown }).mounts);
}

/** A VFS made from a recipe, loading only the filesystem types it names. */
export async function openRecipe(recipe: Recipe, threadOptions = false): Promise<Vfs> {
  const { Vfs } = await import("../vfs/vfs.ts");
  const mounts = await recipeMounts(recipe);
  const types = await Promise.all([...new Set(mounts.map((m) => m.type))].map(loadBuiltinType));
  const vfs = new Vfs({ types });
  try {
    for (const m of mounts)
      await vfs.mount(m.type, m.target, (threadOptions && m.threadOptions) || m.options);
  } catch (e) {
    await vfs.unmountAll();
    throw e;
  }
  return vfs;
}

/**
 * Serves `source` at `mp` (checked by the caller) by speaking the FUSE kernel protocol directly:
 * /dev/fuse is opened here, mounted with `mount -i`, and read by worker threads with blocking
 * reads. An immutable recipe is served by one thread per core, each answering from its own VFS (node
 * ids come from a table in shared memory). This thread answers the kernel's INIT and the first
 * requests itself, from its own VFS of the recipe, until the first serving thread (started once
 * the mount is answered) takes over; the others start once they can help (see backlog.ts), so
 * mounting costs no thread start-up. Reads that must wait (a large compressed file without a
 * decoded copy yet) come back to this thread. A live or mutable VFS is answered by this thread,
 * one worker only reading requests. Resolves once the kernel's INIT is answered; throws an
 * UNSUPPORTED BfcError when /dev/fuse or the mount itself is refused (the caller may fall back).
 */
export async function mountKernel(
  source: FuseSource,
  mp: string,
  options: FuseMountOptions,
): Promise<FuseMount> {
  const log = options.debug ? (line: string) => process.stderr.write(`${line}\n`) : undefined;
  const recipe = isRecipe(source) ? source : undefined;
  const threaded = recipe !== undefined && options.immutable === true;
  const threads = threaded ? Math.max(1, Math.min(options.threads ?? os.availableParallelism(), 16)) : 1;
  let fuseFd: number;
  try {
    fuseFd = fs.openSync("/dev/fuse", "r+");
  } catch (e) {
    throw unsupported(`cannot open /dev/fuse: ${(e as Error).message}`, e);
  }

  let fdOpen = true;
  /** Once only: a second close could hit a descriptor number reused meanwhile. */
  const closeFuse = () => {
    if (!fdOpen) return;
    fdOpen = false;
    fs.closeSync(fuseFd);
  };
  const workers: Worker[] = [];
  let exited = 0;
  let pending = 0;
  let initDone = false;
  let finished = false;
  let nodes: SharedNodeTable | undefined;
  let mainVfs: Vfs | undefined = recipe ? undefined : (source as Vfs);
  let resolveClosed: () => void = () => {};
  const closed = new Promise<void>((r) => {
    resolveClosed = r;
  });
  const firstReady = deferred<void>();
  const whenInit = deferred<void>();
  const setupFailed = (e: Error) => {
    if (initDone) {
      log?.(`bfc mount: a serving thread failed: ${e.message}`);
      return;
    }
    firstReady.reject(e);
    whenInit.reject(e);
  };

  const finish = () => {
    if (finished || exited < workers.length || pending > 0 || mainReading) return;
    finished = true;
    // Only now: a reply written after the descriptor is closed could land in a reused one.
    closeFuse();
    void (async () => {
      if (recipe && mainVfs) await mainVfs.unmountAll().catch(() => {});
      resolveClosed();
    })();
  };

  // This thread's handler: every request of a live VFS, or the forwarded ones of a recipe.
  let main: Promise<RequestHandler> | undefined;
  const mainHandler = (): Promise<RequestHandler> => {
    main ??= (async () => {
      const { RequestHandler } = await import("./handler.ts");
      if (!mainVfs) mainVfs = await openRecipe(recipe as Recipe);
      // The table is sized by the source (a serving thread started later is told of it).
      if (threaded && !nodes) nodes = SharedNodeTable.create(nodeBound(filesOf(mainVfs)));
      const table = nodes
        ? SharedNodeTable.attach(nodes.share())
        : new (await import("./node-table.ts")).NodeTable();
      return new RequestHandler(mainVfs, table, replyWriter(fuseFd, log), {
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
    })();
    return main;
  };
  /** Answers a request; `done` runs once `b` is no longer needed (the handler copies what it keeps). */
  const answer = (b: Buffer, done?: () => void) => {
    pending++;
    mainHandler()
      .then(
        (h) => {
          try {
            return h.handle(b, b.length);
          } finally {
            done?.();
          }
        },
        (e: unknown) => {
          // No VFS to answer from: fail the request rather than leave its caller waiting.
          log?.(`bfc mount: ${(e as Error).message}`);
          failRequest(fuseFd, b, EIO);
          done?.();
        },
      )
      .catch((e: unknown) => log?.(`bfc mount: ${(e as Error).message}`))
      .finally(() => {
        pending--;
        finish();
      });
  };

  /** Answers a request with a handler at hand, synchronously as far as the request allows. */
  const answerWith = (h: RequestHandler, b: Buffer, n: number) => {
    let waiting: Promise<void> | undefined;
    try {
      waiting = h.handle(b, n);
    } catch (e) {
      log?.(`bfc mount: ${(e as Error).message}`);
    }
    if (!waiting) return;
    pending++;
    waiting
      .catch((e: unknown) => log?.(`bfc mount: ${(e as Error).message}`))
      .finally(() => {
        pending--;
        finish();
      });
  };

  const backlog = Backlog.memory();
  const slots = threaded ? undefined : RequestSlots.create();
  const data: WorkerData = {
    role: threaded ? "serve" : "pump",
    fuseFd,
    backlog,
    slots: slots?.share(),
    mounts: recipe && "mounts" in recipe ? recipe.mounts : undefined,
    handler: {
      immutable: options.immutable === true,
      uid: options.uid,
      gid: options.gid,
      readdirplus: options.readdirplus,
      debug: options.debug,
    },
  };
  const startWorker = (helper: boolean) => {
    const w = newServingThread({ ...data, helper });
    w.on("message", (m: FromWorker) => {
      switch (m.type) {
        case "ready":
          // Serving threads of a recipe start once the mount is answered (the node table exists);
          // the pump of a live VFS starts reading once the mount exists (/dev/fuse refuses reads
          // before).
          if (nodes) {
            if (!helper) threadServing = true;
            w.postMessage({ type: "go", nodes: nodes.share() } satisfies ToWorker);
          } else firstReady.resolve();
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
          answer(Buffer.from(m.request.buffer, m.request.byteOffset, m.request.byteLength));
          return;
        case "slot": {
          const k = m.slot;
          answer((slots as RequestSlots).view(k, m.length), () => (slots as RequestSlots).release(k));
          return;
        }
        case "done":
          return;
      }
    });
    w.on("error", setupFailed);
    w.on("exit", () => {
      exited++;
      // helpers waiting for a backlog end with the first thread
      if (!helper) new Backlog(backlog).done();
      if (!initDone)
        setupFailed(new BfcError("EIO", "IO_ERROR", "a serving thread ended before the mount was ready"));
      finish();
    });
    workers.push(w);
    return w;
  };

  /** Whether the first serving thread reads requests now (this thread then stops). */
  let threadServing = false;
  /** Whether this thread has a read of /dev/fuse under way (libuv's pool does it). */
  let mainReading = false;
  /**
   * This thread answers the kernel (INIT, then whatever comes) until the first serving thread is
   * up. Starting a thread costs ~100 ms of CPU, most of it while the mount is set up on two busy
   * cores, so the thread is started only once the mount is answered. Reads go through libuv's
   * pool: the event loop stays free for signals and for requests that must wait.
   */
  const serveHere = (h: RequestHandler) => {
    const buf = newReadBuffer();
    const stop = () => {
      mainReading = false;
      finish();
    };
    const next = () => {
      if (threadServing || finished) return stop();
      mainReading = true;
      fs.read(fuseFd, buf, 0, buf.length, null, (err, n) => {
        // Set up failed meanwhile: the descriptor may be closed (its number reused).
        if (finished) return stop();
        if (err) {
          const failed = readFailure(err);
          if (failed === "retry") return next();
          if (failed === "error") log?.(`bfc mount: ${err.message}`);
          return stop();
        }
        if (n === 0) return stop();
        // The handler copies what it keeps: the buffer can take the next request at once.
        answerWith(h, buf, n);
        next();
      });
    };
    next();
  };

  let mounted = false;
  let syscall: Promise<void> | undefined;
  const mountNow = () => {
    syscall ??= mountSyscall(fuseFd, mp, options).then(() => {
      mounted = true;
    });
    return syscall;
  };
  try {
    if (recipe && "prepare" in recipe) {
      // The recipe is prepared (a container's index read) while `mount` runs: the kernel queues
      // its INIT until it is read.
      mountNow().catch(() => {});
      data.mounts = await recipeMounts(recipe);
    }
    if (threaded) {
      const h = await mainHandler();
      await mountNow();
      serveHere(h);
      await whenInit.promise;
      startWorker(false);
    } else {
      const first = startWorker(false);
      await mainHandler();
      await mountNow();
      await firstReady.promise;
      first.postMessage({ type: "go" } satisfies ToWorker);
      await whenInit.promise;
    }
  } catch (e) {
    // Unmounting aborts the connection: workers blocked on /dev/fuse return and can be ended.
    finished = true;
    await syscall?.catch(() => {});
    if (mounted) await run("umount", ["-i", "-l", mp]);
    await Promise.all(workers.map((w) => w.terminate()));
    closeFuse();
    if (recipe && mainVfs) await mainVfs.unmountAll().catch(() => {});
    throw e;
  }
  if (threads > 1) {
    const demand = new Backlog(backlog);
    const tick = setInterval(() => {
      if (finished || demand.isDone) clearInterval(tick);
      else if (demand.helpersWanted()) {
        clearInterval(tick);
        for (let k = 1; k < threads; k++) startWorker(true);
      }
    }, TICK_MS);
    tick.unref();
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

/** Answers a request with an error of its own (when nothing else can answer it). */
function failRequest(fuseFd: number, request: Buffer, errno: number): void {
  const out = newOut(OUT_HEADER_SIZE);
  writeOutHeader(out, OUT_HEADER_SIZE, errno, getU64(request, 8));
  replyWriter(fuseFd)(out.b, OUT_HEADER_SIZE);
}

/** How many nodes a shared table must hold for a source of `files` entries, with room for implied directories. */
function nodeBound(files: number): number {
  return Math.max(65_536, files * 3 + 1024);
}

/** How many entries a VFS's root filesystem holds (0 when it cannot say). */
function filesOf(vfs: Vfs): number {
  try {
    return (vfs.statfsSync("/") as { files: number }).files;
  } catch {
    return 0;
  }
}
