// A job's output folder tells servers that read only the Hugging Face files (vLLM, transformers) how
// training rendered chats: its tokenizer_config.json's chat_template, rendered as they render it, gives
// the prompt ringtune serve gives, for a built-in template over a tokenizer whose own Jinja differs
// (Qwen2.5 adds a default system prompt), while a job on the model's own template keeps that template.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { Template } from "@huggingface/jinja";
import { trainedTextOf, writeTrainedText } from "../../hf/trained_text.js";
import { baseTextChoice, textSetupFor } from "../../serving/text_setup.js";
import { renderChatPrompt } from "../../text/chat_prompt.js";
import type { Message } from "../../text/records/records.js";
import type { TemplateName, TemplateOptions } from "../../text/templates/template.js";
import { tempDir } from "../helpers/lora_adapters.js";
import { NPM_TOKENIZERS } from "../helpers/served_folders.js";

const JOB = { id: "job-1", method: "full" };
const noSystem: Message[] = [{ role: "user", content: "We shipped 8 books to Seoul under order 5019." }];
const withSystem: Message[] = [{ role: "system", content: "Answer with JSON only." }, ...noSystem];

function chatTemplateOf(dir: string): string {
  return (JSON.parse(readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")) as { chat_template: string })
    .chat_template;
}

/** What a transformers-style server renders: the folder's chat_template, no template keywords passed. */
function servedByHfFiles(dir: string, messages: Message[]): string {
  return new Template(chatTemplateOf(dir)).render({
    messages: messages.map((m) => ({ role: m.role, content: m.content })),
    add_generation_prompt: true,
    bos_token: "",
    eos_token: "<|im_end|>",
  });
}

async function writeOutput(tokenizer: string, template: TemplateName, options: TemplateOptions = {}): Promise<string> {
  const dir = tempDir("output-chat-template-");
  await writeTrainedText(dir, trainedTextOf({ template, template_options: options }, tokenizer), JOB);
  return dir;
}

test("a chatml job over Qwen2.5's tokenizer writes a chat_template that renders as training, not Qwen's default system prompt", async () => {
  const dir = await writeOutput(NPM_TOKENIZERS.qwen2_5, "chatml");
  const setup = textSetupFor(dir, baseTextChoice(dir));
  for (const chat of [noSystem, withSystem]) {
    const served = servedByHfFiles(dir, chat);
    assert.equal(served, renderChatPrompt(setup, chat).text);
    assert.deepEqual(setup.tokenizer.encode(served), renderChatPrompt(setup, chat).ids);
    assert.doesNotMatch(served, /You are Qwen/);
  }
  // The tokenizer the job read is left as it was.
  assert.match(chatTemplateOf(NPM_TOKENIZERS.qwen2_5), /You are Qwen/);
});

test("a qwen3 job's template options become the written chat_template's defaults", async () => {
  const dir = await writeOutput(NPM_TOKENIZERS.qwen3, "qwen3", { enable_thinking: false });
  const setup = textSetupFor(dir, baseTextChoice(dir));
  const served = servedByHfFiles(dir, withSystem);
  assert.equal(served, renderChatPrompt(setup, withSystem).text);
  assert.match(served, /<think>\n\n<\/think>\n\n$/);
});

test("a job on the model's own template keeps the tokenizer's chat_template", async () => {
  const dir = await writeOutput(NPM_TOKENIZERS.qwen2_5, "model");
  assert.equal(chatTemplateOf(dir), chatTemplateOf(NPM_TOKENIZERS.qwen2_5));
});
