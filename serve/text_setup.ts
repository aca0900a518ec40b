// The tokenizer and chat template a served model speaks: the ones its adapter was trained with (the job
// records them in ringtune.json beside the adapter), else the base model's own.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { setupText, type TextSetup } from "../spec/text_setup.js";
import { TEMPLATE_NAMES, type TemplateName } from "../text/templates/template.js";
import type { JobSpec } from "../spec/job_spec.js";
import { readTokenizerConfig } from "../text/tokenizers/hf_tokenizer.js";

/** What a job wrote beside its final adapter: the template and tokenizer it trained with. */
const JOB_INFO_FILE = "ringtune.json";

export interface TextChoice {
  template: TemplateName;
  /** "byte", a folder with tokenizer.json, or "model": the base folder's (byte when it has none) */
  tokenizer: string;
}

/** The base's own choice: its Jinja chat template when tokenizer_config.json has one, else none. */
export function baseTextChoice(baseDir: string, template?: TemplateName): TextChoice {
  if (template) return { template, tokenizer: "model" };
  let hasTemplate = false;
  if (existsSync(path.join(baseDir, "tokenizer_config.json"))) {
    hasTemplate = readTokenizerConfig(baseDir).chat_template != null;
  }
  return { template: hasTemplate ? "model" : "none", tokenizer: "model" };
}

/** The choice a job recorded for an adapter (ringtune.json in the adapter folder or its parent), or null. */
export function recordedTextChoice(adapterDir: string): TextChoice | null {
  for (const dir of [adapterDir, path.dirname(adapterDir)]) {
    const file = path.join(dir, JOB_INFO_FILE);
    if (!existsSync(file)) continue;
    let info: unknown;
    try {
      info = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      throw new Error(`${file}: not valid JSON (${(err as Error).message})`, { cause: err });
    }
    const t = (info as { template?: unknown }).template;
    const tok = (info as { tokenizer?: unknown }).tokenizer;
    if (typeof t !== "string" || !(TEMPLATE_NAMES as readonly string[]).includes(t))
      throw new Error(`${file}: template must be one of ${TEMPLATE_NAMES.join(", ")}, got ${JSON.stringify(t)}`);
    return { template: t as TemplateName, tokenizer: typeof tok === "string" ? tok : "model" };
  }
  return null;
}

/** The tokenizer and template for `choice` over the base model in `baseDir`. */
export function textSetupFor(baseDir: string, choice: TextChoice): TextSetup {
  const tokenizer =
    choice.tokenizer !== "model"
      ? choice.tokenizer
      : existsSync(path.join(baseDir, "tokenizer.json"))
        ? baseDir
        : "byte";
  const spec = { tokenizer, model: { path: baseDir }, template: choice.template } as Pick<
    JobSpec,
    "tokenizer" | "model" | "template"
  >;
  return setupText(spec);
}
