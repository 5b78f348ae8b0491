/** Packs `<parent>/<name>` into `out` with the library's Writer. */
import path from "node:path";
import { loadLib, runTask } from "./common.ts";

const { Writer } = await loadLib();

interface Args {
  parent: string;
  name: string;
  out: string;
  compression: "none" | "zstd";
  level?: number;
  password?: string;
}

await runTask<Args>(async (a) => {
  const w = await Writer.create(a.out, {
    compression: a.compression,
    level: a.level,
    password: a.password,
  });
  await w.addTree(path.join(a.parent, a.name), a.name);
  const s = await w.finish();
  return { entries: s.entries, bytesIn: s.bytesIn, size: s.size };
});
