// Picks the tokenizer and chat template a job spec names.
import { existsSync } from "node:fs";
import type { JobSpec } from "./job_spec.js";
import { ByteTokenizer } from "../text/tokenizers/byte_tokenizer.js";
import { HfTokenizer, readTokenizerConfig, tokenText } from "../text/tokenizers/hf_tokenizer.js";
import { builtinTemplate } from "../text/templates/builtin_templates.js";
import { chatTemplateSource, JinjaTemplate } from "../text/templates/jinja_template.js";
import type { ChatTemplate, TemplateName, TemplateOptions } from "../text/templates/template.js";
import type { TextTokenizer } from "../text/tokenizers/tokenizer.js";

/** Markers each built-in template needs as single tokens in the byte tokenizer. */
const BUILTIN_SPECIALS: Record<Exclude<TemplateName, "model">, string[]> = {
  chatml: ["<|im_start|>", "<|im_end|>"],
  llama2: [],
  llama3: ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|end_of_text|>"],
  qwen3: ["<|im_start|>", "<|im_end|>", "<think>", "</think>"],
  none: [],
};

/**
 * Part of every template id: raised whenever a template's rendering or masking changes, so a data cache
 * built by older code is not reused.
 */
const RENDERING_VERSION = 2;

export interface TextSetup {
  tokenizer: TextTokenizer;
  template: ChatTemplate;
  /** identifies the template's behaviour, for the cache key (the Jinja source for `model`) */
  templateId: string;
}

/** "byte", a folder with tokenizer.json, or by default the model folder (byte for an init model). */
export function tokenizerLocation(spec: Pick<JobSpec, "tokenizer" | "model">): string {
  return spec.tokenizer ?? spec.model.path ?? "byte";
}

export function setupText(
  spec: Pick<JobSpec, "tokenizer" | "model" | "template"> & { template_options?: TemplateOptions },
): TextSetup {
  const where = tokenizerLocation(spec);
  const options = spec.template_options ?? {};
  // Options change the rendering, so they are part of what identifies the template's output.
  const optionsId =
    `@${RENDERING_VERSION}` + (Object.keys(options).length > 0 ? `:${JSON.stringify(sortedEntries(options))}` : "");
  if (where !== "byte" && !existsSync(where)) throw new Error(`tokenizer folder not found: ${where}`);
  if (spec.template === "model") {
    const dir = where !== "byte" ? where : spec.model.path;
    if (!dir)
      throw new Error("template: model needs a model folder with tokenizer_config.json (model.path or tokenizer)");
    const config = readTokenizerConfig(dir);
    const source = chatTemplateSource(config, dir);
    const template = new JinjaTemplate(source, config, options);
    const specials = [tokenText(config.bos_token), tokenText(config.eos_token)].filter((s): s is string => s !== null);
    const tokenizer = where === "byte" ? new ByteTokenizer(specials) : new HfTokenizer(where);
    return { tokenizer, template, templateId: `model${optionsId}:${source}` };
  }
  const tokenizer = where === "byte" ? new ByteTokenizer(BUILTIN_SPECIALS[spec.template]) : new HfTokenizer(where);
  const template = builtinTemplate(spec.template, tokenizer, options);
  return { tokenizer, template, templateId: spec.template + optionsId };
}

function sortedEntries(options: TemplateOptions): [string, unknown][] {
  return Object.entries(options).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
