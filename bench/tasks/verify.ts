/** Verifies a container (deep by default: every entry decoded and checksummed). */
import { loadLib, runTask } from "./common.ts";

const { Reader, verify } = await loadLib();

await runTask<{ container: string; deep?: boolean; password?: string }>(async (a) => {
  const r = await Reader.open(a.container, { password: a.password });
  const rep = await verify(r, { deep: a.deep !== false });
  r.close();
  return { ok: rep.ok, bytes: rep.bytes, problems: rep.problems.length };
});
