// The generation eval's report: held-out prompts answered greedily before and after training, scored per
// task_type. The coordinator writes it into the job record; the CLI reads it back with the same schema.
import { z } from "zod";

export const EvalSample = z.object({ prompt: z.string(), expected: z.string(), got: z.string() });
export type EvalSample = z.infer<typeof EvalSample>;

const Share = z.number().min(0).max(1);

export const TaskScore = z.object({
  count: z.number().int().min(0),
  /** share of outputs that parse as JSON */
  json_valid: Share,
  /** share of outputs equal to the expected answer: deep-equal JSON when it is JSON, else trimmed text */
  exact_match: Share,
  /** the first few prompts with their expected and generated answers */
  samples: z.array(EvalSample),
});
export type TaskScore = z.infer<typeof TaskScore>;

export const GenerationEvalReport = z.object({
  overall: TaskScore,
  /** by task_type, sorted by name */
  tasks: z.record(z.string(), TaskScore),
  max_new_tokens: z.number().int().optional(),
  /**
   * Held-out chats not asked: their prompt and max_new_tokens together pass the model's context, which a
   * server of the model refuses too. Each names its file:line and says why.
   */
  skipped: z.array(z.object({ example: z.string(), prompt_tokens: z.number().int(), reason: z.string() })).optional(),
});
export type GenerationEvalReport = z.infer<typeof GenerationEvalReport>;

/** What the job record carries: the report before training (unless resumed past it) and after. */
export const GenerationEval = z.strictObject({
  before: GenerationEvalReport.optional(),
  after: GenerationEvalReport.optional(),
});
export type GenerationEval = z.infer<typeof GenerationEval>;
