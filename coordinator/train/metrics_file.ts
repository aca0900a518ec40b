// A job's metrics.jsonl: one JSON object per line (a training step, an evaluation or an event), each with
// the step it belongs to. A resumed job first drops the lines past its checkpoint, so the file tells one
// story whatever the restarts.
import { existsSync, readFileSync } from "node:fs";
import { appendFile, writeFile } from "node:fs/promises";

export interface MetricLine {
  step: number;
  [key: string]: unknown;
}

/** A line that is not a JSON object with a numeric step is an error naming the file and line. */
function parseMetricLine(file: string, line: string, lineNumber: number): MetricLine {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    value = undefined;
  }
  if (typeof value !== "object" || value === null || typeof (value as MetricLine).step !== "number")
    throw new Error(`${file}:${lineNumber}: not a metric line (a JSON object with a numeric 'step')`);
  return value as MetricLine;
}

export class MetricsFile {
  /** `onLine` sees every line appended, after it is in the file (the dashboard and /metrics follow it) */
  constructor(
    readonly file: string,
    private readonly onLine?: (line: MetricLine) => void,
  ) {}

  /** Starts the file for a run from `startStep`: empty at 0, else the lines up to that step kept. */
  async startAt(startStep: number): Promise<void> {
    if (startStep === 0 || !existsSync(this.file)) {
      await writeFile(this.file, "");
      return;
    }
    const kept = readFileSync(this.file, "utf8")
      .split("\n")
      .filter((line, i) => line !== "" && parseMetricLine(this.file, line, i + 1).step <= startStep);
    await writeFile(this.file, kept.map((line) => line + "\n").join(""));
  }

  async append(line: MetricLine): Promise<void> {
    await appendFile(this.file, JSON.stringify(line) + "\n");
    this.onLine?.(line);
  }
}
