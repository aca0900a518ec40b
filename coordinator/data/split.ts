// The validation split, stratified by task_type so every task's loss can be watched on held-out data.
import { makeRng, shuffleInPlace, subSeed } from "./rng.js";

/**
 * valSize < 1: that fraction of each task_type (rounded, and at least one record of a task with two or
 * more, so small tasks are not left out); valSize >= 1: that many records in all, spread over task_types
 * in proportion to their sizes.
 */
export function stratifiedSplit<T>(
  items: T[],
  taskOf: (x: T) => string,
  valSize: number,
  seed: number,
): { train: T[]; val: T[] } {
  if (valSize <= 0) return { train: items, val: [] };
  const groups = new Map<string, number[]>();
  items.forEach((x, i) => {
    const k = taskOf(x);
    let g = groups.get(k);
    if (!g) groups.set(k, (g = []));
    g.push(i);
  });
  const keys = [...groups.keys()].sort();
  const want = new Map<string, number>();
  if (valSize < 1) {
    for (const k of keys) {
      const n = groups.get(k)!.length;
      want.set(k, Math.min(n - 1, Math.max(n >= 2 ? 1 : 0, Math.round(n * valSize))));
    }
  } else {
    const total = Math.min(Math.floor(valSize), items.length);
    const shares = keys.map((k) => (total * groups.get(k)!.length) / items.length);
    const floors = shares.map(Math.floor);
    let left = total - floors.reduce((a, b) => a + b, 0);
    const order = shares.map((s, i) => [s - floors[i], i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    for (const [, i] of order) if (left-- > 0) floors[i]++;
    keys.forEach((k, i) => want.set(k, floors[i]));
  }
  const isVal = new Uint8Array(items.length);
  for (const k of keys) {
    const idx = shuffleInPlace([...groups.get(k)!], makeRng(subSeed(seed, `split:${k}`)));
    for (const i of idx.slice(0, want.get(k))) isVal[i] = 1;
  }
  return { train: items.filter((_, i) => !isVal[i]), val: items.filter((_, i) => isVal[i]) };
}
