// What a job's training rows hold, counted straight from the data pipeline (not from the trainer): the
// reference the step-plan and per-task tests compare a job's metrics with.
import { buildDataset } from "./in_memory_pipeline.js";
import type { Row } from "../../data/rows/row.js";
import { parseSpec } from "../../spec/load.js";

/** Target tokens (labels != -100) per task_type over the rows. */
export function targetsByTask(rows: Row[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rows)
    r.labels.forEach((label, t) => {
      if (label === -100) return;
      const task = r.taskTypes[r.segmentIds[t]!] ?? "(none)";
      out[task] = (out[task] ?? 0) + 1;
    });
  return out;
}

/** The training rows a spec gives, built as the coordinator builds them (no cache). */
export function trainRows(spec: Record<string, unknown>, baseDir: string): Row[] {
  return buildDataset(parseSpec(spec, "test.yaml", baseDir), { quiet: true, useCache: false }).train;
}
