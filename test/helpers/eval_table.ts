// Reads the before/after generation-eval table that a finished job's summary prints (`make demo`,
// cli/summarize_job.js) back into numbers, strictly: a missing column, a missing row or a cell that is
// not a percentage is an error naming it, so a test that reads the table fails when the table breaks.
import assert from "node:assert/strict";

export const EVAL_TABLE_HEADING = "generation on held-out prompts (before -> after training):";
const COLUMNS = ["TASK_TYPE", "PROMPTS", "EXACT BEFORE", "EXACT AFTER", "JSON BEFORE", "JSON AFTER"] as const;

export interface EvalTableRow {
  task: string;
  prompts: number;
  /** percentages, 0..100, as printed (one decimal) */
  exactBefore: number;
  exactAfter: number;
  jsonBefore: number;
  jsonAfter: number;
}

function percentage(cell: string | undefined, where: string): number {
  const m = /^(\d{1,3}\.\d)%$/.exec(cell ?? "");
  if (!m) throw new Error(`${where}: '${cell ?? ""}' is not a percentage like 12.5%`);
  const x = Number(m[1]);
  if (x > 100) throw new Error(`${where}: ${x}% is over 100%`);
  return x;
}

/** The table's rows (the overall row is task "all"); throws when the text has no well-formed table. */
export function parseEvalTable(text: string): EvalTableRow[] {
  const lines = text.split("\n");
  const at = lines.findIndex((l) => l.trim() === EVAL_TABLE_HEADING);
  if (at < 0) throw new Error(`no line '${EVAL_TABLE_HEADING}' in:\n${text}`);
  // Headers are words joined by one space; columns are two or more spaces apart.
  const header = (lines[at + 1] ?? "").trim().split(/\s{2,}/);
  assert.deepEqual(header, [...COLUMNS], `the eval table's header: ${lines[at + 1]}`);
  const rows: EvalTableRow[] = [];
  for (const line of lines.slice(at + 2)) {
    if (line.trim() === "") break;
    const cells = line.trim().split(/\s+/);
    if (cells.length !== COLUMNS.length) throw new Error(`eval table row '${line}': ${cells.length} cells, not 6`);
    const [task, prompts] = cells as [string, string];
    if (!/^\d+$/.test(prompts)) throw new Error(`eval table row ${task}: PROMPTS '${prompts}' is not a count`);
    rows.push({
      task,
      prompts: Number(prompts),
      exactBefore: percentage(cells[2], `${task} EXACT BEFORE`),
      exactAfter: percentage(cells[3], `${task} EXACT AFTER`),
      jsonBefore: percentage(cells[4], `${task} JSON BEFORE`),
      jsonAfter: percentage(cells[5], `${task} JSON AFTER`),
    });
  }
  if (rows.length === 0) throw new Error("the eval table has no rows");
  return rows;
}

/** Prompts per task_type in a held-out JSONL file (one record per line, each with a task_type). */
export function promptsPerTask(jsonl: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of jsonl.split("\n").filter((l) => l.trim())) {
    const task = (JSON.parse(line) as { task_type: string }).task_type;
    counts.set(task, (counts.get(task) ?? 0) + 1);
  }
  return counts;
}

/** A row per held-out task_type plus "all", each counting exactly the held-out file's prompts. */
export function assertRowsCoverHeldout(rows: EvalTableRow[], heldout: Map<string, number>): void {
  const total = [...heldout.values()].reduce((a, b) => a + b, 0);
  const expected = new Map([...heldout, ["all", total]]);
  assert.deepEqual(
    new Map(rows.map((r) => [r.task, r.prompts])),
    expected,
    "the eval table's rows and prompt counts against the held-out file",
  );
}

interface TaskScores {
  count: number;
  exact_match: number;
  json_valid: number;
}
interface EvalReport {
  overall: TaskScores;
  tasks: Record<string, TaskScores>;
}

/** The table says exactly what the job record's generation_eval holds (as percentages to one decimal). */
export function assertTableMatchesRecord(rows: EvalTableRow[], generationEval: unknown): void {
  const ev = generationEval as { before: EvalReport; after: EvalReport };
  assert.ok(ev?.before && ev?.after, `the record has a before and an after report: ${JSON.stringify(ev)}`);
  const pct = (x: number) => Number((100 * x).toFixed(1));
  const fromRecord = (task: string) => {
    const b = task === "all" ? ev.before.overall : ev.before.tasks[task];
    const a = task === "all" ? ev.after.overall : ev.after.tasks[task];
    assert.ok(a && b, `task ${task} is in the table but not in the record`);
    return {
      task,
      prompts: a.count,
      exactBefore: pct(b.exact_match),
      exactAfter: pct(a.exact_match),
      jsonBefore: pct(b.json_valid),
      jsonAfter: pct(a.json_valid),
    };
  };
  assert.deepEqual(
    rows.map((r) => r.task).sort(),
    [...Object.keys(ev.after.tasks), "all"].sort(),
    "a table row per task of the record, and all",
  );
  for (const r of rows) assert.deepEqual(r, fromRecord(r.task));
}
