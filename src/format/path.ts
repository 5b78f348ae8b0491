import { BfcError } from "../errors.ts";
import { MAX_PATH_BYTES } from "./constants.ts";

/**
 * Path rules. A stored path is canonical: relative, components separated by single `/`, no empty,
 * `.` or `..` component, no NUL, at most 65535 UTF-8 bytes. Every canonical path is one the reference
 * stores and (except names ending in `.`, see referenceCanLookUp) can look up.
 */

function invalid(input: string, why: string): BfcError {
  return new BfcError("EINVAL", "BAD_PATH", `invalid path '${input}': ${why}`, { path: input });
}

/**
 * Canonicalizes a path given by a user for storing: collapses `//`, drops `.` components and
 * trailing slashes. Rejects empty results, `..`, absolute paths and NUL bytes: a container never
 * records a name that could resolve outside its root.
 */
export function normalizePath(input: string): string {
  if (input.length === 0) throw invalid(input, "empty");
  if (input.charCodeAt(0) === 0x2f) throw invalid(input, "absolute paths are not stored");
  if (input.includes("\0")) throw invalid(input, "contains a NUL byte");
  const out = canonicalParts(input);
  if (out === null) throw invalid(input, "'..' is not allowed");
  if (out.length === 0) throw invalid(input, "names no entry");
  const joined = out.join("/");
  if (Buffer.byteLength(joined) > MAX_PATH_BYTES) {
    throw new BfcError("ENAMETOOLONG", "BAD_PATH", `path is longer than ${MAX_PATH_BYTES} bytes`, {
      path: input.slice(0, 200),
    });
  }
  // Mostly the input itself: callers key maps by the result, and one string serves them all.
  return joined === input ? input : joined;
}

/**
 * Canonicalizes a lookup argument. Lookups are relative to the container root, so leading slashes
 * are accepted and "", ".", "/" all name the root (returned as "").
 */
export function normalizeLookup(input: string): string {
  let start = 0;
  while (start < input.length && input.charCodeAt(start) === 0x2f) start++;
  const rest = start === 0 ? input : input.slice(start);
  if (rest.includes("\0")) throw invalid(input, "contains a NUL byte");
  const out = canonicalParts(rest);
  if (out === null) throw invalid(input, "'..' is not allowed");
  return out.join("/");
}

/** Fast path first: most inputs are already canonical. */
function canonicalParts(input: string): string[] | null {
  if (input.length === 0) return [];
  const parts = input.split("/");
  let clean = true;
  for (const p of parts) {
    if (p === "" || p === "." || p === "..") {
      clean = false;
      break;
    }
  }
  if (clean) return parts;
  const out: string[] = [];
  for (const p of parts) {
    if (p === "" || p === ".") continue;
    if (p === "..") return null;
    out.push(p);
  }
  return out;
}

/**
 * Checks an index path (raw bytes) for the canonical form. Paths from a file are untrusted: a `..`
 * component or a leading `/` would let extraction escape its target, and `.` or empty components
 * would alias another entry. Returns a reason or null.
 */
export function checkStoredPath(buf: Buffer, start: number, end: number): string | null {
  if (end <= start) return "empty path";
  if (end - start > MAX_PATH_BYTES) return "path longer than 65535 bytes";
  let compStart = start;
  for (let i = start; i <= end; i++) {
    const c = i < end ? buf[i] : 0x2f;
    if (c === 0) return "NUL byte in path";
    if (c !== 0x2f) continue;
    const len = i - compStart;
    if (len === 0) return compStart === start ? "absolute path" : "empty path component";
    if (len === 1 && buf[compStart] === 0x2e) return "'.' path component";
    if (len === 2 && buf[compStart] === 0x2e && buf[compStart + 1] === 0x2e) return "'..' path component";
    compStart = i + 1;
  }
  return null;
}

/**
 * The reference C normalizer, reproduced to predict what it accepts (docs/format.md, path rules).
 * Returns null where it rejects the input.
 */
export function referenceNormalize(input: string): string | null {
  const bytes = Buffer.from(input);
  const n = bytes.length;
  if (n === 0 || n > MAX_PATH_BYTES) return null;
  if (bytes[0] === 0x2f) return null;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = bytes[i];
    if (c === 0x2f) {
      if (out.length > 0 && out[out.length - 1] === 0x2f) continue;
      out.push(c);
      continue;
    }
    if (c === 0x2e) {
      const n1 = i + 1 < n ? bytes[i + 1] : -1;
      const n2 = i + 2 < n ? bytes[i + 2] : -1;
      if (n1 === 0x2e && (n2 === 0x2f || n2 === -1)) return null;
      if (n1 === -1) return null;
      if (n1 === 0x2f && i === 0) return null;
    }
    out.push(c);
  }
  if (out.length > 0 && out[out.length - 1] === 0x2f) out.pop();
  if (out.length === 0) return null;
  return Buffer.from(out).toString();
}

/** Whether the reference tool can find this canonical path by name (it rejects names ending in '.'). */
export function referenceCanLookUp(path: string): boolean {
  // For a canonical path the reference only rejects a name ending in '.' (a last component, or one
  // ending in ".." before a slash); most paths are decided here without rebuilding them.
  if (!path.endsWith(".") && !path.includes("../")) return true;
  return referenceNormalize(path) === path;
}

/** Parent of a canonical path; "" for top-level entries. */
export function parentOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "" : path.slice(0, i);
}

export function baseName(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? path : path.slice(i + 1);
}
