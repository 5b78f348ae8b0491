/**
 * The OCI lifecycle shared by the storage backends: a read-only root from the storage, an overlay
 * with a per-container upper directory on top, the bundle for the OCI runtime, and runc for the
 * process. State is derived, not remembered: our record says how far our side got, runc says what
 * the process is doing, the mount table says whether the root is there — so `state` tells the truth
 * after this process (or the one serving the root) crashed.
 */
import fs from "node:fs";
import { constants as osConstants } from "node:os";
import path from "node:path";
import { BfcError } from "../errors.ts";
import type {
  AttachedIo,
  Backend,
  CheckpointInfo,
  CheckpointOptions,
  CheckpointResult,
  ContainerInfo,
  ContainerState,
  CreateOptions,
  DeleteOptions,
  RestoreOptions,
  StartOptions,
  StartResult,
  StopOptions,
} from "./backend.ts";
import type { RuntimeConfig } from "./config.ts";
import { type MountHealth, mountHealth, mountOverlay, unmountAll } from "./mounts.ts";
import { type Bundle, OCI_VERSION, type OciConfig, readBundle } from "./oci-spec.ts";
import { applyUpperLayer, type LayerSummary } from "./overlay-layer.ts";
import type { CommitStore, RootfsStorage } from "./rootfs-storage.ts";
import type { Runc, RuncState } from "./runc.ts";
import type { ContainerPaths, ContainerRecord, StateStore } from "./state-store.ts";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every `every` ms until it holds or `ms` pass; returns whether it held. */
async function waitUntil(cond: () => Promise<boolean>, ms: number, every = 50): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() >= end) return false;
    await sleep(every);
  }
}

function processAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

const live = (s: RuncState | null): boolean => s !== null && s.status !== "stopped";

/** How a checkpoint is recorded in its commit's message. */
const CHECKPOINT_PREFIX = "checkpoint: ";
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Empties a folder (the overlay's upper or work directory) but keeps it. */
function emptyDir(dir: string): void {
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) fs.rmSync(`${dir}/${n}`, { recursive: true, force: true });
}

/** The bundle runc gets: root.path is the overlay, no terminal (there is no console socket). */
export function runtimeConfig(config: OciConfig, rootfs: string, resources: "keep" | "drop"): OciConfig {
  const c = structuredClone(config);
  c.root = { ...c.root, path: rootfs };
  c.process = { ...c.process, terminal: false };
  if (resources === "drop" && c.linux) delete c.linux.resources;
  return c;
}

/** The exit status of a process that ended with `code` or by `signal` (128 + n, as shells report it). */
function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = signal ? (osConstants.signals as Record<string, number>)[signal] : undefined;
  return 128 + (n ?? 0);
}

export class OverlayBackend implements Backend {
  readonly name: string;
  private readonly storage: RootfsStorage;
  private readonly store: StateStore;
  private readonly runc: Runc;
  private readonly config: RuntimeConfig;

  constructor(storage: RootfsStorage, store: StateStore, runc: Runc, config: RuntimeConfig) {
    this.name = storage.name;
    this.storage = storage;
    this.store = store;
    this.runc = runc;
    this.config = config;
  }

  unavailable(): string | null {
    return this.storage.unavailable();
  }

  logFile(id: string): string {
    return this.store.paths(id).log;
  }

  private record(id: string): ContainerRecord {
    const rec = this.store.read(id);
    if (!rec) throw new BfcError("ENOENT", "NOT_FOUND", `container '${id}' does not exist`);
    return rec;
  }

  private rootfsHealth(id: string, p: ContainerPaths): MountHealth {
    const overlay = mountHealth(p.rootfs);
    const lower = this.storage.lowerHealth(id, p);
    if (overlay === "unmounted") return lower === "unmounted" || lower === "none" ? "unmounted" : "stale";
    return overlay === "mounted" && (lower === "mounted" || lower === "none") ? "mounted" : "stale";
  }

  async state(id: string): Promise<ContainerState> {
    const rec = this.record(id);
    const p = this.store.paths(id);
    const out: ContainerState = {
      ociVersion: OCI_VERSION,
      id,
      status: "stopped",
      bundle: p.bundle,
      annotations: rec.annotations,
      bfcfs: {
        backend: this.name,
        artifact: rec.artifact,
        rootfs: this.rootfsHealth(id, p),
        sourceBundle: rec.sourceBundle,
        created: rec.created,
      },
    };
    if (rec.started) out.bfcfs.started = rec.started;
    if (rec.finished) out.bfcfs.finished = rec.finished;
    if (rec.exitStatus !== undefined) out.bfcfs.exitStatus = rec.exitStatus;
    if (rec.phase === "creating") {
      out.status = "creating";
      if (!processAlive(rec.creatorPid)) out.bfcfs.interrupted = true;
    } else {
      // runc is asked even for a container our record calls created: a start interrupted after
      // `runc create` left a process our record does not know about.
      const rs = await this.runc.state(id);
      if (live(rs)) {
        out.status = rs?.status === "creating" ? "creating" : (rs?.status as ContainerState["status"]);
        out.pid = rs?.pid;
      } else if (rec.phase === "created") {
        out.status = "created";
      }
    }
    return out;
  }

  async list(): Promise<ContainerInfo[]> {
    const out: ContainerInfo[] = [];
    for (const id of this.store.ids()) {
      let rec: ContainerRecord | null;
      try {
        rec = this.store.read(id);
      } catch {
        continue;
      }
      if (!rec || rec.backend !== this.name) continue;
      const s = await this.state(id);
      const info: ContainerInfo = {
        id,
        backend: this.name,
        status: s.status,
        created: rec.created,
        artifact: rec.artifact,
        diskBytes: this.storage.diskBytes(id),
      };
      if (s.pid !== undefined) info.pid = s.pid;
      out.push(info);
    }
    return out;
  }

  async createContainer(id: string, options: CreateOptions): Promise<ContainerState> {
    if (this.store.exists(id)) {
      throw new BfcError("EEXIST", "ALREADY_EXISTS", `container '${id}' already exists`);
    }
    const artifact = this.storage.artifactPath(id);
    let bundle: Bundle | null = null;
    if (options.bundle !== undefined) {
      bundle = readBundle(options.bundle);
      if (fs.existsSync(artifact)) {
        throw new BfcError(
          "EEXIST",
          "ALREADY_EXISTS",
          `'${artifact}' already exists (kept by 'delete --keep'?); create '${id}' without --bundle to use it, or remove it`,
          { path: artifact },
        );
      }
    } else if (!fs.existsSync(artifact)) {
      throw new BfcError(
        "ENOENT",
        "BAD_BUNDLE",
        `no bundle given and no container at '${artifact}' to use for '${id}' (pass --bundle DIR)`,
        { path: artifact },
      );
    }
    const rec: ContainerRecord = {
      id,
      backend: this.name,
      phase: "creating",
      artifact,
      sourceBundle: bundle?.dir ?? null,
      annotations: {},
      created: new Date().toISOString(),
      creatorPid: process.pid,
    };
    this.store.write(rec);
    try {
      let config: OciConfig;
      if (bundle) {
        config = structuredClone(bundle.config);
        config.root = { ...config.root, path: "rootfs" };
        await this.storage.pack(id, bundle, config);
      } else {
        config = await this.storage.readConfig(id);
      }
      rec.annotations = { ...(config.annotations ?? {}) };
      rec.phase = "created";
      delete rec.creatorPid;
      this.store.write(rec);
    } catch (e) {
      // A failed create leaves nothing behind (OCI: as if it had never been attempted).
      if (bundle) await this.storage.removeArtifact(id).catch(() => {});
      this.store.remove(id);
      throw e;
    }
    return this.state(id);
  }

  /** Mounts the read-only root and the overlay, reusing them when both are there and healthy. */
  private async mountRootfs(id: string, p: ContainerPaths, rec: ContainerRecord): Promise<void> {
    if (this.rootfsHealth(id, p) === "mounted") return;
    await this.unmountRootfs(id, p);
    const { lower, pid } = await this.storage.mountLower(id, p);
    try {
      for (const d of [p.upper, p.work, p.rootfs]) fs.mkdirSync(d, { recursive: true });
      await mountOverlay(lower, p.upper, p.work, p.rootfs);
    } catch (e) {
      await this.storage.unmountLower(id, p).catch(() => {});
      throw e;
    }
    if (pid !== undefined) rec.mountPid = pid;
    else delete rec.mountPid;
  }

  private async unmountRootfs(id: string, p: ContainerPaths): Promise<void> {
    // The overlay first: it holds the lower layer busy.
    await unmountAll(p.rootfs);
    await this.storage.unmountLower(id, p);
  }

  async startContainer(id: string, options: StartOptions = {}): Promise<StartResult> {
    const rec = this.record(id);
    if (rec.phase === "creating") {
      throw new BfcError(
        "EBUSY",
        "BAD_STATE",
        `container '${id}' is still being created${processAlive(rec.creatorPid) ? "" : " (that create was interrupted; delete it)"}`,
      );
    }
    this.runc.locate();
    const p = this.store.paths(id);
    const before = await this.runc.state(id);
    if (live(before)) {
      throw new BfcError("EBUSY", "BAD_STATE", `container '${id}' is already ${before?.status}`);
    }
    if (before) await this.runc.delete(id, true);
    // Checking the container and starting the process that serves it overlap: both cost a few
    // hundred milliseconds of mostly separate work (a corrupt index fails both).
    const [checked, mounted] = await Promise.allSettled([
      this.storage.readConfig(id),
      this.mountRootfs(id, p, rec),
    ]);
    if (checked.status === "rejected" || mounted.status === "rejected") {
      if (mounted.status === "fulfilled") await this.unmountRootfs(id, p).catch(() => {});
      throw checked.status === "rejected" ? checked.reason : (mounted as PromiseRejectedResult).reason;
    }
    const config = checked.value;
    let exited: Promise<number> | undefined;
    try {
      fs.mkdirSync(p.bundle, { recursive: true });
      const rc = runtimeConfig(config, p.rootfs, this.config.linuxResources);
      fs.writeFileSync(`${p.bundle}/config.json`, `${JSON.stringify(rc, null, 2)}\n`);
      if (options.attach) exited = (await this.runAttached(id, p, options.attach)).exited;
      else {
        const log = fs.openSync(p.log, "a");
        try {
          await this.runc.create(id, p.bundle, log, p.runcLog);
        } finally {
          fs.closeSync(log);
        }
        await this.runc.start(id);
      }
    } catch (e) {
      await this.runc.delete(id, true).catch(() => {});
      await this.unmountRootfs(id, p).catch(() => {});
      throw e;
    }
    rec.phase = "started";
    rec.started = new Date().toISOString();
    delete rec.finished;
    delete rec.exitStatus;
    this.store.write(rec);
    return { state: await this.state(id), exited };
  }

  /**
   * `runc run` in the foreground, its output copied to the caller's streams and to the log. Returns
   * once runc knows the container (or the run already ended), with a promise of the exit status.
   */
  private async runAttached(
    id: string,
    p: ContainerPaths,
    io: AttachedIo,
  ): Promise<{ exited: Promise<number> }> {
    const stdin = io.stdin === "inherit" || io.stdin === "ignore" ? io.stdin : "pipe";
    const child = this.runc.run(id, p.bundle, [stdin, "pipe", "pipe"]);
    if (stdin === "pipe" && typeof io.stdin !== "string" && child.stdin) io.stdin.pipe(child.stdin);
    const log = fs.createWriteStream(p.log, { flags: "a" });
    let ended = false;
    const exited = new Promise<number>((resolve, reject) => {
      child.on("error", (e) => {
        ended = true;
        reject(
          new BfcError("EIO", "RUNTIME_FAILED", `cannot run ${this.runc.binary}: ${e.message}`, { cause: e }),
        );
      });
      child.on("close", (code, signal) => {
        ended = true;
        log.end(() => resolve(exitStatus(code, signal)));
      });
    });
    for (const [from, to] of [
      [child.stdout, io.stdout],
      [child.stderr, io.stderr],
    ] as const) {
      from?.on("data", (d: Buffer) => {
        log.write(d);
        to.write(d);
      });
    }
    exited.catch(() => {});
    // runc writes <root>/<id>/state.json when it has created the container; polling for the file
    // costs nothing, while a `runc state` per poll would compete with runc for the CPU.
    const known = path.join(this.runc.root, id, "state.json");
    await waitUntil(async () => ended || fs.existsSync(known), 30_000, 10);
    return { exited };
  }

  async stopContainer(id: string, options: StopOptions = {}): Promise<ContainerState> {
    const rec = this.record(id);
    if (rec.phase === "creating") return this.state(id);
    const p = this.store.paths(id);
    const rs = await this.runc.state(id);
    if (live(rs))
      await this.kill(id, options.signal ?? "SIGTERM", options.timeout ?? this.config.stopTimeout);
    if (rs) await this.runc.delete(id, true);
    await this.unmountRootfs(id, p);
    // runc knew it: it was started, even if an interrupted start never recorded that.
    if (rs || rec.phase === "started") {
      const now = new Date().toISOString();
      rec.phase = "started";
      rec.started ??= now;
      rec.finished ??= now;
      if (options.exitStatus !== undefined) rec.exitStatus = options.exitStatus;
    }
    delete rec.mountPid;
    this.store.write(rec);
    return this.state(id);
  }

  /** `signal`, up to `timeout` s for the process to end, then SIGKILL to every process in it. */
  private async kill(id: string, signal: string, timeout: number): Promise<void> {
    const stopped = async () => !live(await this.runc.state(id));
    if (timeout > 0 || signal !== "SIGKILL") {
      await this.runc.kill(id, signal).catch(async (e) => {
        if (!(await stopped())) throw e;
      });
      if (await waitUntil(stopped, timeout * 1000, 100)) return;
    }
    await this.runc.kill(id, "SIGKILL", true).catch(async (e) => {
      if (!(await stopped())) throw e;
    });
    if (!(await waitUntil(stopped, 10_000, 100))) {
      throw new BfcError("EBUSY", "RUNTIME_FAILED", `container '${id}' did not stop 10 s after SIGKILL`);
    }
  }

  async deleteContainer(id: string, options: DeleteOptions = {}): Promise<void> {
    if (!this.store.exists(id)) throw new BfcError("ENOENT", "NOT_FOUND", `container '${id}' does not exist`);
    const rec = this.store.read(id);
    const p = this.store.paths(id);
    let runcOk = true;
    try {
      this.runc.locate();
    } catch (e) {
      // Without the OCI runtime nothing can be running through it; the rest is cleaned regardless.
      runcOk = false;
      if (!options.force && rec?.phase === "started") throw e;
    }
    if (runcOk) {
      const rs = await this.runc.state(id);
      if (live(rs)) {
        if (!options.force) {
          throw new BfcError(
            "EBUSY",
            "BAD_STATE",
            `container '${id}' is ${rs?.status}; stop it first (or delete --force)`,
          );
        }
        await this.kill(id, "SIGKILL", 0);
      }
      await this.runc.delete(id, true);
    }
    await this.unmountRootfs(id, p);
    this.store.remove(id);
    if (!options.keep && rec !== null) await this.storage.removeArtifact(id);
  }

  private commitStore(): CommitStore {
    const c = this.storage.commits;
    if (!c) {
      throw new BfcError(
        "ENOTSUP",
        "UNSUPPORTED",
        `the ${this.name} backend has no checkpoints (they are commits of a bfc container)`,
      );
    }
    return c;
  }

  async checkpoints(id: string): Promise<CheckpointInfo[]> {
    this.record(id);
    return (await this.commitStore().list(id)).map((c) => {
      const name = c.message?.startsWith(CHECKPOINT_PREFIX)
        ? c.message.slice(CHECKPOINT_PREFIX.length)
        : null;
      const out: CheckpointInfo = { commit: c.commit, name };
      if (c.message !== undefined) out.message = c.message;
      if (c.time !== undefined) out.time = c.time;
      return out;
    });
  }

  /**
   * Commits the writable layer into the container under a name. A running container is frozen
   * (runc pause) while its layer is read and committed, and keeps running on its layer; a stopped
   * one has its root mounted for the moment, and its layer is emptied afterwards (the container
   * now holds it).
   */
  async checkpoint(id: string, options: CheckpointOptions = {}): Promise<CheckpointResult> {
    const rec = this.record(id);
    const store = this.commitStore();
    if (rec.phase === "creating")
      throw new BfcError("EBUSY", "BAD_STATE", `container '${id}' is still being created`);
    const existing = await this.checkpoints(id);
    const name = options.name ?? `checkpoint-${(existing[0]?.commit ?? 0) + 1}`;
    if (!NAME_RE.test(name) || /^\d+$/.test(name)) {
      throw new BfcError(
        "EINVAL",
        "INVALID_ARGUMENT",
        `invalid checkpoint name '${name}': use 1 to 64 letters, digits, '_', '.' or '-', not only digits`,
      );
    }
    if (existing.some((c) => c.name === name)) {
      throw new BfcError("EEXIST", "ALREADY_EXISTS", `container '${id}' already has a checkpoint '${name}'`);
    }
    const p = this.store.paths(id);
    const running = live(await this.runc.state(id));
    if (!running) await this.mountRootfs(id, p, rec);
    let frozen = false;
    let sum: LayerSummary | null = null;
    let commit: number;
    try {
      if (running) {
        try {
          await this.runc.pause(id);
          frozen = true;
        } catch {
          // No freezer here: the layer is read while the process runs (a crash-consistent copy).
        }
      }
      try {
        ({ commit } = await store.apply(id, `${CHECKPOINT_PREFIX}${name}`, async (root) => {
          sum = await applyUpperLayer(p.upper, p.rootfs, root);
        }));
      } finally {
        if (frozen) await this.runc.resume(id);
      }
    } finally {
      if (!running) await this.unmountRootfs(id, p);
    }
    if (!running) {
      emptyDir(p.upper);
      emptyDir(p.work);
    }
    const s = sum as LayerSummary | null;
    return {
      name,
      commit,
      frozen,
      files: s?.files ?? 0,
      directories: s?.directories ?? 0,
      symlinks: s?.symlinks ?? 0,
      removed: s?.removed ?? 0,
      skipped: s?.skipped ?? [],
    };
  }

  /**
   * Makes a checkpoint (by name) or a commit (by number) the container's root again — a new commit
   * with that tree — empties the writable layer, and starts the container detached.
   */
  async restore(id: string, options: RestoreOptions): Promise<ContainerState> {
    const rec = this.record(id);
    const store = this.commitStore();
    if (rec.phase === "creating")
      throw new BfcError("EBUSY", "BAD_STATE", `container '${id}' is still being created`);
    const all = await this.checkpoints(id);
    const from = options.from;
    const found = /^\d+$/.test(from)
      ? all.find((c) => c.commit === Number(from))
      : all.find((c) => c.name === from);
    if (!found) {
      const names = all.filter((c) => c.name !== null).map((c) => c.name);
      throw new BfcError(
        "ENOENT",
        "NOT_FOUND",
        `container '${id}' has no ${/^\d+$/.test(from) ? "commit" : "checkpoint"} '${from}' (checkpoints: ${names.length ? names.join(", ") : "none"}; commits 1 to ${all[0]?.commit ?? 1})`,
      );
    }
    const p = this.store.paths(id);
    const rs = await this.runc.state(id);
    if (live(rs)) {
      throw new BfcError(
        "EBUSY",
        "BAD_STATE",
        `container '${id}' is ${rs?.status}; stop it before restoring`,
      );
    }
    if (rs) await this.runc.delete(id, true);
    await this.unmountRootfs(id, p);
    await store.reset(id, found.commit, `restore: ${found.name ?? `commit ${found.commit}`}`);
    emptyDir(p.upper);
    emptyDir(p.work);
    return (await this.startContainer(id)).state;
  }
}
