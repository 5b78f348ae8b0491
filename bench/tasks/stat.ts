/** Opens a container and stats one path: the cost a fresh process pays for one lookup. */
import { loadLib, runTask } from "./common.ts";

const { Reader } = await loadLib();

await runTask<{ container: string; path: string }>(async (a) => {
  const r = await Reader.open(a.container);
  const e = r.stat(a.path);
  r.close();
  return { ok: e.type === "file", size: e.size };
});
