// Tick positions for a plot axis: "nice" round numbers on a linear axis, powers of ten (and 2x, 5x when
// the range is narrow) on a log axis.

export function linearTicks(min: number, max: number, wanted = 6): number[] {
  if (!(max > min)) return [min];
  const rough = (max - min) / wanted;
  const magnitude = Math.pow(10, Math.floor(Math.log10(rough)));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough) ?? 10 * magnitude;
  const ticks: number[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

export function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  const from = Math.floor(Math.log10(min));
  const to = Math.ceil(Math.log10(max));
  const narrow = to - from <= 2;
  for (let e = from; e <= to; e++)
    for (const m of narrow ? [1, 2, 5] : [1]) {
      const t = m * Math.pow(10, e);
      if (t >= min * 0.999 && t <= max * 1.001) ticks.push(Number(t.toPrecision(12)));
    }
  return ticks.length >= 2 ? ticks : [min, max];
}

/** A tick label: short, without float noise (0.30000000000000004 -> 0.3). */
export function tickLabel(v: number): string {
  if (v === 0) return "0";
  const abs = Math.abs(v);
  if (abs >= 1e5 || abs < 1e-3) return v.toExponential(0);
  return String(Number(v.toPrecision(4)));
}
