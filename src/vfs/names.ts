/**
 * Compares two names in UTF-8 byte order (the order of a container index and of `ls` in the C
 * locale) without encoding them: UTF-16 order agrees except where a surrogate (U+D800–DFFF, i.e. a
 * code point above U+FFFF) meets U+E000–FFFF, which UTF-8 orders the other way round.
 */
export function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let k = 0; k < n; k++) {
    const ca = a.charCodeAt(k);
    const cb = b.charCodeAt(k);
    if (ca !== cb) return rank(ca) - rank(cb);
  }
  return a.length - b.length;
}

function rank(c: number): number {
  if (c < 0xd800) return c;
  return c <= 0xdfff ? c + 0x2000 : c - 0x800;
}

/** 32-bit FNV-1a of a string's UTF-16 units: stable inode numbers for nodes no type numbers. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < s.length; k++) h = Math.imul(h ^ s.charCodeAt(k), 0x01000193) >>> 0;
  return h;
}
