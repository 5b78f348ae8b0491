/**
 * Runs the `bfc` command as a subprocess (from source, so no build is needed) and prepares the
 * reference's input tree with the modes and times MANIFEST.md lists.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { ROOT, VECTORS } from "../helpers.ts";

export const MAIN = path.join(ROOT, "src", "cli", "main.ts");
export const MANIFEST = fs.readFileSync(path.join(VECTORS, "MANIFEST.md"), "utf8");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  input?: string | Buffer;
  /** Run this script instead of the source entry point (e.g. dist/cli/main.js). */
  script?: string;
}

/** A clean environment: TZ=UTC, no BFC_PASSWORD unless given, never a progress bar. */
export function bfc(args: string[], opts: RunOptions = {}): RunResult {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("BFC_")) env[k] = v;
  env.TZ = "UTC";
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const r = spawnSync(process.execPath, [opts.script ?? MAIN, ...args], {
    cwd: opts.cwd ?? VECTORS,
    env,
    input: Buffer.from(opts.input ?? ""),
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** Same as bfc() but with stdout kept as bytes (for cat). */
export function bfcRaw(
  args: string[],
  opts: RunOptions = {},
): { code: number; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    cwd: opts.cwd ?? VECTORS,
    env: { ...process.env, TZ: "UTC", ...opts.env },
    input: opts.input ?? "",
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** Lines of a fenced block in MANIFEST.md following `heading` (inside `section` if given), without `[exit code…]`. */
export function manifestBlock(
  heading: string,
  section?: string,
): { stdout: string[]; stderr: string[]; code: number } {
  let text = MANIFEST;
  if (section) {
    const at = text.indexOf(section);
    if (at < 0) throw new Error(`no section ${section}`);
    text = text.slice(at + section.length);
  }
  const at = text.indexOf(heading);
  if (at < 0) throw new Error(`no heading ${heading}`);
  const block = text.slice(at + heading.length).split("```")[1];
  const lines = block.replace(/^\n/, "").replace(/\n$/, "").split("\n");
  const stdout: string[] = [];
  const stderr: string[] = [];
  let code = 0;
  let inErr = false;
  for (const l of lines) {
    const m = /^\[exit code: (\d+)\]$/.exec(l);
    if (m) code = Number(m[1]);
    else if (l === "----- stderr -----") inErr = true;
    else (inErr ? stderr : stdout).push(l);
  }
  return { stdout, stderr, code };
}

export function lines(s: string): string[] {
  const out = s.split("\n");
  if (out[out.length - 1] === "") out.pop();
  return out;
}

/**
 * Copies ../shared/vectors/input into `dir`/input and applies what git does not keep (MANIFEST.md,
 * "Resulting tree"): modes, mtimes, the hello-link symlink and the empty directory.
 */
export function prepareInput(dir: string): string {
  const root = path.join(dir, "input");
  fs.cpSync(path.join(VECTORS, "input"), root, { recursive: true });
  const writable = (d: string) => {
    fs.chmodSync(d, 0o755);
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) writable(path.join(d, e.name));
      else if (e.isFile()) fs.chmodSync(path.join(d, e.name), 0o644);
    }
  };
  writable(root);
  const tree = MANIFEST.split("Resulting tree")[1].split("```")[1].trim().split("\n");
  const dirs: { full: string; t: Date; mode: number }[] = [];
  for (const line of tree) {
    const m = /^(\S{10}) (\S+ \S+) (\d+) \.\/(.+?)(?: -> (\S+))? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsed manifest line: ${line}`);
    const [, modeStr, when, , rel, target] = m;
    const full = path.join(root, rel);
    const t = new Date(`${when.replace(" ", "T")}Z`);
    let mode = 0;
    for (let k = 1; k < 10; k++) if (modeStr[k] !== "-") mode |= 1 << (9 - k);
    if (target) {
      fs.rmSync(full, { force: true });
      fs.symlinkSync(target, full);
      fs.lutimesSync(full, t, t);
    } else if (modeStr[0] === "d") {
      fs.mkdirSync(full, { recursive: true });
      dirs.push({ full, t, mode });
    } else {
      fs.chmodSync(full, mode);
      fs.utimesSync(full, t, t);
    }
  }
  // Directories last, deepest first, so adding their children does not move their times.
  for (const d of dirs.reverse()) {
    fs.chmodSync(d.full, d.mode);
    fs.utimesSync(d.full, d.t, d.t);
  }
  fs.chmodSync(root, 0o755);
  fs.utimesSync(root, new Date("2024-03-04T05:06:07Z"), new Date("2024-03-04T05:06:07Z"));
  return root;
}

/** Asserts one line on stderr per error, in the `bfc: <command>: <what> (<reason>)` form, and no stack trace. */
export function errorLines(stderr: string, command: string | null): { what: string; reason: string }[] {
  const out: { what: string; reason: string }[] = [];
  for (const l of lines(stderr)) {
    const prefix = command ? `bfc: ${command}: ` : "bfc: ";
    if (!l.startsWith(prefix)) throw new Error(`stderr line not in the error format: ${JSON.stringify(l)}`);
    const m = /^(.*) \(([A-Z0-9_]+)\)$/.exec(l.slice(prefix.length));
    if (!m) throw new Error(`stderr line without a (REASON): ${JSON.stringify(l)}`);
    if (/\n\s+at /.test(stderr)) throw new Error("stack trace on stderr");
    out.push({ what: m[1], reason: m[2] });
  }
  return out;
}
