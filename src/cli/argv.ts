/** Command-line rewriting done before commander parses the arguments. */

const GLOBAL_FLAGS = new Set(["-v", "--verbose", "-q", "--quiet"]);
/** Options of verify that take a value (to tell their values from the container argument). */
const VERIFY_VALUE_OPTIONS = new Set(["-p", "--password", "-K", "--keyfile", "--password-file", "--root"]);

/**
 * The reference's `verify -p` means "progress"; here `-p PASS` is the password, as for extract. So
 * that reference scripts keep working, a `-p` followed by another option, by nothing, or by the
 * container as the only remaining argument is read as `--progress`.
 */
export function rewriteVerifyProgress(argv: string[]): string[] {
  let i = 0;
  while (i < argv.length && GLOBAL_FLAGS.has(argv[i])) i++;
  if (argv[i] !== "verify") return argv;
  const out = argv.slice();
  const end = out.indexOf("--", i + 1);
  const stop = end < 0 ? out.length : end;
  const positionals = (skip: number): number => {
    let n = end < 0 ? 0 : out.length - end - 1;
    for (let j = i + 1; j < stop; j++) {
      if (j === skip) continue;
      const t = out[j];
      if (VERIFY_VALUE_OPTIONS.has(t)) {
        if (j + 1 !== skip) j++;
        continue;
      }
      if (!t.startsWith("-")) n++;
    }
    return n;
  };
  for (let j = i + 1; j < stop; j++) {
    const t = out[j];
    if (t !== "-p") {
      if (VERIFY_VALUE_OPTIONS.has(t)) j++;
      continue;
    }
    const next = out[j + 1];
    if (next === undefined || j + 1 >= stop || next.startsWith("-") || positionals(j + 1) === 0) {
      out[j] = "--progress";
    } else {
      j++;
    }
  }
  return out;
}
