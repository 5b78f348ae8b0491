/** The host's mount table (this process's mount namespace), from /proc/self/mountinfo. */
import fs from "node:fs";

export interface MountEntry {
  mountpoint: string;
  fstype: string;
  source: string;
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
const decodeOctal = (s: string): string =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));

/** Every mount, in mount order. */
export function hostMounts(): MountEntry[] {
  let text = "";
  try {
    text = fs.readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return [];
  }
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const mp = line.slice(0, sep).split(" ")[4];
    const [fstype, source] = line.slice(sep + 3).split(" ");
    if (mp)
      out.push({ mountpoint: decodeOctal(mp), fstype: fstype ?? "", source: decodeOctal(source ?? "") });
  }
  return out;
}

/** Mounts at `dir` or beneath it, deepest first (the order to unmount them in). */
export function mountsAtOrUnder(dir: string): MountEntry[] {
  return hostMounts()
    .filter((m) => m.mountpoint === dir || m.mountpoint.startsWith(`${dir}/`))
    .sort((a, b) => b.mountpoint.length - a.mountpoint.length);
}
