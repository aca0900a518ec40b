// The tokenizer and chat template a served model speaks: the ones its job trained it with (ringtune.json
// in the model's or the adapter's folder), else the model's own Jinja template, else none. `--template`
// replaces them only when asked, and the server says so.
import { existsSync } from "node:fs";
import path from "node:path";
import { setupText, type TextSetup } from "../spec/text_setup.js";
import type { TemplateName, TemplateOptions } from "../text/templates/template.js";
import { readTokenizerConfig } from "../text/tokenizers/hf_tokenizer.js";
import { readTrainedText, TRAINED_TEXT_FILE } from "../hf/trained_text.js";
import { underInputRoots } from "../files/input_files.js";

export interface TextChoice {
  template: TemplateName;
  template_options: TemplateOptions;
  /** "byte", a folder with tokenizer.json, or "model": the base folder's (byte when it has none) */
  tokenizer: string;
  /** where the choice comes from, for the server's log */
  from: string;
}

/** The base's own Jinja chat template when tokenizer_config.json has one, else none. */
function ownTemplate(baseDir: string): TemplateName {
  if (!existsSync(path.join(baseDir, "tokenizer_config.json"))) return "none";
  return readTokenizerConfig(baseDir).chat_template != null ? "model" : "none";
}

/**
 * The base model's choice: `override` when given (the recorded tokenizer is kept: ids must match the
 * weights), else what its job recorded, else its own Jinja template, else none.
 */
export function baseTextChoice(baseDir: string, override?: TemplateName): TextChoice {
  const recorded = readTrainedText(baseDir);
  const file = path.join(baseDir, TRAINED_TEXT_FILE);
  if (override) {
    const instead = recorded ? `, instead of ${recorded.template} recorded in ${file}` : "";
    return {
      template: override,
      template_options: {},
      tokenizer: recorded?.tokenizer ?? "model",
      from: `--template ${override}${instead}`,
    };
  }
  if (recorded) return { ...recorded, from: file };
  const own = ownTemplate(baseDir);
  return {
    template: own,
    template_options: {},
    tokenizer: "model",
    from:
      own === "model" ? `${baseDir}/tokenizer_config.json` : `no ${TRAINED_TEXT_FILE} or chat_template in ${baseDir}`,
  };
}

/**
 * The choice a job recorded for an adapter (ringtune.json in the adapter folder or its parent), or null. A
 * parent outside the process's input roots (an adapter folder that is a root itself) is not looked in.
 */
export function recordedTextChoice(adapterDir: string): TextChoice | null {
  for (const dir of [adapterDir, path.dirname(adapterDir)].filter(underInputRoots)) {
    const recorded = readTrainedText(dir);
    if (recorded) return { ...recorded, from: path.join(dir, TRAINED_TEXT_FILE) };
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
  return setupText({
    tokenizer,
    model: { path: baseDir },
    template: choice.template,
    template_options: choice.template_options,
  });
}

/** One line for the log: which template a served model renders chats with, and why. */
export function describeTextChoice(name: string, choice: TextChoice): string {
  const options = Object.keys(choice.template_options).length ? ` ${JSON.stringify(choice.template_options)}` : "";
  return `${name}: chat template ${choice.template}${options} (${choice.from})`;
}
