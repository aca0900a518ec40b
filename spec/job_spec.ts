// The job file's schema. Unknown keys are errors that name the key (strict objects throughout).
// The training keys live in training_spec.ts; both halves are strict, so unknown keys are named.
import { z } from "zod";
import { pathString, SPEC_LIMITS } from "./size_limits.js";
import { DATA_FORMATS } from "../text/formats/formats.js";
import { columnsSchema, tagsSchema } from "../text/formats/llamafactory_columns.js";
import { TEMPLATE_NAMES } from "../text/templates/template.js";
import * as recordLimits from "../text/records/record_limits.js";
import { checkTrainingKeys, trainingSpecShape } from "./training_spec.js";
import { checkSequenceParallelKeys } from "./sequence_parallel.js";
import { checkPreferenceKeys, preferenceSpecShape } from "./preference_spec.js";
import { checkWorkersKeys } from "./workers_spec.js";

export const dataSourceSchema = z
  .strictObject({
    path: pathString(),
    format: z.enum(DATA_FORMATS).default("auto"),
    /** share of the training mix; give it to every source or to none */
    weight: z.number().positive().optional(),
    /** passes over this source (may be fractional): 2 trains an important task twice */
    epochs: z.number().positive().default(1),
    /** every answer must parse as JSON */
    response_format: z.literal("json").optional(),
    /** task_type for records that carry none */
    task_type: z.string().min(1).max(SPEC_LIMITS.task_type_chars).optional(),
    /** LLaMA-Factory column names (prompt, query, response, history, messages, system, tools) */
    columns: columnsSchema.optional(),
    /** LLaMA-Factory sharegpt tags (role_tag, content_tag, user_tag, assistant_tag, ...) */
    tags: tagsSchema.optional(),
    /** preference pairs (`chosen`/`rejected`), as LLaMA-Factory's `ranking: true`; needs stage: dpo */
    ranking: z.boolean().default(false),
    /** `.txt` files: one text per line, or the whole file as one text */
    text_split: z.enum(["line", "document"]).default("line"),
  })
  .refine((d) => d.text_split === "line" || d.path.toLowerCase().endsWith(".txt"), {
    path: ["text_split"],
    message: "text_split is for .txt files",
  });

export const modelSchema = z
  .strictObject({
    path: pathString().optional(),
    init: z.strictObject({ config: pathString(), seed: z.number().int().default(0) }).optional(),
    /** a PEFT LoRA adapter folder to continue training (method: lora) */
    adapter: pathString().optional(),
  })
  .refine((m) => (m.path === undefined) !== (m.init === undefined), {
    message: "give exactly one of 'path' or 'init'",
  });

export const dataSpecShape = {
  model: modelSchema,
  /** "byte", or a folder with tokenizer.json; default: the model folder (byte for an init model) */
  tokenizer: pathString().optional(),
  template: z.enum(TEMPLATE_NAMES).default("chatml"),
  /** variables for the template, as apply_chat_template's keyword arguments (qwen3: enable_thinking) */
  template_options: z
    .record(
      z.string().max(SPEC_LIMITS.template_option_key_chars),
      z.union([z.string().max(SPEC_LIMITS.template_option_value_chars), z.number(), z.boolean()]),
    )
    .refine((o) => Object.keys(o).length <= SPEC_LIMITS.template_options, {
      message: `at most ${SPEC_LIMITS.template_options} options`,
    })
    .default({}),
  /** files to train on; LLaMA-Factory datasets named by `dataset` are added to these */
  data: z.array(dataSourceSchema).max(SPEC_LIMITS.data_entries).default([]),
  /** a LLaMA-Factory data folder (with dataset_info.json); default: `data` beside the job file */
  dataset_dir: pathString().optional(),
  /** LLaMA-Factory dataset names from dataset_info.json: "a,b" or a list */
  dataset: z
    .union([
      z
        .string()
        .min(1)
        .max(SPEC_LIMITS.datasets * SPEC_LIMITS.dataset_name_chars),
      z.array(z.string().min(1).max(SPEC_LIMITS.dataset_name_chars)).min(1).max(SPEC_LIMITS.datasets),
    ])
    .optional(),
  /** exact: drop exact repeats (the first is kept); none: keep every record, repeats on purpose included */
  dedup: z.enum(["exact", "none"]).default("exact"),
  /** validation split: a fraction (< 1) or a count of records, stratified by task_type */
  val_size: z.number().nonnegative().default(0),
  seq_len: z.number().int().positive().max(SPEC_LIMITS.seq_len).default(512),
  packing: z.boolean().default(true),
  train_on_prompt: z.boolean().default(false),
  last_turn_only: z.boolean().default(false),
  on_bad_record: z.enum(["skip", "fail"]).default("skip"),
  /** SFT examples longer than seq_len: cut the earliest context (keeping the last answer) or drop */
  overlong: z.enum(["truncate", "drop"]).default("truncate"),
  seed: z.number().int().default(0),
  /** bytes of one record in a data file (JSONL line, JSON array element, .txt line); longer ones are refused */
  max_record_bytes: z
    .number()
    .int()
    .positive()
    .max(recordLimits.MAX_RECORD_BYTES_LIMIT)
    .default(recordLimits.DEFAULT_MAX_RECORD_BYTES),
  /** tokens of one templated record (before fitting to seq_len); longer ones are refused */
  max_record_tokens: z
    .number()
    .int()
    .positive()
    .max(recordLimits.MAX_RECORD_TOKENS_LIMIT)
    .default(recordLimits.DEFAULT_MAX_RECORD_TOKENS),
  /** where tokenized and packed data is cached; default `.cache/data` beside the repository */
  cache_dir: pathString().optional(),
};

/** One schema for the whole job file: the data keys and the training keys (training_spec.ts). */
export const jobSpecSchema = z
  .strictObject({ ...dataSpecShape, ...trainingSpecShape, ...preferenceSpecShape })
  .superRefine(checkTrainingKeys)
  .superRefine(checkPreferenceKeys)
  .superRefine(checkSequenceParallelKeys)
  .superRefine(checkWorkersKeys)
  .superRefine((spec, ctx) => {
    if (spec.data.length === 0 && spec.dataset === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["data"],
        message: "give 'data' (files) or 'dataset' (LLaMA-Factory names)",
      });
    if (spec.dataset_dir !== undefined && spec.dataset === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["dataset_dir"],
        message: "dataset_dir needs 'dataset' (the names to read)",
      });
  });

export type JobSpec = z.infer<typeof jobSpecSchema>;
export type DataSource = z.infer<typeof dataSourceSchema>;
