import fs from "node:fs";
import path from "node:path";
import { BfcError, fromSystemError } from "../errors.ts";

// Backing files named inside an image are untrusted input: a hostile qcow2 naming /etc/shadow (as
// raw) would otherwise copy a host file into whatever is made from the image. So a backing file is
// followed only when, after resolving symlinks, it lies under an allowed directory: the top image's
// own directory (and below), and whatever else the caller allows explicitly.

/**
 * Where backing files may live besides the top image's own directory: "any", or more directories
 * (each with everything below it).
 */
export type BackingPolicy = "any" | readonly string[];

/** qemu's chains are unbounded; a real one is a handful of links. */
export const MAX_BACKING_DEPTH = 16;

/** The allowed directories with symlinks resolved (the image's own first), or "any". */
export function backingRoots(policy: BackingPolicy | undefined, image: string): "any" | string[] {
  if (policy === "any") return "any";
  const dirs = [path.dirname(path.resolve(image)), ...(policy ?? [])];
  return dirs.map((d) => {
    try {
      return fs.realpathSync(d);
    } catch {
      return path.resolve(d);
    }
  });
}

function isUnder(file: string, dir: string): boolean {
  const rel = path.relative(dir, file);
  return rel !== "" && rel !== ".." && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

export interface ResolvedBacking {
  /** The name joined to the naming image's directory: what qemu opens, and where the next relative name starts. */
  path: string;
  /** The same with symlinks resolved: what the policy was checked against. */
  real: string;
}

/**
 * Where the backing file `name` recorded in `image` is (a relative name is taken from the directory
 * of `image` as it was named, as qemu does). Throws if it names a protocol rather than a file, does
 * not exist, or falls outside `roots`.
 */
export function resolveBackingFile(
  image: string,
  name: string,
  roots: "any" | readonly string[],
): ResolvedBacking {
  // qemu treats a ':' before any '/' as a protocol prefix (json:, nbd:, http:, file:).
  const firstStop = name.search(/[:/\\]/);
  if (firstStop >= 0 && name[firstStop] === ":") {
    throw new BfcError(
      "ENOTSUP",
      "UNSUPPORTED",
      `${image}: backing file '${name}' names a protocol, not a local file; only local files are supported`,
      { path: image },
    );
  }
  const full = path.resolve(path.dirname(image), name);
  let real: string;
  try {
    real = fs.realpathSync(full);
  } catch (e) {
    const err = fromSystemError(e, `${image}: cannot open its backing file '${name}' (${full})`, full);
    throw err.code === "ENOENT"
      ? new BfcError("ENOENT", "NOT_FOUND", err.message, { path: full, cause: e })
      : err;
  }
  if (roots !== "any" && !roots.some((dir) => isUnder(real, dir))) {
    const where = roots.length === 1 ? `'${roots[0]}'` : `any of ${roots.map((r) => `'${r}'`).join(", ")}`;
    throw new BfcError(
      "EACCES",
      "UNSAFE_PATH",
      `${image}: backing file '${name}' resolves to '${real}', outside ${where}; ` +
        `backing files elsewhere must be allowed explicitly (allowBacking: "any" or its directory)`,
      { path: real },
    );
  }
  return { path: full, real };
}

/** An identity for loop detection that survives hard links and different spellings of a path. */
export function fileIdentity(file: string): string {
  try {
    const st = fs.statSync(file, { bigint: true });
    return `${st.dev}:${st.ino}`;
  } catch (e) {
    throw fromSystemError(e, `cannot stat '${file}'`, file);
  }
}
