import { BfcError } from "../../errors.ts";

/**
 * An ext2/3/4 structure that is inconsistent or points outside the filesystem. Images are untrusted
 * input, so every check that fails ends here rather than in a crash or a wrong answer.
 */
export function badFs(label: string, message: string, field?: string): BfcError {
  return new BfcError("EIO", "BAD_FILESYSTEM", `${label}: ${message}`, { path: label, field });
}

/** A well-formed feature this reader deliberately does not handle. */
export function unsupportedFs(label: string, message: string): BfcError {
  return new BfcError("ENOTSUP", "UNSUPPORTED", `${label}: ${message}`, { path: label });
}

/** A metadata_csum checksum that does not match. */
export function checksumMismatch(label: string, what: string): BfcError {
  return new BfcError("EIO", "CRC_MISMATCH", `${label}: checksum mismatch in ${what}`, { path: label });
}
