// Shared by the template tests: a template set up as a job would, and what each training sequence of a
// conversation asks the model to produce.
import { readFileSync } from "node:fs";
import path from "node:path";
import { ByteTokenizer } from "../../text/tokenizers/byte_tokenizer.js";
import { shiftLabels } from "../../data/examples/example.js";
import { maskConversation, type LabelOptions } from "../../data/examples/mask.js";
import type { Message } from "../../text/records/records.js";
import { setupText } from "../../spec/text_setup.js";
import { JinjaTemplate } from "../../text/templates/jinja_template.js";
import type { ChatTemplate, TemplateName, TemplateOptions } from "../../text/templates/template.js";
import type { TextTokenizer } from "../../text/tokenizers/tokenizer.js";
import { fixtures, targetRuns } from "./data_fixtures.js";

export const DEFAULT_LABELS: LabelOptions = { trainOnPrompt: false, lastTurnOnly: false };

export function builtin(name: Exclude<TemplateName, "model">, options: TemplateOptions = {}) {
  const s = setupText({ tokenizer: "byte", model: {}, template: name, template_options: options });
  return { tok: s.tokenizer, tpl: s.template };
}

/** A model's real chat template from test/fixtures/data/chat_templates, with a byte tokenizer that knows its markers. */
export function fixtureTemplate(file: string, bos: string | null, eos: string, options: TemplateOptions = {}) {
  const source = readFileSync(path.join(fixtures, "chat_templates", file), "utf8");
  const tpl = new JinjaTemplate(source, { bos_token: bos, eos_token: eos }, options);
  const markers = source.match(/<\|[a-z_]+\|>/g) ?? [];
  return { tok: new ByteTokenizer([...new Set([...markers, "<think>", "</think>"])]), tpl };
}

export interface Sequence {
  text: string;
  /** each run of targets, decoded */
  runs: string[];
}

/** Every training sequence of a conversation: its text and what the model must produce in it. */
export function sequences(
  tok: TextTokenizer,
  tpl: ChatTemplate,
  messages: Message[],
  tools?: unknown[],
  opts: LabelOptions = DEFAULT_LABELS,
): Sequence[] {
  const texts = (
    opts.lastTurnOnly ? tpl.renderExamples(messages, tools).slice(-1) : tpl.renderExamples(messages, tools)
  ).map((c) => c.text);
  return maskConversation(tpl, messages, tools, tok, opts).map((m, k) => ({
    text: texts[k],
    runs: targetRuns(shiftLabels(m).labels, tok),
  }));
}
