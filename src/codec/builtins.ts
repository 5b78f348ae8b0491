/**
 * node:zlib and node:crypto, loaded at their first use instead of at import. Each costs a process
 * or worker thread 7–11 ms of its start here, and many runs never need them: a listing, a
 * mount of an unencrypted container (whose serving threads each load the reader), a stat.
 */
import type crypto from "node:crypto";
import type zlib from "node:zlib";

let zlibModule: typeof zlib | undefined;
let cryptoModule: typeof crypto | undefined;

export function lazyZlib(): typeof zlib {
  zlibModule ??= process.getBuiltinModule("node:zlib");
  return zlibModule;
}

export function lazyCrypto(): typeof crypto {
  cryptoModule ??= process.getBuiltinModule("node:crypto");
  return cryptoModule;
}
