// The validation split, stratified by task_type so every task's loss can be watched on held-out data.
// Records are chosen by selection sampling (each task's records in order, each taken with the odds
// needed / remaining), so the split is decided one record at a time from per-task counts alone: the
// streamed pipeline splits a dataset of any size without holding its records.
import { makeRng, subSeed } from "../../spec/rng.js";

/**
 * How many records of each task go to validation. valSize < 1: that fraction of each task_type
 * (rounded, and at least one record of a task with two or more, so small tasks are not left out);
 * valSize >= 1: that many records in all, spread over task_types in proportion to their sizes.
 */
export function validationCounts(sizes: Map<string, number>, valSize: number): Map<string, number> {
  const keys = [...sizes.keys()].sort();
  const want = new Map<string, number>();
  if (valSize <= 0) return new Map(keys.map((k) => [k, 0]));
  if (valSize < 1) {
    for (const k of keys) {
      const n = sizes.get(k)!;
      want.set(k, Math.min(n - 1, Math.max(n >= 2 ? 1 : 0, Math.round(n * valSize))));
    }
    return want;
  }
  const all = keys.reduce((a, k) => a + sizes.get(k)!, 0);
  const total = Math.min(Math.floor(valSize), all);
  const shares = keys.map((k) => (total * sizes.get(k)!) / all);
  const floors = shares.map(Math.floor);
  let left = total - floors.reduce((a, b) => a + b, 0);
  const order = shares.map((s, i) => [s - floors[i], i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, i] of order) if (left-- > 0) floors[i]++;
  keys.forEach((k, i) => want.set(k, floors[i]));
  return want;
}

/** Decides record by record, in order, whether each goes to validation; knows only per-task counts. */
export class SplitSampler {
  private readonly state = new Map<string, { remaining: number; needed: number; rng: () => number }>();

  constructor(sizes: Map<string, number>, valSize: number, seed: number) {
    for (const [task, needed] of validationCounts(sizes, valSize))
      this.state.set(task, { remaining: sizes.get(task)!, needed, rng: makeRng(subSeed(seed, `split:${task}`)) });
  }

  /** Whether the next record of `task` is a validation record. */
  isVal(task: string): boolean {
    const s = this.state.get(task);
    if (!s || s.remaining <= 0) throw new Error(`split: more records of task '${task}' than were counted`);
    const take = s.needed > 0 && s.rng() * s.remaining < s.needed;
    s.remaining--;
    if (take) s.needed--;
    return take;
  }
}

export function stratifiedSplit<T>(
  items: T[],
  taskOf: (x: T) => string,
  valSize: number,
  seed: number,
): { train: T[]; val: T[] } {
  const sizes = new Map<string, number>();
  for (const x of items) sizes.set(taskOf(x), (sizes.get(taskOf(x)) ?? 0) + 1);
  const sampler = new SplitSampler(sizes, valSize, seed);
  const train: T[] = [];
  const val: T[] = [];
  for (const x of items) (sampler.isVal(taskOf(x)) ? val : train).push(x);
  return { train, val };
}
