/** Extracts a whole container into `dest`. */
import { loadLib, runTask } from "./common.ts";

const { extract, Reader } = await loadLib();

await runTask<{ container: string; dest: string; password?: string }>(async (a) => {
  const r = await Reader.open(a.container, { password: a.password });
  const rep = await extract(r, a.dest);
  r.close();
  return { ok: rep.failed.length === 0, extracted: rep.extracted, failed: rep.failed.length };
});
