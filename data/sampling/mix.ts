// Mixing data sources by weight and epochs, deterministically from a seed.
import { Permutation } from "./permutation.js";
import { subSeed } from "../../spec/rng.js";

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

/**
 * The mixed order as a function of position, in constant memory: each source's items repeated whole as
 * often as its count allows, then a seeded sample of it for the rest (distinct items), all in one seeded
 * shuffle. `at(j)` says which source and which of its items is at position j, so the streamed pipeline
 * reads each item where it lies instead of holding the mix.
 */
export class MixPlan {
  readonly length: number;
  readonly counts: number[];
  private readonly starts: number[] = [];
  private readonly order: Permutation;
  private readonly samples: (Permutation | null)[];

  constructor(
    private readonly sizes: number[],
    weights: (number | undefined)[],
    epochs: number[],
    seed: number,
  ) {
    this.counts = mixCounts(sizes, weights, epochs).map((c, i) => (sizes[i] === 0 ? 0 : c));
    let total = 0;
    for (const c of this.counts) {
      this.starts.push(total);
      total += c;
    }
    this.length = total;
    this.samples = sizes.map((n, i) => (n > 0 ? new Permutation(n, subSeed(seed, `mix:${i}`)) : null));
    this.order = new Permutation(total, subSeed(seed, "mix:order"));
  }

  /** Source and item index at position j of the mix. */
  at(j: number): { source: number; item: number } {
    const v = this.order.at(j);
    let source = this.starts.length - 1;
    while (this.starts[source] > v || this.counts[source] === 0) source--;
    const k = v - this.starts[source];
    const n = this.sizes[source];
    const whole = Math.floor(this.counts[source] / n) * n;
    return { source, item: k < whole ? k % n : this.samples[source]!.at(k - whole) };
  }
}

export function mixSources<T>(sources: MixSource<T>[], seed: number): T[] {
  const plan = new MixPlan(
    sources.map((s) => s.items.length),
    sources.map((s) => s.weight),
    sources.map((s) => s.epochs),
    seed,
  );
  const out = new Array<T>(plan.length);
  for (let j = 0; j < plan.length; j++) {
    const { source, item } = plan.at(j);
    out[j] = sources[source].items[item];
  }
  return out;
}
