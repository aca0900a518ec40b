// A tiny job folder for end-to-end tests: a small Llama config, a two-task chat dataset with JSON
// answers, held-out prompts for the generation eval, and job files written as a user writes them.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { TINY_BYTE_LLAMA } from "./tiny_model.js";

export const TINY_TASKS = ["extract/name", "extract/city"] as const;

const NAMES = ["Ana", "Bo", "Cy", "Di", "Ed", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kai", "Lu"];
const CITIES = ["Oslo", "Rome", "Lima", "Kyiv", "Pune", "Graz"];

function record(i: number): string {
  const name = NAMES[i % NAMES.length]!;
  const city = CITIES[i % CITIES.length]!;
  const byName = i % 2 === 0;
  return JSON.stringify({
    task_type: byName ? TINY_TASKS[0] : TINY_TASKS[1],
    messages: [
      { role: "user", content: `${name} lives in ${city}. ${byName ? "Who?" : "Where?"}` },
      { role: "assistant", content: byName ? `{"name":"${name}"}` : `{"city":"${city}"}` },
    ],
  });
}

/** Writes model.json, train.jsonl and heldout.jsonl into `dir` (created); returns the held-out count. */
export function writeTinyJobData(dir: string, heldout = 6): number {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "model.json"), JSON.stringify(TINY_BYTE_LLAMA));
  const train = Array.from({ length: 60 }, (_, i) => record(i));
  writeFileSync(path.join(dir, "train.jsonl"), train.join("\n") + "\n");
  const held = Array.from({ length: heldout }, (_, i) => record(1000 + i));
  writeFileSync(path.join(dir, "heldout.jsonl"), held.join("\n") + "\n");
  return heldout;
}

/**
 * A job file in `dir` (next to the data) as YAML; `output` relative to `dir`, like examples/demo/job.yaml.
 * `generationEval` adds the held-out eval with short answers.
 */
export function writeTinyJob(
  dir: string,
  file: string,
  opts: { maxSteps: number; output: string; generationEval?: boolean },
): string {
  const lines = [
    "model: {init: {config: model.json, seed: 1}}",
    "tokenizer: byte",
    "template: chatml",
    "data:",
    "  - {path: train.jsonl, format: openai, response_format: json}",
    "val_size: 6",
    "seq_len: 64",
    "packing: true",
    `max_steps: ${opts.maxSteps}`,
    "global_batch_rows: 4",
    "micro_batch_rows: 2",
    "lr: 0.003",
    "warmup_steps: 2",
    "schedule: cosine",
    "workers: 2",
    "eval_every: 1000000",
    "save_every: 1000000",
    `output: ${opts.output}`,
  ];
  if (opts.generationEval) lines.push("generation_eval: {path: heldout.jsonl, format: messages, max_new_tokens: 24}");
  const f = path.join(dir, file);
  writeFileSync(f, lines.join("\n") + "\n");
  return f;
}
