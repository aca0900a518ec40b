// A job's metrics.jsonl: one JSON object per line (a training step, an evaluation or an event), each with
// the step it belongs to. A resumed job first drops the lines past its checkpoint, so the file tells one
// story whatever the restarts. A last line cut short (the process died while appending it) is dropped: it
// is the one line a crash can leave torn, and resuming must not be blocked by it.
import { existsSync, readFileSync } from "node:fs";
import { appendOutputFile, writeOutputFile } from "../../files/output_files.js";

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

/** The file's metric lines with their text; a torn last line is left out, any other bad line is an error. */
export function readMetricLines(file: string): { line: string; metric: MetricLine }[] {
  const lines = readFileSync(file, "utf8").split("\n");
  const out: { line: string; metric: MetricLine }[] = [];
  const last = lines.length - 1; // the text after the last newline: "" unless the final write was cut short
  lines.forEach((line, i) => {
    if (line === "") return;
    try {
      out.push({ line, metric: parseMetricLine(file, line, i + 1) });
    } catch (err) {
      if (i !== last) throw err;
    }
  });
  return out;
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
      await writeOutputFile(this.file, "");
      return;
    }
    const kept = readMetricLines(this.file)
      .filter((m) => m.metric.step <= startStep)
      .map((m) => m.line + "\n");
    await writeOutputFile(this.file, kept.join(""));
  }

  async append(line: MetricLine): Promise<void> {
    await appendOutputFile(this.file, JSON.stringify(line) + "\n");
    this.onLine?.(line);
  }
}
