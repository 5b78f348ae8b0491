/**
 * The runtime's configuration file: where it is found (an explicit path, else $BFC_CONFIG, else the
 * per-user default), its JSON shape, defaults, and validation that names the offending key. Relative
 * paths in the file are relative to the file's directory; a leading `~/` is the home directory.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ZSTD_MAX_LEVEL, ZSTD_MIN_LEVEL } from "../codec/zstd.ts";
import type { Compression } from "../container/writer.ts";
import { BfcError } from "../errors.ts";

export const CONFIG_ENV = "BFC_CONFIG";

/** Where an encrypted container's key comes from; a password itself is only allowed when marked insecure. */
export type EncryptionSource =
  | { keyFile: string }
  | { passwordFile: string }
  | { passwordEnv: string }
  | { insecurePassword: string };

export type VerifyLevel = "none" | "quick" | "deep";

export interface BfcBackendConfig {
  enabled: boolean;
  containerPath: string;
  compression: Compression;
  compressionLevel: number;
  encryption: EncryptionSource | null;
  /** How much of the container `start` checks before mounting it. */
  verify: VerifyLevel;
}

export interface DirBackendConfig {
  enabled: boolean;
  containerPath: string;
}

export interface RuntimeConfig {
  /** The file it was read from, or null for built-in defaults. */
  source: string | null;
  runtimePath: string;
  stateDir: string;
  defaultBackend: string;
  /** Seconds `stop` waits after the first signal before SIGKILL. */
  stopTimeout: number;
  /** What happens to config.json's `linux.resources` in the bundle handed to the OCI runtime. */
  linuxResources: "keep" | "drop";
  backends: {
    bfc: BfcBackendConfig;
    dir: DirBackendConfig;
    /** Settings of backends registered by library users, unvalidated (their own business). */
    [name: string]: unknown;
  };
}

/** The per-user default config file: $XDG_CONFIG_HOME/bfcfs/config.json or ~/.config/bfcfs/config.json. */
export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), ".config");
  return path.join(base, "bfcfs", "config.json");
}

function dataHome(env: NodeJS.ProcessEnv): string {
  return env.XDG_DATA_HOME || path.join(os.homedir(), ".local", "share");
}

function stateHome(env: NodeJS.ProcessEnv): string {
  return env.XDG_STATE_HOME || path.join(os.homedir(), ".local", "state");
}

/** The configuration used when no file exists. */
export function defaultConfig(env: NodeJS.ProcessEnv = process.env): RuntimeConfig {
  const data = path.join(dataHome(env), "bfcfs", "containers");
  return {
    source: null,
    runtimePath: "runc",
    stateDir: path.join(stateHome(env), "bfcfs", "runtime"),
    defaultBackend: "bfc",
    stopTimeout: 10,
    linuxResources: "keep",
    backends: {
      bfc: {
        enabled: true,
        containerPath: path.join(data, "bfc"),
        compression: "zstd",
        compressionLevel: 3,
        encryption: null,
        verify: "quick",
      },
      dir: { enabled: true, containerPath: path.join(data, "dir") },
    },
  };
}

function bad(file: string, key: string, what: string): BfcError {
  const at = key === "" ? "(document)" : key;
  return new BfcError("EINVAL", "BAD_CONFIG", `${file}: ${at}: ${what}`, { path: file, field: at });
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Checks a JSON object against the keys it may have, field by field. */
class Section {
  readonly file: string;
  readonly key: string;
  readonly obj: Json;
  constructor(file: string, key: string, obj: unknown, allowed: readonly string[]) {
    this.file = file;
    this.key = key;
    if (!isObject(obj)) throw bad(file, key, "must be an object");
    this.obj = obj;
    for (const k of Object.keys(obj)) {
      if (!allowed.includes(k)) {
        throw bad(file, this.at(k), `unknown key (allowed here: ${allowed.join(", ")})`);
      }
    }
  }

  at(k: string): string {
    return this.key === "" ? k : `${this.key}.${k}`;
  }

  has(k: string): boolean {
    return this.obj[k] !== undefined;
  }

  bool(k: string, fallback: boolean): boolean {
    const v = this.obj[k];
    if (v === undefined) return fallback;
    if (typeof v !== "boolean") throw bad(this.file, this.at(k), `must be true or false, got ${show(v)}`);
    return v;
  }

  string(k: string, fallback: string): string {
    const v = this.obj[k];
    if (v === undefined) return fallback;
    if (typeof v !== "string" || v === "") {
      throw bad(this.file, this.at(k), `must be a non-empty string, got ${show(v)}`);
    }
    return v;
  }

  choice<T extends string>(k: string, choices: readonly T[], fallback: T): T {
    const v = this.string(k, fallback);
    if (!(choices as readonly string[]).includes(v)) {
      throw bad(this.file, this.at(k), `must be one of ${choices.join(", ")}, got ${show(v)}`);
    }
    return v as T;
  }

  int(k: string, min: number, max: number, fallback: number): number {
    const v = this.obj[k];
    if (v === undefined) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      throw bad(this.file, this.at(k), `must be a whole number from ${min} to ${max}, got ${show(v)}`);
    }
    return v;
  }

  /** A path: relative ones are taken from the config file's directory, `~/` from the home directory. */
  path(k: string, fallback: string): string {
    const v = this.string(k, fallback);
    if (v === fallback) return v;
    return resolvePath(this.file, v);
  }
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function resolvePath(file: string, p: string): string {
  if (p === "~" || p.startsWith("~/")) return path.join(os.homedir(), p.slice(1));
  return path.resolve(path.dirname(file), p);
}

function encryptionOf(s: Section): EncryptionSource | null {
  const v = s.obj.encryption;
  if (v === undefined || v === false) return null;
  const key = s.at("encryption");
  if (v === true) {
    throw bad(
      s.file,
      key,
      'true needs a key: give {"key_file": FILE} or {"password_file": FILE} (or {"password_env": VAR})',
    );
  }
  const e = new Section(s.file, key, v, ["key_file", "password_file", "password_env", "insecure_password"]);
  const given = ["key_file", "password_file", "password_env", "insecure_password"].filter((k) => e.has(k));
  if (given.length !== 1) {
    throw bad(
      s.file,
      key,
      `give exactly one of key_file, password_file, password_env, insecure_password (got ${given.length ? given.join(", ") : "none"})`,
    );
  }
  if (e.has("key_file")) return { keyFile: e.path("key_file", "") };
  if (e.has("password_file")) return { passwordFile: e.path("password_file", "") };
  if (e.has("password_env")) {
    const name = e.string("password_env", "");
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw bad(s.file, e.at("password_env"), `must be an environment variable name, got ${show(name)}`);
    }
    return { passwordEnv: name };
  }
  return { insecurePassword: e.string("insecure_password", "") };
}

/** Validates a parsed config document; `file` names it in errors and anchors relative paths. */
export function parseConfig(doc: unknown, file: string, env: NodeJS.ProcessEnv = process.env): RuntimeConfig {
  const def = defaultConfig(env);
  const top = new Section(file, "", doc, ["runtime"]);
  const rt = new Section(file, "runtime", top.obj.runtime ?? {}, [
    "backends",
    "runtime_path",
    "state_dir",
    "default_backend",
    "stop_timeout",
    "linux_resources",
  ]);
  const runtimePath = rt.string("runtime_path", def.runtimePath);
  const backends = isObject(rt.obj.backends) ? rt.obj.backends : {};
  if (rt.has("backends") && !isObject(rt.obj.backends))
    throw bad(file, "runtime.backends", "must be an object");
  const cfg: RuntimeConfig = {
    source: file,
    // A bare name is looked up on PATH; anything with a slash is a path.
    runtimePath: runtimePath.includes("/") ? resolvePath(file, runtimePath) : runtimePath,
    stateDir: rt.path("state_dir", def.stateDir),
    defaultBackend: rt.string("default_backend", def.defaultBackend),
    stopTimeout: rt.int("stop_timeout", 0, 3600, def.stopTimeout),
    linuxResources: rt.choice("linux_resources", ["keep", "drop"] as const, def.linuxResources),
    backends: { ...def.backends },
  };
  for (const [name, value] of Object.entries(backends)) {
    const key = `runtime.backends.${name}`;
    if (name === "bfc") {
      const b = new Section(file, key, value, [
        "enabled",
        "container_path",
        "compression",
        "compression_level",
        "encryption",
        "verify",
      ]);
      cfg.backends.bfc = {
        enabled: b.bool("enabled", true),
        containerPath: b.path("container_path", def.backends.bfc.containerPath),
        compression: b.choice("compression", ["none", "zstd", "auto"] as const, "zstd"),
        compressionLevel: b.int("compression_level", ZSTD_MIN_LEVEL, ZSTD_MAX_LEVEL, 3),
        encryption: encryptionOf(b),
        verify: b.choice("verify", ["none", "quick", "deep"] as const, "quick"),
      };
    } else if (name === "dir") {
      const b = new Section(file, key, value, ["enabled", "container_path"]);
      cfg.backends.dir = {
        enabled: b.bool("enabled", true),
        containerPath: b.path("container_path", def.backends.dir.containerPath),
      };
    } else {
      if (!isObject(value)) throw bad(file, key, "must be an object");
      cfg.backends[name] = value;
    }
  }
  // Two backends sharing a folder could name two containers' files alike (`x.bfc` the file, `x.bfc/` the folder).
  const bfcPath = cfg.backends.bfc.containerPath;
  if (path.resolve(bfcPath) === path.resolve(cfg.backends.dir.containerPath)) {
    throw bad(file, "runtime.backends.dir.container_path", `must differ from the bfc backend's (${bfcPath})`);
  }
  return cfg;
}

export interface LoadConfigOptions {
  /** An explicit config file (`--config`): it must exist. */
  file?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * The configuration in effect: `file` if given, else $BFC_CONFIG, else the per-user default file;
 * the built-in defaults when that default file does not exist (an explicit or $BFC_CONFIG file must).
 */
export function loadConfig(options: LoadConfigOptions = {}): RuntimeConfig {
  const env = options.env ?? process.env;
  const explicit = options.file ?? (env[CONFIG_ENV] || undefined);
  const file = path.resolve(explicit ?? defaultConfigPath(env));
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && explicit === undefined) return defaultConfig(env);
    const from = options.file !== undefined ? "" : explicit !== undefined ? ` (from $${CONFIG_ENV})` : "";
    throw new BfcError(
      code === "ENOENT" ? "ENOENT" : "EIO",
      "BAD_CONFIG",
      `cannot read config file '${file}'${from}: ${(e as Error).message}`,
      { path: file, cause: e },
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new BfcError("EINVAL", "BAD_CONFIG", `${file}: not valid JSON: ${(e as Error).message}`, {
      path: file,
      cause: e,
    });
  }
  return parseConfig(doc, file, env);
}
