// Mixing data sources by weight and epochs, deterministically from a seed.
import { makeRng, shuffleInPlace, subSeed } from "./rng.js";

export interface MixSource<T> {
  items: T[];
  /** share of the mix; all sources have one or none does */
  weight?: number;
  /** passes over the source, may be fractional */
  epochs: number;
}

/**
 * How many items each source contributes. Without weights: its size times its epochs. With weights:
 * the total stays sum(size * epochs) and each source gets weight / sum(weights) of it, so a 25% general
 * replay set is 25% of the examples whatever its size (a small one repeats, a large one is sampled).
 */
export function mixCounts(sizes: number[], weights: (number | undefined)[], epochs: number[]): number[] {
  const weighted = weights.filter((w) => w !== undefined).length;
  if (weighted !== 0 && weighted !== weights.length) throw new Error("give 'weight' to every data source or to none");
  const natural = sizes.map((n, i) => n * epochs[i]);
  if (weighted === 0) return natural.map(Math.round);
  const total = natural.reduce((a, b) => a + b, 0);
  const wsum = (weights as number[]).reduce((a, b) => a + b, 0);
  return largestRemainder(weights.map((w) => (total * (w as number)) / wsum)).map((c, i) => (sizes[i] === 0 ? 0 : c));
}

/** Rounds shares to integers that keep their sum. */
function largestRemainder(shares: number[]): number[] {
  const floors = shares.map(Math.floor);
  let left = Math.round(shares.reduce((a, b) => a + b, 0)) - floors.reduce((a, b) => a + b, 0);
  const order = shares.map((s, i) => [s - Math.floor(s), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, i] of order) {
    if (left-- <= 0) break;
    floors[i]++;
  }
  return floors;
}

/** push(...items) without passing every item as an argument: the call stack limits that to ~100k items. */
function appendAll<T>(out: T[], items: readonly T[]): void {
  for (const item of items) out.push(item);
}

/** Each source repeated whole as often as its count allows, then a seeded sample for the rest; all shuffled. */
export function mixSources<T>(sources: MixSource<T>[], seed: number): T[] {
  const counts = mixCounts(
    sources.map((s) => s.items.length),
    sources.map((s) => s.weight),
    sources.map((s) => s.epochs),
  );
  const out: T[] = [];
  sources.forEach((s, i) => {
    const n = s.items.length;
    if (n === 0) return;
    const rng = makeRng(subSeed(seed, `mix:${i}`));
    let need = counts[i];
    while (need >= n) {
      appendAll(out, s.items);
      need -= n;
    }
    if (need > 0) appendAll(out, shuffleInPlace([...s.items], rng).slice(0, need));
  });
  return shuffleInPlace(out, makeRng(subSeed(seed, "mix:order")));
}
