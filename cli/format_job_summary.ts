// What a finished job learned, for people: losses, the before/after generation evaluation per task_type
// as a table, and where the outputs are. `make demo` prints this from `submit --json`'s final record.
import { metricsFile } from "../proto/mod.js";
import { formatLoss } from "./progress_bar.js";
import { formatTable } from "./table.js";

type Json = Record<string, unknown>;

const isObject = (x: unknown): x is Json => typeof x === "object" && x !== null && !Array.isArray(x);

/** A metric in [0, 1] as a percentage; counts and other numbers as they are. */
function formatMetric(x: unknown): string {
  if (typeof x !== "number") return "-";
  return x >= 0 && x <= 1 ? `${(100 * x).toFixed(1)}%` : String(x);
}

/** The value of the first key of `m` that `matches` (metric names vary: exact_match / exact / em, json_valid / json_validity). */
function pick(m: Json | undefined, matches: (key: string) => boolean): unknown {
  if (!m) return undefined;
  const key = Object.keys(m).find((k) => matches(k.toLowerCase()));
  return key === undefined ? undefined : m[key];
}
const isCount = (k: string) => ["n", "count", "prompts", "total"].includes(k);
const isExact = (k: string) => k.includes("exact") || k === "em";
const isJson = (k: string) => k.includes("json");

/**
 * A before/after report's scores by task: the coordinator's `{overall, tasks: {task: scores}}` (overall
 * becomes the row "all"), or a flat `{task: scores}`. Keys whose value is not an object are not tasks.
 */
function scoresByTask(report: unknown): Record<string, Json> {
  if (!isObject(report)) return {};
  const flat = isObject(report.tasks)
    ? { ...report.tasks, ...(isObject(report.overall) ? { all: report.overall } : {}) }
    : report;
  return Object.fromEntries(Object.entries(flat).filter((e): e is [string, Json] => isObject(e[1])));
}

/** Tasks sorted by name, with the overall row last. */
const byName = (a: string, b: string) => (a === "all" ? 1 : b === "all" ? -1 : a.localeCompare(b));

/**
 * Per task_type, before and after. Reads the coordinator's `{before: report, after: report}` and, as
 * well, `{task: {before: scores, after: scores}}` (optionally under `by_task`). Returns undefined for
 * any other shape, and the caller prints the JSON as it is.
 */
export function generationEvalRows(ev: Json): string[][] | undefined {
  const perTask: Record<string, { before?: Json; after?: Json }> = {};
  if (isObject(ev.before) || isObject(ev.after)) {
    const before = scoresByTask(ev.before);
    const after = scoresByTask(ev.after);
    for (const task of new Set([...Object.keys(before), ...Object.keys(after)]))
      perTask[task] = { before: before[task], after: after[task] };
  } else {
    const tasks = isObject(ev.by_task) ? ev.by_task : ev;
    for (const [task, v] of Object.entries(tasks)) {
      if (!isObject(v) || (!isObject(v.before) && !isObject(v.after))) continue;
      perTask[task] = {
        before: isObject(v.before) ? v.before : undefined,
        after: isObject(v.after) ? v.after : undefined,
      };
    }
  }
  const tasks = Object.keys(perTask).sort(byName);
  if (tasks.length === 0) return undefined;
  return tasks.map((task) => {
    const { before, after } = perTask[task]!;
    return [
      task,
      formatMetric(pick(after, isCount) ?? pick(before, isCount)),
      formatMetric(pick(before, isExact)),
      formatMetric(pick(after, isExact)),
      formatMetric(pick(before, isJson)),
      formatMetric(pick(after, isJson)),
    ];
  });
}

/** A few answers after training (the coordinator keeps some per task), so a person sees what "exact" means. */
export function sampleAnswers(ev: Json, perTask = 2): string[] {
  const after = isObject(ev.after) && isObject(ev.after.tasks) ? ev.after.tasks : {};
  const lines: string[] = [];
  for (const [task, scores] of Object.entries(after).sort()) {
    const samples =
      isObject(scores) && Array.isArray(scores.samples) ? scores.samples.filter(isObject).slice(0, perTask) : [];
    for (const s of samples)
      lines.push(
        `  [${task}] ${String(s.prompt)}`,
        `    expected: ${String(s.expected)}`,
        `    got:      ${String(s.got)}`,
      );
  }
  return lines;
}

export function formatJobSummary(record: Json): string {
  const lines: string[] = [];
  const train = isObject(record.train_loss) ? record.train_loss : {};
  const num = (x: unknown) => (typeof x === "number" ? x : undefined);
  lines.push(`job ${String(record.id)}: ${String(record.status)} after ${String(record.steps ?? record.step)} steps`);
  if (record.message) lines.push(`  ${String(record.message)}`);
  lines.push(`train loss: ${formatLoss(num(train.first))} -> ${formatLoss(num(train.last))}`);
  lines.push(`val loss:   ${formatLoss(num(record.val_loss))}`);
  if (isObject(record.val_loss_by_task)) {
    for (const [task, loss] of Object.entries(record.val_loss_by_task).sort())
      lines.push(`  ${task}: ${formatLoss(num(loss))}`);
  }
  if (isObject(record.generation_eval)) {
    const rows = generationEvalRows(record.generation_eval);
    lines.push("", "generation on held-out prompts (before -> after training):");
    lines.push(
      rows
        ? formatTable(["TASK_TYPE", "PROMPTS", "EXACT BEFORE", "EXACT AFTER", "JSON BEFORE", "JSON AFTER"], rows)
        : JSON.stringify(record.generation_eval, null, 2),
    );
    const samples = sampleAnswers(record.generation_eval);
    if (samples.length) lines.push("", "some answers after training:", ...samples);
  }
  lines.push("", `outputs: ${String(record.output)} (metrics per step: ${metricsFile(String(record.output))})`);
  if (isObject(record.last_checkpoint))
    lines.push(`last checkpoint: ${String(record.last_checkpoint.dir)} (step ${String(record.last_checkpoint.step)})`);
  return lines.join("\n");
}
