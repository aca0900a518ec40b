// What a finished job learned, for people: losses, the before/after generation evaluation per task_type
// as a table, and where the outputs are. `make demo` prints this from `submit --json`'s final record.
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
 * Per task_type, before and after. Accepts either `{before: {task: metrics}, after: {task: metrics}}`
 * or `{task: {before: metrics, after: metrics}}` (optionally under `by_task`), since both read naturally.
 * Returns undefined for any other shape, and the caller prints the JSON as it is.
 */
export function generationEvalRows(ev: Json): string[][] | undefined {
  let perTask: Record<string, { before?: Json; after?: Json }> = {};
  if (isObject(ev.before) || isObject(ev.after)) {
    const before = isObject(ev.before) ? ev.before : {};
    const after = isObject(ev.after) ? ev.after : {};
    for (const task of new Set([...Object.keys(before), ...Object.keys(after)])) {
      perTask[task] = { before: isObject(before[task]) ? before[task] : undefined, after: isObject(after[task]) ? after[task] : undefined };
    }
  } else {
    const tasks = isObject(ev.by_task) ? ev.by_task : ev;
    for (const [task, v] of Object.entries(tasks)) {
      if (!isObject(v) || (!isObject(v.before) && !isObject(v.after))) continue;
      perTask[task] = { before: isObject(v.before) ? v.before : undefined, after: isObject(v.after) ? v.after : undefined };
    }
  }
  const tasks = Object.keys(perTask).sort();
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

export function formatJobSummary(record: Json): string {
  const lines: string[] = [];
  const train = isObject(record.train_loss) ? record.train_loss : {};
  const num = (x: unknown) => (typeof x === "number" ? x : undefined);
  lines.push(`job ${String(record.id)}: ${String(record.status)} after ${String(record.steps ?? record.step)} steps`);
  if (record.message) lines.push(`  ${String(record.message)}`);
  lines.push(`train loss: ${formatLoss(num(train.first))} -> ${formatLoss(num(train.last))}`);
  lines.push(`val loss:   ${formatLoss(num(record.val_loss))}`);
  if (isObject(record.val_loss_by_task)) {
    for (const [task, loss] of Object.entries(record.val_loss_by_task).sort()) lines.push(`  ${task}: ${formatLoss(num(loss))}`);
  }
  if (isObject(record.generation_eval)) {
    const rows = generationEvalRows(record.generation_eval);
    lines.push("", "generation on held-out prompts (before -> after training):");
    lines.push(
      rows
        ? formatTable(["TASK_TYPE", "PROMPTS", "EXACT BEFORE", "EXACT AFTER", "JSON BEFORE", "JSON AFTER"], rows)
        : JSON.stringify(record.generation_eval, null, 2),
    );
  }
  lines.push("", `outputs: ${String(record.output)}`);
  if (isObject(record.last_checkpoint)) lines.push(`last checkpoint: ${String(record.last_checkpoint.dir)} (step ${String(record.last_checkpoint.step)})`);
  return lines.join("\n");
}
