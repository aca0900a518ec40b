// The spec's lists are counted before the schema looks at their entries: a `data` list of 400,000 entries is
// refused in microseconds, not after every entry has been validated (the schema's own max says the same,
// later, for specs loaded from files).
import { SPEC_LIMITS } from "./size_limits.js";

const LISTS: [key: string, limit: number][] = [
  ["data", SPEC_LIMITS.data_entries],
  ["dataset", SPEC_LIMITS.datasets],
];

/** `key: N entries, at most M` for each list of a raw spec that is too long. */
export function overlongLists(spec: Record<string, unknown>): { key: string; message: string }[] {
  return LISTS.flatMap(([key, limit]) => {
    const value = spec[key];
    if (!Array.isArray(value) || value.length <= limit) return [];
    return [{ key, message: `${key}: ${value.length} entries, at most ${limit}` }];
  });
}
