// The preference jobs' data: 24 pairs of two task types in TRL's conversational form, whose rejected answer
// breaks a JSON-only rule (words around the JSON, a number as a string), and a LoRA DPO job spec over them.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { trainingFixture, type MetricLine } from "../helpers/cluster.js";

export interface PrefLine extends MetricLine {
  accuracy?: number;
  margin?: number;
  rewards_chosen?: number;
  rewards_rejected?: number;
  logps_chosen?: number;
  logps_rejected?: number;
  pairs?: number;
  pref_by_task?: Record<string, { pairs: number; accuracy: number }>;
  event?: string;
  from_cache?: boolean;
  val_loss?: number;
}

/** Pairs whose rejected answer wraps the JSON in words, as a chat model that breaks a JSON-only rule does. */
export function pairsFixture(): { dir: string; spec: Record<string, unknown> } {
  const { dir, baseSpec } = trainingFixture();
  const names = ["Ana", "Bo", "Cy", "Di", "Ed", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kit", "Lu"];
  const lines = names.flatMap((n, i) => [
    JSON.stringify({
      task_type: "extract/name",
      prompt: [{ role: "user", content: `Who is this? ${n} is ${20 + i}.` }],
      chosen: [{ role: "assistant", content: `{"name":"${n}"}` }],
      rejected: [{ role: "assistant", content: `Sure! {"name":"${n}"}` }],
    }),
    JSON.stringify({
      task_type: "extract/age",
      prompt: [{ role: "user", content: `How old? ${n} is ${20 + i}.` }],
      chosen: [{ role: "assistant", content: `{"age":${20 + i}}` }],
      rejected: [{ role: "assistant", content: `{"age":"${20 + i} years"}` }],
    }),
  ]);
  writeFileSync(path.join(dir, "pairs.jsonl"), lines.join("\n") + "\n");
  const spec = {
    ...baseSpec,
    data: [{ path: "pairs.jsonl" }],
    val_size: 0,
    seq_len: 192,
    stage: "dpo",
    method: "lora",
    lora: { rank: 4, alpha: 8 },
    packing: false,
    global_batch_rows: 4,
    micro_batch_rows: 4,
    lr: 2e-2,
    warmup_steps: 0,
    schedule: "constant",
    max_steps: 6,
  };
  return { dir, spec };
}
