/**
 * `bfc mount <source> <mountpoint>`: serves a container (or a zip, a folder, or the ext2/3/4
 * filesystem of a disk image) through FUSE so other processes use it as an ordinary read-only
 * folder. Without --foreground the command returns once the mount is ready (a child process reports
 * readiness on a pipe) and the filesystem keeps running in the background until `bfc umount`,
 * SIGINT or SIGTERM.
 */
import fs from "node:fs";
import path from "node:path";
import { type Command, Option } from "commander";
import { BfcError } from "../errors.ts";
import type { DiskMountOptions } from "../vfs/types/disk.ts";
import { CliError, type Ctx, intOption, run, UsageError } from "./common.ts";
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
  readyFd?: string;
  partition?: string;
  allowBacking?: string[];
}

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

function parseId(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) > 0xffffffff)
    throw new UsageError(`${what} must be a number, not '${v}'`);
  return Number(v);
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
  const type = o.type ?? detectType(source);
  const uid = parseId(o.uid, "--uid");
  const gid = parseId(o.gid, "--gid");
  const creds = (await explicitCredentials(o)) ?? {};
  if (!("key" in creds) && !creds.password && process.env[PASSWORD_ENV])
    creds.password = process.env[PASSWORD_ENV];
  const { createVfs } = await import("../vfs/index.ts");
  const { mountFuse } = await import("../fuse/mount.ts");
  const vfs = createVfs();
  const abs = path.resolve(source);
  if (type === "bfc") await vfs.mount("bfc", "/", { path: abs, ...creds, ...readerOptions(o) });
  else if (type === "zip") await vfs.mount("zip", "/", { path: abs });
  else if (type === "dir") await vfs.mount("host", "/", { root: abs, readonly: true });
  else if (type === "disk") await vfs.mount("disk", "/", diskOptions(abs, o));
  else throw new UsageError(`unknown --type '${type}' (one of: ${TYPES.join(", ")})`);
  let m: Awaited<ReturnType<typeof mountFuse>>;
  try {
    m = await mountFuse(vfs, mountpoint, {
      immutable: true,
      allowOther: o.allowOther,
      debug: o.debug,
      uid,
      gid,
      fsname: abs,
    });
  } catch (e) {
    await vfs.unmountAll();
    throw e;
  }
  ctx.debug(`mounted ${abs} (${type}) at ${m.mountpoint}`);
  ready();
  const stop = (): void => {
    m.unmount().catch((e: unknown) => ctx.report(e));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  process.once("SIGHUP", stop);
  await m.closed;
  await vfs.unmountAll();
  return 0;
}

/** Starts `bfc mount --foreground` in the background and waits for it to say the mount is ready. */
async function background(ctx: Ctx, source: string, mountpoint: string, o: MountOptions): Promise<number> {
  // Ask for a password here, on the terminal, and hand it over in the environment (not argv).
  const env = { ...process.env };
  const creds = await explicitCredentials(o);
  if (!creds && (o.type ?? detectType(source)) === "bfc") {
    const { Reader } = await import("../container/reader.ts");
    const r = await Reader.open(source);
    const needs = r.encryptionMode === "password";
    r.close();
    if (needs) {
      const pw = await implicitPassword(ctx, `'${source}'`);
      if (pw !== undefined) env[PASSWORD_ENV] = pw;
    }
  } else if (creds?.password !== undefined) env[PASSWORD_ENV] = Buffer.from(creds.password).toString();
  const args: string[] = [];
  if (o.type) args.push("--type", o.type);
  if (o.keyfile) args.push("--keyfile", path.resolve(o.keyfile));
  if (o.allowOther) args.push("--allow-other");
  if (o.uid) args.push("--uid", o.uid);
  if (o.gid) args.push("--gid", o.gid);
  if (o.commit !== undefined) args.push("--commit", o.commit);
  if (o.debug) args.push("--debug");
  if (o.partition !== undefined) args.push("--partition", o.partition);
  for (const dir of o.allowBacking ?? [])
    args.push("--allow-backing", dir === "any" ? dir : path.resolve(dir));
  const { startMountProcess } = await import("../fuse/mount-process.ts");
  try {
    await startMountProcess({
      source: path.resolve(source),
      mountpoint: path.resolve(mountpoint),
      args,
      env,
      log: o.log,
    });
  } catch (e) {
    const err = e as BfcError;
    throw new CliError(err.message, err.reason ?? "IO_ERROR");
  }
  ctx.say(
    `mounted ${source} at ${path.resolve(mountpoint)} (bfc umount ${path.resolve(mountpoint)} to unmount)`,
  );
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
    .description("serve a container (or zip, folder, or disk image) as a read-only folder through FUSE")
    .argument("<source>", "a BFC container, a zip archive, a folder, or a raw or QCOW2 disk image (ext2/3/4)")
    .argument("<mountpoint>", "an empty directory")
    .addOption(
      new Option("-t, --type <type>", "source type (default: from the file's magic)").choices([...TYPES]),
    )
    .option("-f, --foreground", "stay in the foreground until unmounted (Ctrl-C unmounts)")
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
    .addOption(new Option("--ready-fd <fd>").hideHelp());
  addSecretOptions(cmd)
    .addHelpText(
      "after",
      `
The mount is read-only; the kernel caches names, attributes and pages for an hour (the source is
immutable while mounted). Files whose integrity check fails read as I/O errors, never as wrong bytes.

Examples:
  bfc mount site.bfc /mnt/site && ls /mnt/site && bfc umount /mnt/site
  bfc mount -f --debug deps.zip /mnt/deps
  BFC_PASSWORD=secret bfc mount secret.bfc /mnt/secret
  bfc mount --partition 1 vm.qcow2 /mnt/vm`,
    )
    .action((source: string, mountpoint: string, opts: MountOptions, c: Command) =>
      run(c, (ctx) => mount(ctx, source, mountpoint, opts)),
    );
}
