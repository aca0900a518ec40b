// Byte counts for people: printed in binary units (GiB), read from flags such as `--memory 8GiB`.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"] as const;

/** 11.2 GiB, 640.0 MiB, 512 B: the largest unit that keeps the number at least 1, one decimal. */
export function formatBytes(bytes: number): string {
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${bytes} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

/** bytes in GiB with one decimal, no unit: for breakdowns printed after a total in GiB */
export function gib(bytes: number): string {
  return (bytes / 1024 ** 3).toFixed(1);
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
