// The job file's schema. Unknown keys are errors that name the key (strict objects throughout).
// The training keys live in training_spec.ts; both halves are strict, so unknown keys are named.
import { z } from "zod";
import { DATA_FORMATS } from "../data/formats.js";
import { TEMPLATE_NAMES } from "../data/templates/template.js";
import { checkTrainingKeys, trainingSpecShape } from "./training_spec.js";

export const dataSourceSchema = z.strictObject({
  path: z.string().min(1),
  format: z.enum(DATA_FORMATS).default("auto"),
  /** share of the training mix; give it to every source or to none */
  weight: z.number().positive().optional(),
  /** passes over this source (may be fractional): 2 trains an important task twice */
  epochs: z.number().positive().default(1),
  /** every answer must parse as JSON */
  response_format: z.literal("json").optional(),
  /** task_type for records that carry none */
  task_type: z.string().optional(),
});

export const modelSchema = z
  .strictObject({
    path: z.string().min(1).optional(),
    init: z.strictObject({ config: z.string().min(1), seed: z.number().int().default(0) }).optional(),
    /** a PEFT LoRA adapter folder to continue training (method: lora) */
    adapter: z.string().min(1).optional(),
  })
  .refine((m) => (m.path === undefined) !== (m.init === undefined), {
    message: "give exactly one of 'path' or 'init'",
  });

export const dataSpecShape = {
  model: modelSchema,
  /** "byte", or a folder with tokenizer.json; default: the model folder (byte for an init model) */
  tokenizer: z.string().min(1).optional(),
  template: z.enum(TEMPLATE_NAMES).default("chatml"),
  /** variables for the template, as apply_chat_template's keyword arguments (qwen3: enable_thinking) */
  template_options: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
  data: z.array(dataSourceSchema).min(1),
  /** validation split: a fraction (< 1) or a count of records, stratified by task_type */
  val_size: z.number().nonnegative().default(0),
  seq_len: z.number().int().positive().default(512),
  packing: z.boolean().default(true),
  train_on_prompt: z.boolean().default(false),
  last_turn_only: z.boolean().default(false),
  on_bad_record: z.enum(["skip", "fail"]).default("skip"),
  /** SFT examples longer than seq_len: cut the earliest context (keeping the last answer) or drop */
  overlong: z.enum(["truncate", "drop"]).default("truncate"),
  seed: z.number().int().default(0),
  /** where tokenized and packed data is cached; default `.cache/data` beside the repository */
  cache_dir: z.string().optional(),
};

/** One schema for the whole job file: the data keys and the training keys (training_spec.ts). */
export const jobSpecSchema = z.strictObject({ ...dataSpecShape, ...trainingSpecShape }).superRefine(checkTrainingKeys);

export type JobSpec = z.infer<typeof jobSpecSchema>;
export type DataSource = z.infer<typeof dataSourceSchema>;
