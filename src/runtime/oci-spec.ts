/**
 * The parts of the OCI runtime specification (config.json, container ids, the state document) that
 * the runtime checks before anything is written: every problem is reported with the JSON path of
 * the offending value (`process.args[0]`, `mounts[2].destination`, `linux.namespaces[1].type`).
 */
import fs from "node:fs";
import path from "node:path";
import { BfcError } from "../errors.ts";

/** The container statuses of the OCI runtime specification. */
export type OciStatus = "creating" | "created" | "running" | "stopped";

/** The state document of `state <id>` (OCI runtime spec, "State"), plus runtime-specific extras. */
export interface OciState {
  ociVersion: string;
  id: string;
  status: OciStatus;
  /** The container process's id; present while created or running. */
  pid?: number;
  /** Absolute path of the bundle handed to the OCI runtime. */
  bundle: string;
  annotations?: Record<string, string>;
}

/** The fields of config.json this runtime reads; the rest is passed through untouched. */
export interface OciConfig {
  ociVersion: string;
  root: { path: string; readonly?: boolean };
  process: {
    args: string[];
    cwd: string;
    env?: string[];
    terminal?: boolean;
    user?: { uid: number; gid: number };
    [key: string]: unknown;
  };
  hostname?: string;
  mounts?: { destination: string; source?: string; type?: string; options?: string[] }[];
  annotations?: Record<string, string>;
  linux?: { namespaces?: { type: string; path?: string }[]; resources?: unknown; [key: string]: unknown };
  [key: string]: unknown;
}

/** The OCI specification version reported in state documents. */
export const OCI_VERSION = "1.0.2";

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const ID_MAX = 64;

/** Container ids name files, cgroups and runc state: letters, digits, `_`, `.`, `-`, at most 64. */
export function checkId(id: string): string {
  if (typeof id !== "string" || !ID_RE.test(id) || id.length > ID_MAX) {
    throw new BfcError(
      "EINVAL",
      "INVALID_ARGUMENT",
      `invalid container id '${id}': use 1 to ${ID_MAX} letters, digits, '_', '.' or '-', starting with a letter or digit`,
    );
  }
  return id;
}

const NAMESPACES = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"];

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Validates one config document; `where` names it in messages (the bundle's config.json). */
class Checker {
  readonly where: string;
  constructor(where: string) {
    this.where = where;
  }

  fail(at: string, what: string): never {
    throw new BfcError("EINVAL", "BAD_BUNDLE", `${this.where}: ${at}: ${what}`, { field: at });
  }

  object(v: unknown, at: string): Json {
    if (!isObject(v)) this.fail(at, v === undefined ? "is required" : `must be an object, got ${show(v)}`);
    return v;
  }

  string(v: unknown, at: string): string {
    if (typeof v !== "string")
      this.fail(at, v === undefined ? "is required" : `must be a string, got ${show(v)}`);
    return v;
  }

  optString(v: unknown, at: string): void {
    if (v !== undefined) this.string(v, at);
  }

  absolute(v: unknown, at: string): string {
    const s = this.string(v, at);
    if (!s.startsWith("/")) this.fail(at, `must be an absolute path, got ${show(s)}`);
    return s;
  }

  stringArray(v: unknown, at: string, nonEmpty = false): string[] {
    if (!Array.isArray(v))
      this.fail(at, v === undefined ? "is required" : `must be an array, got ${show(v)}`);
    if (nonEmpty && v.length === 0) this.fail(at, "must not be empty");
    v.forEach((x, i) => {
      this.string(x, `${at}[${i}]`);
    });
    return v as string[];
  }

  uint32(v: unknown, at: string): number {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      this.fail(
        at,
        v === undefined ? "is required" : `must be a whole number from 0 to 4294967295, got ${show(v)}`,
      );
    }
    return v;
  }

  optBool(v: unknown, at: string): void {
    if (v !== undefined && typeof v !== "boolean") this.fail(at, `must be true or false, got ${show(v)}`);
  }
}

/** Checks a parsed config.json; returns it typed. */
export function validateOciConfig(doc: unknown, where = "config.json"): OciConfig {
  const c: Checker = new Checker(where);
  const top = c.object(doc, "(document)");
  const version = c.string(top.ociVersion, "ociVersion");
  const m = /^(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?$/.exec(version);
  if (!m) c.fail("ociVersion", `must be a SemVer version such as "1.0.2", got ${show(version)}`);
  if (m[1] !== "1") c.fail("ociVersion", `version ${version} is not supported (this runtime reads 1.x)`);

  const root = c.object(top.root, "root");
  const rootPath = c.string(root.path, "root.path");
  if (rootPath === "") c.fail("root.path", "must not be empty");
  c.optBool(root.readonly, "root.readonly");

  const proc = c.object(top.process, "process");
  c.stringArray(proc.args, "process.args", true);
  if ((proc.args as string[])[0] === "") c.fail("process.args[0]", "must name the program to run");
  c.absolute(proc.cwd, "process.cwd");
  if (proc.env !== undefined) {
    c.stringArray(proc.env, "process.env").forEach((e, i) => {
      if (!/^[^=]+=/.test(e)) c.fail(`process.env[${i}]`, `must be KEY=VALUE, got ${show(e)}`);
    });
  }
  c.optBool(proc.terminal, "process.terminal");
  if (proc.user !== undefined) {
    const user = c.object(proc.user, "process.user");
    c.uint32(user.uid, "process.user.uid");
    c.uint32(user.gid, "process.user.gid");
  }
  c.optString(top.hostname, "hostname");

  if (top.mounts !== undefined) {
    if (!Array.isArray(top.mounts)) c.fail("mounts", `must be an array, got ${show(top.mounts)}`);
    top.mounts.forEach((mt, i) => {
      const at = `mounts[${i}]`;
      const o = c.object(mt, at);
      c.absolute(o.destination, `${at}.destination`);
      c.optString(o.source, `${at}.source`);
      c.optString(o.type, `${at}.type`);
      if (o.options !== undefined) c.stringArray(o.options, `${at}.options`);
    });
  }
  if (top.annotations !== undefined) {
    const a = c.object(top.annotations, "annotations");
    for (const [k, v] of Object.entries(a)) {
      if (k === "") c.fail("annotations", "keys must not be empty");
      c.string(v, `annotations.${k}`);
    }
  }
  if (top.linux !== undefined) {
    const linux = c.object(top.linux, "linux");
    if (linux.namespaces !== undefined) {
      if (!Array.isArray(linux.namespaces)) {
        c.fail("linux.namespaces", `must be an array, got ${show(linux.namespaces)}`);
      }
      const seen = new Set<string>();
      linux.namespaces.forEach((ns, i) => {
        const at = `linux.namespaces[${i}]`;
        const o = c.object(ns, at);
        const type = c.string(o.type, `${at}.type`);
        if (!NAMESPACES.includes(type)) {
          c.fail(`${at}.type`, `unknown namespace ${show(type)} (one of ${NAMESPACES.join(", ")})`);
        }
        if (seen.has(type)) c.fail(`${at}.type`, `namespace ${show(type)} is listed twice`);
        seen.add(type);
        if (o.path !== undefined) c.absolute(o.path, `${at}.path`);
      });
    }
    if (linux.resources !== undefined) c.object(linux.resources, "linux.resources");
  }
  return top as OciConfig;
}

const CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/**
 * A config.json in the shape `runc spec` writes (namespaces, the usual /proc, /dev and /sys
 * mounts, few capabilities, no new privileges), running `args` as root with `env` added to PATH,
 * and with a writable root (the runtime gives every container its own writable layer).
 */
export function defaultOciConfig(args: string[], env: string[] = []): OciConfig {
  return {
    ociVersion: OCI_VERSION,
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args,
      env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm", ...env],
      cwd: "/",
      capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS, ambient: CAPS },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: false },
    hostname: "container",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      {
        destination: "/dev",
        type: "tmpfs",
        source: "tmpfs",
        options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
      },
      {
        destination: "/dev/pts",
        type: "devpts",
        source: "devpts",
        options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
      },
      {
        destination: "/dev/shm",
        type: "tmpfs",
        source: "shm",
        options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
      },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: "rwm" }] },
      namespaces: [{ type: "pid" }, { type: "network" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }],
      maskedPaths: ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
  };
}

/** Parses and validates config.json text. */
export function parseOciConfig(text: string, where: string): OciConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new BfcError("EINVAL", "BAD_BUNDLE", `${where}: not valid JSON: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return validateOciConfig(doc, where);
}

export interface Bundle {
  /** Absolute bundle directory. */
  dir: string;
  config: OciConfig;
  /** Absolute path of the root filesystem (root.path resolved against the bundle). */
  rootfs: string;
}

/** Reads and checks an OCI bundle directory: config.json valid, the root filesystem a directory. */
export function readBundle(dir: string): Bundle {
  const abs = path.resolve(dir);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch (e) {
    throw new BfcError("ENOENT", "BAD_BUNDLE", `bundle '${abs}' does not exist`, { path: abs, cause: e });
  }
  if (!st.isDirectory()) throw new BfcError("ENOTDIR", "BAD_BUNDLE", `bundle '${abs}' is not a directory`);
  const file = path.join(abs, "config.json");
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === "ENOENT";
    throw new BfcError(
      missing ? "ENOENT" : "EIO",
      "BAD_BUNDLE",
      missing ? `bundle '${abs}' has no config.json` : `cannot read '${file}': ${(e as Error).message}`,
      { path: file, cause: e },
    );
  }
  const config = parseOciConfig(text, file);
  const rootfs = path.resolve(abs, config.root.path);
  let rst: fs.Stats | null = null;
  try {
    rst = fs.statSync(rootfs);
  } catch {
    rst = null;
  }
  if (!rst?.isDirectory()) {
    throw new BfcError(
      "ENOENT",
      "BAD_BUNDLE",
      `${file}: root.path: the root filesystem '${rootfs}' ${rst ? "is not a directory" : "does not exist"}`,
      { path: rootfs, field: "root.path" },
    );
  }
  return { dir: abs, config, rootfs };
}
