/**
 * A thread serving a kernel-protocol FUSE mount (see kernel-mount.ts). Role "serve": opens its own
 * VFS from the mount's recipe (an immutable source) and answers requests itself, handing the rare
 * request that needs waiting to the main thread. Role "pump": reads requests and passes every one to
 * the main thread, which owns the VFS (live or mutable sources).
 */
import { parentPort, workerData } from "node:worker_threads";
import { BfcError } from "../errors.ts";
import { loadBuiltinType } from "../vfs/type-loader.ts";
import { Vfs } from "../vfs/vfs.ts";
import { Backlog, HELPER_IDLE_MS } from "./backlog.ts";
import { type HandlerOptions, RequestHandler } from "./handler.ts";
import type { MountSpec } from "./kernel-mount.ts";
import { requestPid } from "./protocol.ts";
import { RequestSlots, type SlotMemory } from "./request-slots.ts";
import { replyWriter, serveRequests } from "./session.ts";
import { type SharedNodeMemory, SharedNodeTable } from "./shared-node-table.ts";

export interface WorkerData {
  role: "serve" | "pump";
  fuseFd: number;
  /** Serving threads: the first one always reads; the others help when there is a backlog. */
  helper?: boolean;
  backlog?: SharedArrayBuffer;
  mounts?: MountSpec[];
  /** Pump threads: where requests are handed over (see RequestSlots). */
  slots?: SlotMemory;
  handler?: Pick<HandlerOptions, "immutable" | "uid" | "gid" | "readdirplus"> & { debug?: boolean };
}

export type ToWorker = { type: "go"; nodes?: SharedNodeMemory };

export type FromWorker =
  | { type: "ready" }
  | { type: "failed"; message: string; code?: string; reason?: string }
  | { type: "init" }
  | { type: "forward"; request: Uint8Array<ArrayBuffer> }
  | { type: "slot"; slot: number; length: number }
  | { type: "done" };

if (!parentPort) throw new Error("kernel-worker.ts runs as a worker thread");
const port = parentPort;
const data = workerData as WorkerData;
const post = (m: FromWorker, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer ?? []);
const log = (line: string) => process.stderr.write(`${line}\n`);

/** A copy of the request that can travel to the main thread without copying again. */
function detach(b: Buffer, n: number): Uint8Array<ArrayBuffer> {
  const u = new Uint8Array(new ArrayBuffer(n));
  u.set(b.subarray(0, n));
  return u;
}

/** The main thread's next message ("go": start reading). */
function next<T extends ToWorker["type"]>(_type: T): Promise<ToWorker & { type: T }> {
  return new Promise((resolve) => port.once("message", (m: ToWorker & { type: T }) => resolve(m)));
}

async function main(): Promise<void> {
  if (data.role === "pump") {
    post({ type: "ready" });
    await next("go");
    if (!data.slots) throw new Error("a pump thread needs request slots");
    const slots = RequestSlots.attach(data.slots);
    serveRequests(data.fuseFd, (b, n) => {
      post({ type: "slot", slot: slots.put(b, n), length: n });
    });
    post({ type: "done" });
    return;
  }
  const mounts = data.mounts ?? [];
  const vfs = new Vfs({
    types: await Promise.all([...new Set(mounts.map((m) => m.type))].map(loadBuiltinType)),
  });
  for (const m of mounts) await vfs.mount(m.type, m.target, m.threadOptions ?? m.options);
  post({ type: "ready" });
  const { nodes } = await next("go");
  if (!nodes) throw new Error("a serving thread needs the shared node table");
  const opts = data.handler ?? { immutable: true };
  const handler = new RequestHandler(
    vfs,
    SharedNodeTable.attach(nodes),
    replyWriter(data.fuseFd, opts.debug ? log : undefined),
    {
      ...opts,
      log: opts.debug ? log : undefined,
      forward: (request) => {
        const u = detach(request, request.length);
        post({ type: "forward", request: u }, [u.buffer]);
      },
      onInit: () => post({ type: "init" }),
    },
  );
  const backlog = new Backlog(data.backlog as SharedArrayBuffer);
  if (!data.helper) {
    serveRequests(
      data.fuseFd,
      (b, n) => {
        backlog.busy(true);
        try {
          handler.handle(b, n);
        } finally {
          backlog.busy(false);
        }
      },
      { afterRead: (ms, request) => backlog.afterRead(ms, requestPid(request)) },
    );
    backlog.done();
  } else {
    while (backlog.waitForWork()) {
      let idle = false;
      const end = serveRequests(data.fuseFd, (b, n) => handler.handle(b, n), {
        afterRead: (ms) => {
          idle = ms > HELPER_IDLE_MS;
        },
        stop: () => idle,
      });
      if (end === "unmounted") break;
    }
  }
  await vfs.unmountAll();
  post({ type: "done" });
}

main().catch((e: unknown) => {
  const err = e as BfcError;
  post({
    type: "failed",
    message: err?.message ?? String(e),
    code: typeof err?.code === "string" ? err.code : undefined,
    reason: e instanceof BfcError ? e.reason : undefined,
  });
});
