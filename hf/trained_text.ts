// How a model's conversations were turned into text in training: the template, its options and the
// tokenizer. A job writes this into every model and adapter folder it produces (ringtune.json), and a
// server reads it back, so a served model renders chats exactly as it was trained to read them.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { TOKENIZER_FILES } from "./hf_model.js";
import { writeOutputFile, writeOutputFileAtomically } from "../files/output_files.js";
import { inputPresent, readInputBytes, readRegularFile } from "../files/input_files.js";
import { builtinChatTemplateJinja } from "../text/templates/builtin_jinja.js";
import { TEMPLATE_NAMES, type TemplateName, type TemplateOptions } from "../text/templates/template.js";

/** The file beside a model's or an adapter's weights that records its text setup (and the job). */
export const TRAINED_TEXT_FILE = "ringtune.json";

/** "byte", "model" (the served model folder's own tokenizer files, byte when it has none) or a tokenizer folder. */
export type TokenizerChoice = string;

export interface TrainedText {
  template: TemplateName;
  /** the job's template_options (apply_chat_template's keyword arguments) */
  template_options: TemplateOptions;
  tokenizer: TokenizerChoice;
}

const schema = z.looseObject({
  job: z.string().optional(),
  template: z.enum(TEMPLATE_NAMES),
  template_options: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
  tokenizer: z.string().min(1).default("model"),
});

/**
 * The text setup a job's spec trains with, as an output folder records it. `tokenizer` is what the
 * folder should name: "model" when the job's tokenizer files were copied into it.
 */
export function trainedTextOf(
  spec: { template: TemplateName; template_options?: TemplateOptions },
  tokenizer: TokenizerChoice,
): TrainedText {
  return { template: spec.template, template_options: { ...(spec.template_options ?? {}) }, tokenizer };
}

/**
 * The text setup recorded in `dir`/ringtune.json, or null when the folder has none. A tokenizer folder is
 * taken relative to `dir` and must lie inside it. Errors name the file and the field.
 */
export function readTrainedText(dir: string): (TrainedText & { job?: string }) | null {
  const file = path.join(dir, TRAINED_TEXT_FILE);
  if (!inputPresent(file)) return null;
  let json: unknown;
  try {
    json = JSON.parse(readRegularFile(file));
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    const detail = r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw new Error(`${file}: ${detail}`);
  }
  const { job, template, template_options, tokenizer } = r.data;
  if (tokenizer === "byte" || tokenizer === "model") return { job, template, template_options, tokenizer };
  // The folder may have come from anyone (an adapter loaded on request): its record names files inside it only.
  const where = path.resolve(dir, tokenizer);
  const inside = path.relative(path.resolve(dir), where);
  if (path.isAbsolute(tokenizer) || inside.startsWith("..") || path.isAbsolute(inside))
    throw new Error(
      `${file}: tokenizer: must be "byte", "model" or a folder inside ${dir} holding the tokenizer's files, got ${JSON.stringify(tokenizer)}`,
    );
  return { job, template, template_options, tokenizer: where };
}

/** The JSON of ringtune.json: the job's id and method beside its text setup. */
export function trainedTextJson(job: { id: string; method: string }, text: TrainedText): string {
  return JSON.stringify({ job: job.id, method: job.method, ...text }, null, 2) + "\n";
}

/**
 * Writes `text` as `dir`/ringtune.json. A tokenizer folder other than `dir` has its files copied into
 * `dir` first and is recorded as "." (the folder itself), so the record never points outside the folder.
 */
export async function writeTrainedText(
  dir: string,
  text: TrainedText,
  job: { id: string; method: string },
): Promise<void> {
  let tokenizer = text.tokenizer;
  if (tokenizer !== "byte" && tokenizer !== "model" && path.resolve(tokenizer) !== path.resolve(dir)) {
    for (const f of TOKENIZER_FILES) {
      const src = path.join(tokenizer, f);
      if (inputPresent(src)) await writeOutputFileAtomically(path.join(dir, f), readInputBytes(src));
    }
    tokenizer = ".";
  } else if (tokenizer !== "byte" && tokenizer !== "model") tokenizer = ".";
  await writeChatTemplate(dir, text);
  await writeOutputFile(path.join(dir, TRAINED_TEXT_FILE), trainedTextJson(job, { ...text, tokenizer }));
}

/**
 * Replaces the chat_template of `dir`/tokenizer_config.json (when the folder has one) with the built-in
 * template the job trained with, as Jinja, so servers that read only the Hugging Face files (vLLM,
 * transformers) render chats as training did rather than with the base model's own template. A job on
 * the model's own template (`model`) keeps it as it is.
 */
async function writeChatTemplate(dir: string, text: TrainedText): Promise<void> {
  const file = path.join(dir, "tokenizer_config.json");
  if (text.template === "model" || !existsSync(file)) return;
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
  config.chat_template = builtinChatTemplateJinja(text.template, text.template_options);
  await writeOutputFileAtomically(file, JSON.stringify(config, null, 2) + "\n");
}
