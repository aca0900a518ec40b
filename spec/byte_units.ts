// Byte counts for people: printed in binary units (GiB), read from flags such as `--memory 8GiB`.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"] as const;

/** The largest binary unit that keeps `bytes` at least 1 (B below 1 KiB). */
export function unitFor(bytes: number): { name: (typeof UNITS)[number]; factor: number } {
  let u = 0;
  while (bytes >= 1024 ** (u + 1) && u < UNITS.length - 1) u++;
  return { name: UNITS[u]!, factor: 1024 ** u };
}

/** 11.2 GiB, 640.0 MiB, 512 B: the largest unit that keeps the number at least 1, one decimal. */
export function formatBytes(bytes: number): string {
  const u = unitFor(bytes);
  return u.factor === 1 ? `${bytes} B` : `${(bytes / u.factor).toFixed(1)} ${u.name}`;
}

/** bytes in a given unit with one decimal and no unit name: the parts printed after a total */
export function inUnit(bytes: number, unit: { factor: number }): string {
  return (bytes / unit.factor).toFixed(1);
}

const FACTORS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};

/** "8GiB", "8G" (binary), "8GB" (decimal), "512MiB", "1073741824"; `what` names the flag in errors. */
export function parseBytes(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const factor = m ? FACTORS[m[2]!.toLowerCase()] : undefined;
  if (!m || factor === undefined)
    throw new Error(`${what}: expected a size such as 8GiB, 512MiB or a byte count, got '${text}'`);
  const bytes = Math.floor(Number(m[1]) * factor);
  if (!(bytes > 0)) throw new Error(`${what}: the size must be positive, got '${text}'`);
  return bytes;
}
