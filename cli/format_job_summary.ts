// What a finished job learned, for people: losses, the before/after generation evaluation per task_type
// as a table, and where the outputs are. `make demo` prints this from `submit --json`'s final record.
import { GenerationEval, metricsFile } from "../proto/mod.js";
import { formatGenerationEval } from "./format_generation_eval.js";
import { formatLoss } from "./progress_bar.js";

type Json = Record<string, unknown>;

const isObject = (x: unknown): x is Json => typeof x === "object" && x !== null && !Array.isArray(x);

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
  if (record.generation_eval !== undefined) {
    const ev = GenerationEval.safeParse(record.generation_eval);
    lines.push(
      "",
      ev.success
        ? formatGenerationEval(ev.data)
        : `generation eval (not a report this version reads: ${ev.error.issues[0]?.path.join(".")}: ` +
            `${ev.error.issues[0]?.message}):\n${JSON.stringify(record.generation_eval, null, 2)}`,
    );
  }
  lines.push("", `outputs: ${String(record.output)} (metrics per step: ${metricsFile(String(record.output))})`);
  if (isObject(record.last_checkpoint))
    lines.push(`last checkpoint: ${String(record.last_checkpoint.dir)} (step ${String(record.last_checkpoint.step)})`);
  return lines.join("\n");
}
