// `node dist/cli/compare_eval_answers.js BEFORE.jsonl AFTER.jsonl`: the held-out answers a later stage
// changed (two jobs' generation_eval.jsonl on the same prompts), for deploy/scripts/demo.sh.
import { readFileSync } from "node:fs";
import { formatAnswerChanges, type EvalAnswer } from "./format_answer_changes.js";

const [beforeFile, afterFile] = process.argv.slice(2);
if (!beforeFile || !afterFile) {
  console.error("usage: node dist/cli/compare_eval_answers.js BEFORE.jsonl AFTER.jsonl (two generation_eval.jsonl)");
  process.exit(2);
}
const read = (file: string): EvalAnswer[] =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l, i) => {
      try {
        return JSON.parse(l) as EvalAnswer;
      } catch (err) {
        throw new Error(`${file}:${i + 1}: ${(err as Error).message}`);
      }
    });
try {
  console.log(formatAnswerChanges(read(beforeFile), read(afterFile)));
} catch (err) {
  console.error(`compare_eval_answers: ${(err as Error).message}`);
  process.exit(1);
}
