/**
 * `bfc mount <source> <mountpoint>`: serves a container (or a zip, a folder, or the ext2/3/4 filesystem
 * of a disk image) through FUSE so other processes use it as an ordinary folder (read-only, or with --rw a container whose changes become
 * commits). Without --foreground the command returns once
 * the mount is ready (a child process reports readiness on a pipe) and the filesystem keeps running
 * in the background until `bfc umount`, SIGINT or SIGTERM.
 */
import fs from "node:fs";
import path from "node:path";
import { type Command, Option } from "commander";
import type { SpillStore } from "../container/spill.ts";
import { BfcError, fromSystemError } from "../errors.ts";
import type { FuseMount, FuseSource } from "../fuse/mount.ts";
import { canonicalMountpoint } from "../fuse/mountpoints.ts";
import type { BfcMountOptions } from "../vfs/types/bfc.ts";
import type { DiskMountOptions } from "../vfs/types/disk.ts";
import type { Vfs } from "../vfs/vfs.ts";
import { CliError, type Ctx, describe, intOption, run, UsageError } from "./common.ts";
import { backingPolicy, repeatable } from "./disk.ts";
import {
  addSecretOptions,
  explicitCredentials,
  implicitPassword,
  PASSWORD_ENV,
  readerOptions,
  type SecretOptions,
} from "./password.ts";

interface MountOptions extends SecretOptions {
  type?: string;
  foreground?: boolean;
  allowOther?: boolean;
  uid?: string;
  gid?: string;
  debug?: boolean;
  log?: string;
  fuseBackend?: "kernel" | "native";
  threads?: string;
  readdirplus?: "adaptive" | "always" | "auto" | "never";
  readyFd?: string;
  rw?: boolean;
  commitInterval?: string;
  compression?: string;
  compressionLevel?: string;
  message?: string;
  partition?: string;
  allowBacking?: string[];
}

/** Seconds between commits of a read-write mount when --commit-interval is not given. */
const DEFAULT_COMMIT_INTERVAL = 30;

const TYPES = ["bfc", "zip", "dir", "disk"] as const;

/** A disk image: QCOW2 magic, an MBR/GPT boot signature, or an ext superblock at byte 1024. */
function isDiskImage(head: Buffer): boolean {
  if (head.toString("latin1", 0, 4) === "QFI\xfb") return true;
  if (head.length >= 512 && head[510] === 0x55 && head[511] === 0xaa) return true;
  return head.length >= 1082 && head.readUInt16LE(1080) === 0xef53;
}

/** The filesystem type of a source from what it is and its first bytes. */
export function detectType(source: string): (typeof TYPES)[number] {
  let st: fs.Stats;
  try {
    st = fs.statSync(source);
  } catch (e) {
    throw new BfcError("ENOENT", "NOT_FOUND", `cannot open '${source}': ${(e as Error).message}`, {
      path: source,
    });
  }
  if (st.isDirectory()) return "dir";
  const buf = Buffer.alloc(2048);
  const fd = fs.openSync(source, "r");
  let head: Buffer;
  try {
    head = buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0));
  } finally {
    fs.closeSync(fd);
  }
  if (head.toString("latin1", 0, 6) === "BFCFv1") return "bfc";
  if (head[0] === 0x50 && head[1] === 0x4b && [3, 5, 7].includes(head[2] as number)) return "zip";
  if (isDiskImage(head)) return "disk";
  throw new CliError(
    `cannot tell what '${source}' is (not a BFC container, zip, disk image or folder); pass --type`,
    "BAD_MAGIC",
  );
}

function parseThreads(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 64)
    throw new UsageError(`--threads must be a number from 1 to 64, not '${v}'`);
  return Number(v);
}

function parseId(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) > 0xffffffff)
    throw new UsageError(`${what} must be a number, not '${v}'`);
  return Number(v);
}

/** The writable bfc type's options from --commit-interval, -c, -l and -m (checked before mounting). */
function writableOptions(o: MountOptions): {
  commitInterval: number;
  compression: "none" | "zstd" | "auto";
  level?: number;
  message?: string;
} {
  const compression = o.compression ?? "none";
  if (compression !== "none" && compression !== "zstd" && compression !== "auto") {
    throw new UsageError(`-c/--compression must be none, zstd or auto, got '${o.compression}'`);
  }
  const interval = o.commitInterval ?? String(DEFAULT_COMMIT_INTERVAL);
  if (!/^\d+$/.test(interval) || Number(interval) > 86400) {
    throw new UsageError(`--commit-interval must be a number of seconds (0 to 86400), not '${interval}'`);
  }
  return {
    commitInterval: Number(interval),
    compression,
    level: intOption(o.compressionLevel, "-l/--compression-level", 1, 22),
    message: o.message ?? "bfc mount --rw",
  };
}

/**
 * Says (in the mount's log) when the interval timer's commits start failing and when they work
 * again, not at every failed attempt: the changes stay staged meanwhile, fsync and `bfc umount`
 * report the failure to whoever waits for it.
 */
function timerCommitReporter(ctx: Ctx, container: string): (error: unknown) => void {
  let failed = 0;
  return (error) => {
    if (error === undefined) {
      if (failed > 0) ctx.warn(`committing to ${container} works again (after ${failed} failed attempts)`);
      failed = 0;
      return;
    }
    if (failed++ > 0) return;
    const d = describe(error);
    ctx.warn(
      `cannot commit to ${container}: ${d.what} (${d.reason}); the changes stay staged here and the next commit tries again`,
    );
  };
}

/** The disk type's mount options from --partition and --allow-backing. */
function diskOptions(image: string, o: MountOptions): DiskMountOptions & Record<string, unknown> {
  const d: DiskMountOptions & Record<string, unknown> = { image };
  const partition = intOption(o.partition, "--partition", 0, 65535);
  if (partition !== undefined) d.partition = partition;
  const allow = backingPolicy(o.allowBacking);
  if (allow !== undefined) d.allowBacking = allow;
  return d;
}

/** Runs the filesystem in this process until unmounted or signalled. */
async function serve(
  ctx: Ctx,
  source: string,
  mountpoint: string,
  o: MountOptions,
  ready: (err?: unknown) => void,
): Promise<number> {
  // Signals are taken from the start: one that arrives while the mount is being set up (the kernel
  // may already be sending requests) unmounts as soon as there is something to unmount.
  let m: FuseMount | undefined;
  let stopAsked = false;
  const stop = (): void => {
    stopAsked = true;
    m?.unmount().catch((e: unknown) => ctx.report(e));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  process.once("SIGHUP", stop);
  const type = o.type ?? detectType(source);
  const uid = parseId(o.uid, "--uid");
  const gid = parseId(o.gid, "--gid");
  const creds = (await explicitCredentials(o)) ?? {};
  if (!("key" in creds) && !creds.password && process.env[PASSWORD_ENV])
    creds.password = process.env[PASSWORD_ENV];
  const { mountFuse } = await import("../fuse/mount.ts");
  const abs = path.resolve(source);
  let fuseSource: FuseSource;
  let spill: SpillStore | undefined;
  let live: Vfs | undefined;
  let containerFd: number | undefined;
  if (o.rw) {
    // Changes are staged beside the container and committed by this thread: one VFS, served here.
    const { createVfs } = await import("../vfs/index.ts");
    live = createVfs();
    await live.mount("bfc", "/", {
      path: abs,
      ...creds,
      ...writableOptions(o),
      writable: true,
      onTimerCommit: timerCommitReporter(ctx, abs),
    });
    fuseSource = live;
  } else if (type === "bfc") {
    const [{ SpillStore }, { Reader }] = await Promise.all([
      import("../container/spill.ts"),
      import("../container/reader.ts"),
    ]);
    // One descriptor for every thread: the kernel's readahead on the container then sees the
    // threads' reads as the one sequential stream they usually are.
    let fd: number;
    try {
      fd = fs.openSync(abs, "r");
    } catch (e) {
      throw fromSystemError(e, `cannot open container '${abs}'`, abs);
    }
    containerFd = fd;
    const store = SpillStore.create();
    spill = store;
    fuseSource = {
      // Called while `mount` runs. The index is read, checked and parsed once, here; every thread
      // attaches to it. A password's key is derived once too, and handed over instead.
      prepare: async () => {
        const bfcOptions: BfcMountOptions = { path: abs, ...creds, ...readerOptions(o), fd };
        const r = await Reader.open(abs, { ...creds, ...readerOptions(o), fd });
        try {
          if (creds.password !== undefined) {
            const key = await r.knownKey();
            if (key) {
              delete bfcOptions.password;
              bfcOptions.key = key;
            }
          }
          bfcOptions.shared = r.share();
        } finally {
          r.close();
        }
        return [
          {
            type: "bfc",
            target: "/",
            options: { ...bfcOptions, spill: store },
            // Serving threads may block: they make a large file's decoded copy themselves.
            threadOptions: { ...bfcOptions, spill: store.share(), spillSync: true },
          },
        ];
      },
    };
  } else if (type === "zip") {
    fuseSource = { mounts: [{ type: "zip", target: "/", options: { path: abs } }] };
  } else if (type === "disk") {
    // An image is immutable while mounted: serving threads each open it.
    fuseSource = { mounts: [{ type: "disk", target: "/", options: diskOptions(abs, o) }] };
  } else if (type === "dir") {
    // A host folder can change under the mount: one thread serves it, from a VFS made here.
    const { createVfs } = await import("../vfs/index.ts");
    live = createVfs();
    await live.mount("host", "/", { root: abs, readonly: true });
    fuseSource = live;
  } else throw new UsageError(`unknown --type '${type}' (one of: ${TYPES.join(", ")})`);
  const release = async () => {
    await live?.unmountAll();
    spill?.close();
    if (containerFd !== undefined) fs.closeSync(containerFd);
  };
  try {
    m = await mountFuse(fuseSource, mountpoint, {
      immutable: !o.rw,
      allowOther: o.allowOther,
      debug: o.debug,
      uid,
      gid,
      fsname: abs,
      backend: o.fuseBackend,
      threads: parseThreads(o.threads),
      readdirplus: o.readdirplus,
    });
  } catch (e) {
    await release();
    throw e;
  }
  ctx.debug(
    `mounted ${abs} (${type}${o.rw ? ", read-write" : ""}) at ${m.mountpoint} (${m.backend} backend)`,
  );
  ready();
  if (stopAsked) stop();
  await m.closed;
  await release();
  return 0;
}

/**
 * Whether a container is password-encrypted. Only a header with a salt can be (checked first: the
 * index of a large container costs a noticeable part of the time to mount to read), and then its
 * entries must be encrypted.
 */
async function needsPassword(source: string): Promise<boolean> {
  const { HEADER_MAGIC, HEADER_SIZE, SALT_OFFSET, SALT_SIZE } = await import("../format/constants.ts");
  const { saltIsSet } = await import("../format/salt.ts");
  const head = Buffer.alloc(HEADER_SIZE);
  let n: number;
  const fd = fs.openSync(source, "r");
  try {
    n = fs.readSync(fd, head, 0, HEADER_SIZE, 0);
  } finally {
    fs.closeSync(fd);
  }
  // Magic and salt only: the header's checksum is for the mount process to check, and what is
  // wrong with a header is reported from there.
  if (n < HEADER_SIZE || !head.subarray(0, HEADER_MAGIC.length).equals(HEADER_MAGIC)) return false;
  if (!saltIsSet(head.subarray(SALT_OFFSET, SALT_OFFSET + SALT_SIZE))) return false;
  const { Reader } = await import("../container/reader.ts");
  const r = await Reader.open(source);
  try {
    return r.encryptionMode === "password";
  } finally {
    r.close();
  }
}

/** Starts `bfc mount --foreground` in the background and waits for it to say the mount is ready. */
async function background(ctx: Ctx, source: string, mountpoint: string, o: MountOptions): Promise<number> {
  // Ask for a password here, on the terminal, and hand it over in the environment (not argv).
  const env = { ...process.env };
  const creds = await explicitCredentials(o);
  if (!creds && (o.type ?? detectType(source)) === "bfc" && (await needsPassword(source))) {
    const pw = await implicitPassword(ctx, `'${source}'`);
    if (pw !== undefined) env[PASSWORD_ENV] = pw;
  } else if (creds?.password !== undefined) env[PASSWORD_ENV] = Buffer.from(creds.password).toString();
  const args: string[] = [];
  if (o.type) args.push("--type", o.type);
  if (o.keyfile) args.push("--keyfile", path.resolve(o.keyfile));
  if (o.allowOther) args.push("--allow-other");
  if (o.uid) args.push("--uid", o.uid);
  if (o.gid) args.push("--gid", o.gid);
  if (o.commit !== undefined) args.push("--commit", o.commit);
  if (o.debug) args.push("--debug");
  if (o.rw) args.push("--rw");
  if (o.commitInterval !== undefined) args.push("--commit-interval", o.commitInterval);
  if (o.compression !== undefined) args.push("--compression", o.compression);
  if (o.compressionLevel !== undefined) args.push("--compression-level", o.compressionLevel);
  if (o.message !== undefined) args.push("--message", o.message);
  if (o.fuseBackend) args.push("--fuse-backend", o.fuseBackend);
  if (o.threads) args.push("--threads", o.threads);
  if (o.readdirplus) args.push("--readdirplus", o.readdirplus);
  if (o.partition !== undefined) args.push("--partition", o.partition);
  for (const dir of o.allowBacking ?? [])
    args.push("--allow-backing", dir === "any" ? dir : path.resolve(dir));
  const { startMountProcess } = await import("../fuse/mount-process.ts");
  const mp = canonicalMountpoint(mountpoint);
  try {
    await startMountProcess({
      source: path.resolve(source),
      mountpoint: mp,
      args,
      env,
      log: o.log,
    });
  } catch (e) {
    const err = e as BfcError;
    throw new CliError(err.message, err.reason ?? "IO_ERROR");
  }
  ctx.say(`mounted ${source} at ${mp} (bfc umount ${mp} to unmount)`);
  return 0;
}

async function mount(ctx: Ctx, source: string, mountpoint: string, o: MountOptions): Promise<number> {
  if (o.type !== undefined && !(TYPES as readonly string[]).includes(o.type)) {
    throw new UsageError(`unknown --type '${o.type}' (one of: ${TYPES.join(", ")})`);
  }
  if (o.partition !== undefined || o.allowBacking !== undefined) {
    intOption(o.partition, "--partition", 0, 65535);
    if ((o.type ?? detectType(source)) !== "disk") {
      throw new UsageError("--partition and --allow-backing apply to disk images only");
    }
  }
  if (readerOptions(o).commit !== undefined && (o.type ?? detectType(source)) !== "bfc") {
    throw new UsageError("--commit applies to BFC containers only");
  }
  if (o.rw) {
    if ((o.type ?? detectType(source)) !== "bfc") throw new UsageError("--rw applies to BFC containers only");
    if (o.commit !== undefined) {
      throw new UsageError("--rw shows the latest commit; --commit mounts an older one read-only");
    }
    writableOptions(o);
  } else {
    const given = [
      o.commitInterval !== undefined && "--commit-interval",
      o.compression !== undefined && "-c/--compression",
      o.compressionLevel !== undefined && "-l/--compression-level",
      o.message !== undefined && "-m/--message",
    ].filter(Boolean);
    if (given.length) throw new UsageError(`${given.join(", ")} apply to read-write mounts (--rw) only`);
  }
  if (!o.foreground) return background(ctx, source, mountpoint, o);
  const readyFd = o.readyFd === undefined ? undefined : Number(o.readyFd);
  let told = false;
  const tell = (err?: unknown): void => {
    if (told || readyFd === undefined) return;
    told = true;
    const e = err as BfcError | undefined;
    const line = err
      ? JSON.stringify({ error: e?.message ?? String(err), reason: e?.reason ?? "IO_ERROR" })
      : JSON.stringify({ ok: true });
    try {
      fs.writeSync(readyFd, `${line}\n`);
      fs.closeSync(readyFd);
    } catch {
      // the parent went away; keep serving
    }
  };
  try {
    return await serve(ctx, source, mountpoint, o, tell);
  } catch (e) {
    tell(e);
    throw e;
  }
}

export function register(program: Command): void {
  const cmd = program
    .command("mount")
    .description(
      "serve a container (or zip, folder, or disk image) as a folder through FUSE (read-only unless --rw)",
    )
    .argument("<source>", "a BFC container, a zip archive, a folder, or a raw or QCOW2 disk image (ext2/3/4)")
    .argument("<mountpoint>", "an empty directory")
    .addOption(
      new Option("-t, --type <type>", "source type (default: from the file's magic)").choices([...TYPES]),
    )
    .option("-f, --foreground", "stay in the foreground until unmounted (Ctrl-C unmounts)")
    .option("-w, --rw", "read-write (BFC containers): changes are committed as new commits")
    .option(
      "--commit-interval <seconds>",
      `--rw: commit staged changes this often, besides fsync and unmount (0: only then; default ${DEFAULT_COMMIT_INTERVAL})`,
    )
    .option("-c, --compression <type>", "--rw: how new and changed files are stored: none, zstd or auto")
    .option("-l, --compression-level <n>", "--rw: zstd level 1..22 (default 3)")
    .option("-m, --message <text>", "--rw: the message recorded with the mount's commits")
    .option(
      "--allow-other",
      "let other users see the mount (needs user_allow_other in /etc/fuse.conf unless root)",
    )
    .option("--uid <n>", "report this owner for every entry")
    .option("--gid <n>", "report this group for every entry")
    .option("--debug", "log every failing filesystem call on stderr")
    .option("--log <file>", "in the background, append the mount process's messages to <file>")
    .option("--partition <n>", "disk images: the partition to mount (0: the whole disk)")
    .option(
      "--allow-backing <dir>",
      "disk images: also follow QCOW2 backing files under <dir> ('any': anywhere); repeatable",
      repeatable,
    )
    .addOption(
      new Option(
        "--fuse-backend <backend>",
        "kernel: FUSE protocol on /dev/fuse from worker threads (root); native: fuse-native/libfuse 2 (default: kernel when it can mount, else native)",
      ).choices(["kernel", "native"]),
    )
    .option("--threads <n>", "kernel backend: threads serving a container or zip (default: one per core)")
    .addOption(new Option("--readdirplus <when>").choices(["adaptive", "always", "auto", "never"]).hideHelp())
    .addOption(new Option("--ready-fd <fd>").hideHelp());
  addSecretOptions(cmd)
    .addHelpText(
      "after",
      `
A read-only mount lets the kernel cache names, attributes and pages for an hour (the source is
immutable while mounted). Files whose integrity check fails read as I/O errors, never as wrong bytes.

With --rw (BFC containers) changes are staged (small files in memory, larger ones in a scratch
folder beside the container) and committed as a new commit on fsync, every --commit-interval
seconds and at unmount; each commit appends only what changed and the earlier commits stay readable
('bfc log', --commit N). Killing the mount process loses at most the uncommitted changes, never the
container. While mounted, other updates ('bfc add' …) fail with LOCKED (or wait, with --wait).

Examples:
  bfc mount site.bfc /mnt/site && ls /mnt/site && bfc umount /mnt/site
  bfc mount --rw -c zstd work.bfc /mnt/work && cp -r src /mnt/work && bfc umount /mnt/work
  bfc mount -f --debug deps.zip /mnt/deps
  BFC_PASSWORD=secret bfc mount secret.bfc /mnt/secret
  bfc mount --partition 1 vm.qcow2 /mnt/vm`,
    )
    .action((source: string, mountpoint: string, opts: MountOptions, c: Command) =>
      run(c, (ctx) => mount(ctx, source, mountpoint, opts)),
    );
}
