// The in-memory reference pipeline's cache: a built dataset's rows in one file and its statistics, problems
// and row shapes in meta.json, keyed as the streamed pipeline's cache is (data/storage/cache.ts).
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Row } from "../../data/rows/row.js";
import type { DataStats } from "../../data/stats.js";
import type { Problem } from "../../text/records/problems.js";

export interface CachedDataset {
  train: Row[];
  val: Row[];
  stats: DataStats;
  problems: Problem[];
}

export function fileHash(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
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
