// The generation eval for people: per task_type, then all tasks together, exact match and JSON validity
// before -> after training, and a few answers after training so a person sees what "exact" means.
import type { GenerationEval, GenerationEvalReport, TaskScore } from "../proto/mod.js";
import { formatTable } from "./table.js";

/** The row of all tasks together; it sorts last. */
const ALL = "all";

const percent = (x: number) => `${(100 * x).toFixed(1)}%`;

function scoresByTask(report: GenerationEvalReport | undefined): Record<string, TaskScore> {
  return report ? { ...report.tasks, [ALL]: report.overall } : {};
}

const byName = (a: string, b: string) => (a === ALL ? 1 : b === ALL ? -1 : a.localeCompare(b));

/** One row per task_type, then "all": prompts, exact before, exact after, JSON before, JSON after. */
export function generationEvalRows(ev: GenerationEval): string[][] {
  const before = scoresByTask(ev.before);
  const after = scoresByTask(ev.after);
  const tasks = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort(byName);
  const cell = (s: TaskScore | undefined, key: "exact_match" | "json_valid") => (s ? percent(s[key]) : "-");
  return tasks.map((task) => {
    const b = before[task];
    const a = after[task];
    return [
      task,
      String((a ?? b)!.count),
      cell(b, "exact_match"),
      cell(a, "exact_match"),
      cell(b, "json_valid"),
      cell(a, "json_valid"),
    ];
  });
}

/** The first `perTask` sample answers of each task after training. */
function sampleAnswers(ev: GenerationEval, perTask = 2): string[] {
  const lines: string[] = [];
  for (const [task, score] of Object.entries(ev.after?.tasks ?? {}).sort(([a], [b]) => byName(a, b)))
    for (const s of score.samples.slice(0, perTask))
      lines.push(`  [${task}] ${s.prompt}`, `    expected: ${s.expected}`, `    got:      ${s.got}`);
  return lines;
}

export function formatGenerationEval(ev: GenerationEval): string {
  const lines = [
    "generation on held-out prompts (before -> after training):",
    formatTable(
      ["TASK_TYPE", "PROMPTS", "EXACT BEFORE", "EXACT AFTER", "JSON BEFORE", "JSON AFTER"],
      generationEvalRows(ev),
    ),
  ];
  const samples = sampleAnswers(ev);
  if (samples.length) lines.push("", "some answers after training:", ...samples);
  return lines.join("\n");
}
