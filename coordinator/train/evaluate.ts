// Evaluation shared out over the ring: the validation loss (per task too), and greedy generation on the
// held-out prompts scored per task_type.
import type { GenerationEvalReport } from "../../proto/mod.js";
import path from "node:path";
import type { PreparedDataset } from "../../data/streamed_pipeline.js";
import type { TextSetup } from "../../spec/text_setup.js";
import { loadEvalPrompts, promptsWithinContext, readAnswers, scoreGenerations } from "../eval/generation_eval.js";
import { evalAnswerLines, type EvalAnswerLine } from "../eval/eval_answers.js";
import { chatStopIds } from "../../text/stop_ids.js";
import { readHfConfig, type HfConfig } from "../../hf/hf_config.js";
import { eosTokenIds, readGenerationConfig } from "../../hf/generation_config.js";
import type { JobSpec } from "../../spec/job_spec.js";
import { shardRange } from "../../spec/step_plan.js";
import type { Ring } from "./ring.js";
import { combineEvalReplies, type StepResult } from "./step_results.js";
import { rankBatch } from "./rank_batch.js";
import type { SplitReference } from "../../data/preference/reference_store.js";

/** The loss over the validation rows, or undefined when the job has none. */
export async function validationLoss(
  ring: Ring,
  job: string,
  spec: JobSpec,
  data: PreparedDataset,
  /** full or hybrid preference training: the reference's log-probabilities of the validation rows' pairs */
  reference?: SplitReference,
): Promise<{ loss: number; lossByTask: Record<string, number>; pref?: StepResult["pref"] } | undefined> {
  const val = data.val;
  if (val.length === 0) return undefined;
  const replies = await ring.all((rank) => {
    const [a, b] = shardRange(val.length, rank, ring.size);
    return ring.send(rank, "eval", {
      ref_logps: reference?.ofRows(Array.from({ length: b - a }, (_, i) => a + i)),
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
): Promise<{ report: GenerationEvalReport; answers: EvalAnswerLine[] }> {
  const config = await modelConfig(spec);
  const maxNew = spec.generation_eval!.max_new_tokens;
  // Only what a server of this model would answer: a chat too long for its context is skipped and named.
  const { asked: prompts, skipped } = promptsWithinContext(
    loadEvalPrompts(spec, setup),
    maxNew,
    config.maxPositionEmbeddings,
  );
  // The stop ids a server of this model will answer chats with: its own EOS ids among them.
  const stopIds = chatStopIds(setup, await modelEosIds(spec, config));
  const parts = await ring.all((rank) => {
    const [a, b] = shardRange(prompts.length, rank, ring.size);
    return ring.send(rank, "generate", {
      job,
      prompts: prompts.slice(a, b).map((p) => p.ids),
      max_new: maxNew,
      eos_ids: stopIds,
    });
  });
  const outputs = parts.flatMap((p) => p.outputs ?? []);
  const report = scoreGenerations(prompts, outputs, setup, { stopIds });
  if (skipped.length > 0) report.skipped = skipped;
  return {
    report,
    answers: evalAnswerLines(prompts, readAnswers(prompts, outputs, setup, stopIds), maxNew),
  };
}

async function modelConfig(spec: JobSpec): Promise<HfConfig> {
  return readHfConfig(spec.model.path ? path.join(spec.model.path, "config.json") : spec.model.init!.config);
}

/** The EOS ids the job's model stops on: generation_config.json's, else config.json's (as the saved model's). */
async function modelEosIds(spec: JobSpec, config: HfConfig): Promise<number[]> {
  if (spec.model.path) return eosTokenIds(await readGenerationConfig(spec.model.path), config);
  return config.eosTokenIds;
}
