/** Opens a container and iterates every entry (what `bfc list` does, minus printing). */
import { loadLib, runTask } from "./common.ts";

const { Reader } = await loadLib();

await runTask<{ container: string }>(async (a) => {
  const r = await Reader.open(a.container);
  let entries = 0;
  let bytes = 0;
  for (const e of r.entries()) {
    entries++;
    bytes += e.size;
  }
  r.close();
  return { entries, bytes };
});
