// Whether a generated answer is the expected one: the exact match of the generation eval, and of the tools
// that read its answers back (the demo's comparison of two acts).
import { isDeepStrictEqual } from "node:util";

/** The JSON value of a text, or that it is not JSON. */
export function parseJson(s: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(s) };
  } catch {
    return { ok: false };
  }
}

/** Exact match: deep-equal values when the expected answer is JSON, else equal trimmed text. */
export function answersMatch(expected: string, got: string): boolean {
  const e = parseJson(expected.trim());
  if (e.ok) {
    const g = parseJson(got.trim());
    return g.ok && isDeepStrictEqual(e.value, g.value);
  }
  return expected.trim() === got.trim();
}
