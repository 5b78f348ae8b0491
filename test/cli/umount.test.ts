/**
 * `bfc umount`'s reading of a serving process's command line: a read-write mount is committed
 * before it is unmounted (the whole behaviour is tested through real mounts in
 * test/fuse/mount-rw.test.ts).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { readWriteMount } from "../../src/cli/umount.ts";

describe("bfc umount: which mounts are read-write", () => {
  const argv = (...a: string[]) => ["/usr/bin/node", "/opt/bfc/dist/cli/main.js", "mount", ...a];

  it("knows --rw and -w, alone or in a cluster of short options", () => {
    assert.equal(
      readWriteMount(argv("--foreground", "--ready-fd", "3", "--rw", "--", "/c.bfc", "/mnt")),
      true,
    );
    assert.equal(readWriteMount(argv("-f", "-w", "c.bfc", "mnt")), true);
    assert.equal(readWriteMount(argv("-fw", "c.bfc", "mnt")), true);
  });

  it("does not take paths or what follows -- for options", () => {
    assert.equal(readWriteMount(argv("--foreground", "--", "/data/-w.bfc", "/mnt/w")), false);
    assert.equal(readWriteMount(argv("-f", "rw.bfc", "/mnt/www")), false);
    assert.equal(readWriteMount(argv("--foreground", "--ready-fd", "3", "--", "/c.bfc", "/mnt")), false);
  });
});
