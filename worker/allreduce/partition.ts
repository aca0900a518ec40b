// How a buffer is cut for the ring: n contiguous segments whose lengths differ by at most one (the first
// `length % n` get the extra element), each cut into chunks of at most `chunk` elements. Every rank
// computes the same cuts, so sender and receiver agree on every message without describing it.

export interface Span {
  start: number;
  end: number;
}

export function segment(length: number, n: number, index: number): Span {
  const base = Math.floor(length / n);
  const extra = length % n;
  const start = index * base + Math.min(index, extra);
  return { start, end: start + base + (index < extra ? 1 : 0) };
}

export function chunksOf(span: Span, chunk: number): Span[] {
  const out: Span[] = [];
  for (let s = span.start; s < span.end; s += chunk) out.push({ start: s, end: Math.min(s + chunk, span.end) });
  return out;
}

export function mod(a: number, n: number): number {
  return ((a % n) + n) % n;
}
