/**
 * The backend manager: registers backend plugins, tells which are usable here, selects one for a
 * new container (explicitly named, else the configured default) and routes every later operation
 * on an id to the backend that created it (its state record says which). Every operation runs
 * under the id's lock.
 */
import { BfcError } from "../errors.ts";
import type {
  AttachedIo,
  Backend,
  CheckpointInfo,
  CheckpointOptions,
  CheckpointResult,
  ContainerInfo,
  ContainerState,
  DeleteOptions,
  StopOptions,
} from "./backend.ts";
import { BfcStorage } from "./backends/bfc.ts";
import { DirStorage } from "./backends/dir.ts";
import { type LoadConfigOptions, loadConfig, type RuntimeConfig } from "./config.ts";
import { OverlayBackend } from "./lifecycle.ts";
import { withLock } from "./lock.ts";
import { checkId } from "./oci-spec.ts";
import { Runc } from "./runc.ts";
import { StateStore } from "./state-store.ts";

/** What a backend factory gets: the whole configuration, the shared state store and OCI runtime. */
export interface BackendContext {
  config: RuntimeConfig;
  store: StateStore;
  runc: Runc;
}

export type BackendFactory = (ctx: BackendContext) => Backend;

export interface BackendDescription {
  name: string;
  enabled: boolean;
  /** Null when usable; otherwise why not. */
  unavailable: string | null;
  default: boolean;
}

export interface OpenOptions extends LoadConfigOptions {
  /** Use this configuration instead of reading a file. */
  config?: RuntimeConfig;
}

export interface RunOptions {
  /** The bundle to create the container from when it does not exist yet. */
  bundle?: string;
  backend?: string;
  io: AttachedIo;
  /** Called once the process runs, with a way to forward signals to it. */
  onStarted?: (signal: (sig: NodeJS.Signals) => void) => void;
}

export class BackendManager {
  readonly config: RuntimeConfig;
  readonly store: StateStore;
  readonly runc: Runc;
  private readonly factories = new Map<string, BackendFactory>();
  private readonly instances = new Map<string, Backend>();

  constructor(config: RuntimeConfig) {
    this.config = config;
    this.store = new StateStore(config.stateDir);
    this.runc = new Runc(config.runtimePath, this.store.runcRoot);
    this.register(
      "bfc",
      (c) => new OverlayBackend(new BfcStorage(c.config.backends.bfc), c.store, c.runc, c.config),
    );
    this.register(
      "dir",
      (c) => new OverlayBackend(new DirStorage(c.config.backends.dir), c.store, c.runc, c.config),
    );
  }

  /** A manager with the built-in backends, configured from `options` (see loadConfig). */
  static open(options: OpenOptions = {}): BackendManager {
    return new BackendManager(options.config ?? loadConfig(options));
  }

  /** Adds (or replaces) a backend; its settings are `runtime.backends.<name>` of the configuration. */
  register(name: string, factory: BackendFactory): void {
    this.factories.set(name, factory);
    this.instances.delete(name);
  }

  private enabled(name: string): boolean {
    const b = this.config.backends[name] as { enabled?: unknown } | undefined;
    return b?.enabled !== false;
  }

  /** Every registered backend, whether it is enabled and usable on this machine. */
  discover(): BackendDescription[] {
    return [...this.factories.keys()].sort().map((name) => ({
      name,
      enabled: this.enabled(name),
      unavailable: this.instance(name).unavailable(),
      default: name === this.config.defaultBackend,
    }));
  }

  private instance(name: string): Backend {
    let b = this.instances.get(name);
    if (!b) {
      const factory = this.factories.get(name);
      if (!factory) {
        throw new BfcError(
          "EINVAL",
          "INVALID_ARGUMENT",
          `unknown backend '${name}' (registered: ${[...this.factories.keys()].join(", ")})`,
        );
      }
      b = factory({ config: this.config, store: this.store, runc: this.runc });
      this.instances.set(name, b);
    }
    return b;
  }

  /** The backend for a new container: `name`, else the configured default; it must be enabled. */
  select(name?: string): Backend {
    const chosen = name ?? this.config.defaultBackend;
    const b = this.instance(chosen);
    if (!this.enabled(chosen)) {
      throw new BfcError(
        "EINVAL",
        "BAD_CONFIG",
        `backend '${chosen}' is disabled (runtime.backends.${chosen}.enabled in ${this.config.source ?? "the configuration"})`,
      );
    }
    return b;
  }

  /** The backend that created `id` (from its state record). */
  backendOf(id: string): Backend {
    checkId(id);
    const rec = this.store.read(id);
    if (!rec) {
      throw new BfcError("ENOENT", "NOT_FOUND", `container '${id}' does not exist`);
    }
    return this.instance(rec.backend);
  }

  private locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    checkId(id);
    return withLock(this.store.lockFile(id), `container '${id}'`, fn);
  }

  /** Packs the bundle (or adopts an existing container file) as container `id`. */
  create(id: string, options: { bundle?: string; backend?: string } = {}): Promise<ContainerState> {
    return this.locked(id, () => this.createUnlocked(id, options));
  }

  private createUnlocked(
    id: string,
    options: { bundle?: string; backend?: string },
  ): Promise<ContainerState> {
    if (this.store.exists(id)) {
      return Promise.reject(new BfcError("EEXIST", "ALREADY_EXISTS", `container '${id}' already exists`));
    }
    return this.select(options.backend).createContainer(id, { bundle: options.bundle });
  }

  /** Mounts the root and starts the process detached (its output goes to the log). */
  start(id: string): Promise<ContainerState> {
    return this.locked(id, async () => (await this.backendOf(id).startContainer(id)).state);
  }

  /**
   * Creates `id` if needed, starts it attached and waits for the process: its output goes to
   * `io` (and the log); resolves with its exit status once the root is unmounted again.
   */
  async run(id: string, options: RunOptions): Promise<number> {
    const started = await this.locked(id, async () => {
      if (!this.store.exists(id)) await this.createUnlocked(id, options);
      return this.backendOf(id).startContainer(id, { attach: options.io });
    });
    const exited = started.exited as Promise<number>;
    options.onStarted?.((sig) => {
      this.runc.kill(id, sig).catch(() => {});
    });
    let status: number | undefined;
    try {
      status = await exited;
    } finally {
      // The process is gone (or runc failed): record it and release the mounts.
      const opts: StopOptions = status === undefined ? {} : { exitStatus: status };
      await this.locked(id, () => this.backendOf(id).stopContainer(id, opts));
    }
    return status as number;
  }

  stop(id: string, options: StopOptions = {}): Promise<ContainerState> {
    return this.locked(id, () => this.backendOf(id).stopContainer(id, options));
  }

  /** Stops if asked (force), unmounts everything, removes the state and (unless keep) the container. */
  delete(id: string, options: DeleteOptions = {}): Promise<void> {
    return this.locked(id, async () => {
      const rec = this.store.read(id);
      if (!rec && !this.store.exists(id)) {
        throw new BfcError("ENOENT", "NOT_FOUND", `container '${id}' does not exist`);
      }
      // Debris without a record (a create killed at its very start) is cleaned by any backend.
      const b = rec ? this.instance(rec.backend) : this.instance(this.config.defaultBackend);
      await b.deleteContainer(id, options);
    });
  }

  async state(id: string): Promise<ContainerState> {
    return this.backendOf(id).state(id);
  }

  /** Every container of every registered backend, by id. */
  async list(): Promise<ContainerInfo[]> {
    const out: ContainerInfo[] = [];
    for (const name of this.factories.keys()) out.push(...(await this.instance(name).list()));
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  logFile(id: string): string {
    return this.backendOf(id).logFile(id);
  }

  private checkpointing(
    id: string,
  ): Backend & Required<Pick<Backend, "checkpoint" | "restore" | "checkpoints">> {
    const b = this.backendOf(id);
    if (!b.checkpoint || !b.restore || !b.checkpoints) {
      throw new BfcError("ENOTSUP", "UNSUPPORTED", `the ${b.name} backend has no checkpoints`);
    }
    return b as Backend & Required<Pick<Backend, "checkpoint" | "restore" | "checkpoints">>;
  }

  /** Commits the container's writable layer into its container file under a name. */
  checkpoint(id: string, options: CheckpointOptions = {}): Promise<CheckpointResult> {
    return this.locked(id, () => this.checkpointing(id).checkpoint(id, options));
  }

  /** Starts the container from a checkpoint (by name) or a commit (by number). */
  restore(id: string, from: string): Promise<ContainerState> {
    return this.locked(id, () => this.checkpointing(id).restore(id, { from }));
  }

  /** The container file's commits, newest first, with the checkpoints' names. */
  async checkpoints(id: string): Promise<CheckpointInfo[]> {
    return this.checkpointing(id).checkpoints(id);
  }
}
