/**
 * The `bfc` backend: a container's bundle lives in one BFC container, `<container_path>/<id>.bfc`,
 * laid out as an OCI bundle — `config.json` at the top (root.path rewritten to "rootfs") and the
 * root filesystem under `rootfs/` — so `bfc extract` of it gives a runnable bundle and the file
 * alone is enough to recreate the container elsewhere. `start` serves it read-only through FUSE
 * (a `bfc mount` process of its own) and the overlay adds the writable layer.
 */
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { Container } from "../../container/container.ts";
import type { Credentials } from "../../container/keys.ts";
import { BfcError, fromSystemError } from "../../errors.ts";
import { mountProcesses, startMountProcess, stopMountProcesses } from "../../fuse/mount-process.ts";
import type { BfcBackendConfig, EncryptionSource } from "../config.ts";
import { type MountHealth, mountHealth, unmountAll } from "../mounts.ts";
import { type Bundle, type OciConfig, parseOciConfig } from "../oci-spec.ts";
import type { LayerTarget } from "../overlay-layer.ts";
import type { CommitStore, RootfsStorage } from "../rootfs-storage.ts";
import type { ContainerPaths } from "../state-store.ts";

/** Where config.json and the root filesystem sit inside the container. */
export const CONFIG_ENTRY = "config.json";
export const ROOTFS_ENTRY = "rootfs";

/** The key or password an encryption source names, read now. */
async function credentialsOf(enc: EncryptionSource | null): Promise<Credentials> {
  if (!enc) return {};
  if ("keyFile" in enc) {
    const { readKeyFile } = await import("../../container/keys.ts");
    return { key: readKeyFile(enc.keyFile) };
  }
  if ("passwordFile" in enc) {
    let text: string;
    try {
      text = fs.readFileSync(enc.passwordFile, "utf8");
    } catch (e) {
      throw fromSystemError(e, `cannot read password file '${enc.passwordFile}'`, enc.passwordFile);
    }
    const line = text.split(/\r?\n/)[0] ?? "";
    if (line === "") throw new BfcError("EINVAL", "BAD_KEY", `password file '${enc.passwordFile}' is empty`);
    return { password: line };
  }
  if ("passwordEnv" in enc) {
    const pw = process.env[enc.passwordEnv];
    if (!pw) {
      throw new BfcError(
        "EINVAL",
        "KEY_REQUIRED",
        `$${enc.passwordEnv} (encryption.password_env) is not set`,
      );
    }
    return { password: pw };
  }
  return { password: enc.insecurePassword };
}

/** The container's `rootfs/` as a layer target: paths relative to the root filesystem. */
function rootfsTarget(c: Container): LayerTarget {
  const at = (p: string) => (p === "" ? ROOTFS_ENTRY : `${ROOTFS_ENTRY}/${p}`);
  return {
    readdir: (d) => c.readdir(at(d)),
    kind: (p) => c.tryStat(at(p))?.type ?? null,
    addFile: (p, source, m) => c.addFile(at(p), source, { mode: m.mode, mtime: m.mtimeNs }),
    mkdir: (p, m) => c.mkdir(at(p), { mode: m.mode, mtime: m.mtimeNs, parents: true }),
    symlink: (p, target, m) => c.symlink(at(p), target, { mode: m.mode, mtime: m.mtimeNs }),
    remove: (p) => c.remove(at(p), { recursive: true }),
    setMeta: (p, m) => {
      c.chmod(at(p), m.mode);
      c.utimes(at(p), m.mtimeNs);
    },
  };
}

function sizeOf(p: string): number {
  try {
    return fs.statSync(p).size;
  } catch {
    return 0;
  }
}

export class BfcStorage implements RootfsStorage {
  readonly name = "bfc";
  private readonly cfg: BfcBackendConfig;

  constructor(cfg: BfcBackendConfig) {
    this.cfg = cfg;
  }

  unavailable(): string | null {
    if (!fs.existsSync("/dev/fuse"))
      return "/dev/fuse is absent (FUSE is needed to serve the root filesystem)";
    try {
      createRequire(import.meta.url)("fuse-native");
    } catch (e) {
      return `fuse-native cannot load (${(e as Error).message.split("\n")[0]}); install libfuse2`;
    }
    return null;
  }

  artifactPath(id: string): string {
    return path.join(this.cfg.containerPath, `${id}.bfc`);
  }

  async pack(id: string, bundle: Bundle, config: OciConfig): Promise<void> {
    const target = this.artifactPath(id);
    fs.mkdirSync(this.cfg.containerPath, { recursive: true });
    const { Writer } = await import("../../container/writer.ts");
    const w = await Writer.create(target, {
      compression: this.cfg.compression,
      level: this.cfg.compressionLevel,
      ...(await credentialsOf(this.cfg.encryption)),
      metadata: { creator: "bfcfs container runtime", labels: { "org.bfcfs.layout": "oci-bundle" } },
    });
    try {
      await w.addFile(CONFIG_ENTRY, Buffer.from(`${JSON.stringify(config, null, 2)}\n`), { mode: 0o644 });
      await w.addTree(bundle.rootfs, ROOTFS_ENTRY);
      await w.finish();
    } catch (e) {
      await w.abort();
      throw e;
    }
  }

  /**
   * Opens the container, checks it as configured (`verify`: quick = every object header against
   * the index, deep = every byte decoded), and reads its config.json.
   */
  async readConfig(id: string): Promise<OciConfig> {
    const file = this.artifactPath(id);
    const { Reader } = await import("../../container/reader.ts");
    const r = await Reader.open(file, await credentialsOf(this.cfg.encryption));
    try {
      if (this.cfg.verify !== "none") {
        const { verify } = await import("../../container/verify.ts");
        const report = await verify(r, { deep: this.cfg.verify === "deep" });
        const first = report.problems[0];
        if (first) {
          throw new BfcError(
            "EIO",
            first.reason,
            `container '${file}' is damaged (${report.problems.length} problem(s); first: ${first.path ?? "container"}: ${first.message})`,
            { path: file },
          );
        }
      }
      const root = r.tryStat(ROOTFS_ENTRY);
      if (root?.type !== "directory") {
        throw new BfcError(
          "ENOENT",
          "BAD_BUNDLE",
          `container '${file}' has no '${ROOTFS_ENTRY}/' directory`,
          {
            path: file,
          },
        );
      }
      if (!r.exists(CONFIG_ENTRY)) {
        throw new BfcError("ENOENT", "BAD_BUNDLE", `container '${file}' has no ${CONFIG_ENTRY}`, {
          path: file,
        });
      }
      const text = (await r.readFile(CONFIG_ENTRY)).toString("utf8");
      return parseOciConfig(text, `${file}:${CONFIG_ENTRY}`);
    } finally {
      r.close();
    }
  }

  async mountLower(id: string, p: ContainerPaths): Promise<{ lower: string; pid?: number }> {
    fs.mkdirSync(p.lower, { recursive: true });
    // allow_other (with default_permissions): any uid in the container may read, as the modes allow.
    const args = ["--allow-other"];
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.BFC_PASSWORD;
    const enc = this.cfg.encryption;
    if (enc && "keyFile" in enc) args.push("--keyfile", enc.keyFile);
    else if (enc && "passwordFile" in enc) args.push("--password-file", enc.passwordFile);
    else if (enc) env.BFC_PASSWORD = (await credentialsOf(enc)).password as string;
    const source = this.artifactPath(id);
    let pid: number;
    try {
      pid = await startMountProcess({ source, mountpoint: p.lower, args, env, log: p.mountLog });
    } catch (e) {
      const err = e as BfcError;
      throw new BfcError(err.code, err.reason, `cannot mount '${source}': ${err.message}`, {
        path: source,
        cause: e,
      });
    }
    return { lower: path.join(p.lower, ROOTFS_ENTRY), pid };
  }

  lowerHealth(_id: string, p: ContainerPaths): MountHealth {
    const h = mountHealth(p.lower);
    // Mounted but nobody serving it (the process was killed and the kernel has not noticed yet).
    if (h === "mounted" && mountProcesses(p.lower).length === 0) return "stale";
    return h;
  }

  async unmountLower(_id: string, p: ContainerPaths): Promise<void> {
    await unmountAll(p.lower);
    await stopMountProcesses(p.lower);
  }

  async removeArtifact(id: string): Promise<void> {
    const target = this.artifactPath(id);
    fs.rmSync(target, { force: true });
    // A killed create's temporary file (.<name>.bfc-tmp-<pid>-<hex>), a killed checkpoint's lock
    // (.<name>.bfc-lock).
    const prefix = `.${path.basename(target)}.bfc-`;
    let names: string[] = [];
    try {
      names = fs.readdirSync(this.cfg.containerPath);
    } catch {
      return;
    }
    for (const n of names)
      if (n.startsWith(prefix)) fs.rmSync(path.join(this.cfg.containerPath, n), { force: true });
  }

  diskBytes(id: string): number {
    return sizeOf(this.artifactPath(id));
  }

  /** Checkpoints are commits appended to the container (the lock beside it keeps updaters apart). */
  readonly commits: CommitStore = {
    apply: async (id, message, edit) => {
      const c = await this.openForUpdate(id);
      try {
        await edit(rootfsTarget(c));
        const r = await c.commit({ message });
        return { commit: r.commit, changed: r.changed };
      } finally {
        c.close();
      }
    },
    list: async (id) => {
      const { Reader } = await import("../../container/reader.ts");
      const r = await Reader.open(this.artifactPath(id));
      try {
        return r.commits().map((ci) => {
          const info = ci.extension.commitInfo;
          const out: { commit: number; message?: string; time?: string } = { commit: ci.commit };
          if (info?.message !== undefined) out.message = info.message;
          if (info) out.time = new Date(Number(info.timeNs / 1000000n)).toISOString();
          return out;
        });
      } finally {
        r.close();
      }
    },
    reset: async (id, commit, message) => {
      const c = await this.openForUpdate(id, commit);
      try {
        return (await c.commit({ message })).commit;
      } finally {
        c.close();
      }
    },
  };

  private async openForUpdate(id: string, from?: number): Promise<Container> {
    const { Container } = await import("../../container/container.ts");
    return Container.openForUpdate(this.artifactPath(id), {
      ...(await credentialsOf(this.cfg.encryption)),
      compression: this.cfg.compression,
      level: this.cfg.compressionLevel,
      lockTimeout: 10_000,
      ...(from === undefined ? {} : { from }),
    });
  }
}
