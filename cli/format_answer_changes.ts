// What a second training stage changed in a model's answers to the same held-out prompts: the answers of
// two generation evals (each job's generation_eval.jsonl) side by side, the prompts it now gets right and
// those it now gets wrong. `make demo` prints it after its DPO act, against the SFT act's answers.
import { answersMatch } from "../text/answer_match.js";

/** A line of a job's generation_eval.jsonl (the fields read here). */
export interface EvalAnswer {
  messages: { role: string; content: string }[];
  expected: string;
  answer: string;
}

/** An answer on one line: as it is, or quoted as JSON when it holds a line break or a tab. */
const shown = (s: string) => (/[\n\r\t]/.test(s) ? JSON.stringify(s) : s);

const question = (a: EvalAnswer) => [...a.messages].reverse().find((m) => m.role === "user")?.content ?? "";

/**
 * The answers that changed, grouped as fixed (wrong before, right after) and broken (right before, wrong
 * after); both lists are of the same held-out prompts in the same order, else an error names the first line
 * that differs.
 */
export function formatAnswerChanges(before: EvalAnswer[], after: EvalAnswer[], max = 5): string {
  if (before.length !== after.length)
    throw new Error(`the two evals have ${before.length} and ${after.length} answers: not the same prompts`);
  const fixed: string[] = [];
  const broken: string[] = [];
  before.forEach((b, i) => {
    const a = after[i]!;
    if (JSON.stringify(b.messages) !== JSON.stringify(a.messages) || b.expected !== a.expected)
      throw new Error(`line ${i + 1}: the two evals asked different prompts`);
    const wasRight = answersMatch(b.expected, b.answer);
    const isRight = answersMatch(a.expected, a.answer);
    if (wasRight === isRight) return;
    const lines = [`  ${question(a)}`, `    before: ${shown(b.answer)}`, `    after:  ${shown(a.answer)}`];
    if (!isRight) lines.push(`    expected: ${shown(a.expected)}`);
    (isRight ? fixed : broken).push(lines.join("\n"));
  });
  const list = (title: string, items: string[]) =>
    items.length === 0
      ? []
      : [`${title}:`, ...items.slice(0, max), ...(items.length > max ? [`  ... and ${items.length - max} more`] : [])];
  return [
    `held-out answers this stage changed: ${fixed.length} now right, ${broken.length} now wrong (of ${after.length})`,
    ...list("now right", fixed),
    ...list("now wrong", broken),
  ].join("\n");
}
