// Evaluation shared out over the ring: the validation loss (per task too), and greedy generation on the
// held-out prompts scored per task_type.
import type { GenerationEvalReport } from "../../proto/mod.js";
import type { PreparedDataset } from "../../data/streamed_pipeline.js";
import type { TextSetup } from "../../spec/text_setup.js";
import { loadEvalPrompts, scoreGenerations } from "../eval/generation_eval.js";
import { evalStopIds } from "../../text/stop_ids.js";
import type { JobSpec } from "../../spec/job_spec.js";
import { shardRange } from "../../spec/step_plan.js";
import type { Ring } from "./ring.js";
import { combineEvalReplies, type StepResult } from "./step_results.js";
import { rankBatch } from "./rank_batch.js";

/** The loss over the validation rows, or undefined when the job has none. */
export async function validationLoss(
  ring: Ring,
  job: string,
  spec: JobSpec,
  data: PreparedDataset,
): Promise<{ loss: number; lossByTask: Record<string, number>; pref?: StepResult["pref"] } | undefined> {
  const val = data.val;
  if (val.length === 0) return undefined;
  const replies = await ring.all((rank) => {
    return ring.send(rank, "eval", {
      job,
      batch: rankBatch(val, rank, {
        ringSize: ring.size,
        sequenceParallel: spec.sequence_parallel,
        padId: data.setup.tokenizer.padId,
        seqLen: spec.seq_len,
      }),
      micro_batch_rows: spec.micro_batch_rows,
    });
  });
  return combineEvalReplies(replies);
}

export async function generationEval(
  ring: Ring,
  job: string,
  spec: JobSpec,
  setup: TextSetup,
): Promise<GenerationEvalReport> {
  const prompts = loadEvalPrompts(spec, setup);
  const parts = await ring.all((rank) => {
    const [a, b] = shardRange(prompts.length, rank, ring.size);
    return ring.send(rank, "generate", {
      job,
      prompts: prompts.slice(a, b).map((p) => p.ids),
      max_new: spec.generation_eval!.max_new_tokens,
      eos_ids: evalStopIds(setup),
    });
  });
  return scoreGenerations(
    prompts,
    parts.flatMap((p) => p.outputs ?? []),
    setup,
  );
}
