// On-disk cache of a built dataset, keyed by a hash of the inputs (file contents), the settings, the
// tokenizer, the template and this pipeline's own code, so a restart does not tokenize again and a
// change to any of them never serves stale rows.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Problem } from "../../text/records/problems.js";
import type { Row } from "../rows/row.js";
import type { DataStats } from "../stats.js";

export interface CachedDataset {
  train: Row[];
  val: Row[];
  stats: DataStats;
  problems: Problem[];
}

// The compiled tree's root (this file is data/storage/cache.js under it): the pipeline's code lies in data/,
// the text it reads and renders in text/, its seeds and tokenizer choice in spec/.
const compiledRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const PIPELINE_CODE = ["data", "text", "spec"];

/** Hash of the compiled pipeline code: editing how rows are made invalidates old caches. */
function codeHash(): string {
  const h = createHash("sha256");
  const walk = (dir: string) => {
    for (const f of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, f.name);
      if (f.isDirectory()) walk(p);
      else if (f.name.endsWith(".js")) h.update(f.name).update(readFileSync(p));
    }
  };
  for (const folder of PIPELINE_CODE) walk(path.join(compiledRoot, folder));
  return h.digest("hex");
}

export function fileHash(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

export function cacheKey(parts: unknown): string {
  return createHash("sha256").update(codeHash()).update(JSON.stringify(parts)).digest("hex").slice(0, 32);
}

const FIELDS = ["inputIds", "labels", "positionIds", "segmentIds"] as const;

export function readCache(dir: string, key: string): CachedDataset | null {
  const d = path.join(dir, key);
  if (!existsSync(path.join(d, "meta.json"))) return null;
  const meta = JSON.parse(readFileSync(path.join(d, "meta.json"), "utf8")) as {
    stats: DataStats;
    problems: Problem[];
    splits: Record<"train" | "val", { lengths: number[]; taskTypes: string[][] }>;
  };
  const buf = readFileSync(path.join(d, "rows.bin"));
  const all = new Int32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  let off = 0;
  const take = (split: "train" | "val"): Row[] =>
    meta.splits[split].lengths.map((len, i) => {
      const row = { taskTypes: meta.splits[split].taskTypes[i] } as Row;
      for (const f of FIELDS) {
        row[f] = all.slice(off, off + len);
        off += len;
      }
      return row;
    });
  const train = take("train");
  const val = take("val");
  return { train, val, stats: meta.stats, problems: meta.problems };
}

/** Written to a temporary folder and renamed, so a crash never leaves half a cache entry. */
export function writeCache(dir: string, key: string, data: CachedDataset): void {
  mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `${key}.tmp-${process.pid}`);
  // A fresh folder, never one (or a link to one) left at that name: the files below go only into it.
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  const rows = [...data.train, ...data.val];
  const total = rows.reduce((a, r) => a + r.inputIds.length * FIELDS.length, 0);
  const all = new Int32Array(total);
  let off = 0;
  for (const r of rows)
    for (const f of FIELDS) {
      all.set(r[f], off);
      off += r[f].length;
    }
  writeFileSync(path.join(tmp, "rows.bin"), new Uint8Array(all.buffer));
  const split = (rs: Row[]) => ({ lengths: rs.map((r) => r.inputIds.length), taskTypes: rs.map((r) => r.taskTypes) });
  writeFileSync(
    path.join(tmp, "meta.json"),
    JSON.stringify({
      stats: data.stats,
      problems: data.problems,
      splits: { train: split(data.train), val: split(data.val) },
    }),
  );
  const final = path.join(dir, key);
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
}
