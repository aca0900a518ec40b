// The chat_template a job writes into its output folders renders, under @huggingface/jinja (what
// transformers-style servers run), exactly what the built-in template rendered in training: the prompt
// with the generation header and the whole conversation, with and without a system prompt, over several
// turns, with tools where the template shows them, and with its options as defaults.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Message } from "../../text/records/records.js";
import { builtinChatTemplateJinja } from "../../text/templates/builtin_jinja.js";
import { JinjaTemplate } from "../../text/templates/jinja_template.js";
import type { TemplateName, TemplateOptions } from "../../text/templates/template.js";
import { builtin } from "../helpers/template_runs.js";

const weather = {
  type: "function",
  function: { name: "get_weather", description: "Weather of a city", parameters: { type: "object" } },
};
const oneTurn: Message[] = [
  { role: "user", content: "We shipped 8 books." },
  { role: "assistant", content: '{"qty": 8}' },
];
const withSystem: Message[] = [{ role: "system", content: "Answer with JSON only." }, ...oneTurn];
const multiTurn: Message[] = [
  ...withSystem,
  { role: "user", content: "And 3 pens?" },
  { role: "assistant", content: '{"qty": 3}' },
];
const toolChat: Message[] = [
  { role: "user", content: "Beijing and Paris?" },
  {
    role: "assistant",
    content: "Let me look.",
    toolCalls: [
      { name: "get_weather", arguments: '{"city":"Beijing"}' },
      { name: "get_weather", arguments: '{"city": "Paris"}' },
    ],
  },
  { role: "tool", content: '{"temp": 20}' },
  { role: "tool", content: '{"temp": 15}' },
  { role: "assistant", content: "20 and 15." },
];
const reasoned: Message[] = [
  { role: "user", content: "2+2?" },
  { role: "assistant", content: "4", reasoning_content: "two and two" },
  { role: "user", content: "3+3?" },
  { role: "assistant", content: "<think>\nthree and three\n</think>\n\n6" },
];

interface Case {
  chat: Message[];
  tools?: unknown[];
}
const plain: Case[] = [{ chat: oneTurn }, { chat: withSystem }, { chat: multiTurn }];
const tools: Case[] = [
  { chat: toolChat, tools: [weather] },
  { chat: [{ role: "system", content: "Be brief." }, ...toolChat], tools: [weather] },
];

function assertSameRendering(name: Exclude<TemplateName, "model">, cases: Case[], options: TemplateOptions = {}) {
  const { tok, tpl } = builtin(name, options);
  // Rendered as a server does that passes no template keywords: the options must be the Jinja's defaults.
  // The chat_template is written only beside a real tokenizer, whose BOS is Llama 3's own for llama3; the
  // byte tokenizer here stands in for it.
  const bos = name === "llama3" ? "<|begin_of_text|>" : tok.bosToken;
  const jinja = new JinjaTemplate(builtinChatTemplateJinja(name, options), { bos_token: bos, eos_token: tok.eosToken });
  for (const { chat, tools } of cases) {
    for (let n = 1; n <= chat.length; n++) {
      const prefix = chat.slice(0, n);
      if (prefix.at(-1)?.role !== "assistant") {
        assert.equal(jinja.renderPrompt(prefix, tools), tpl.renderPrompt(prefix, tools), `${name} prompt ${n}`);
      }
      assert.equal(jinja.render(prefix, tools).text, tpl.render(prefix, tools).text, `${name} render ${n}`);
    }
  }
}

test("the written chat_template renders as the chatml template did, tools included (no default system prompt)", () => {
  assertSameRendering("chatml", [...plain, ...tools]);
});

test("the written chat_template renders as the qwen3 template did, its enable_thinking a default", () => {
  assertSameRendering("qwen3", [...plain, ...tools, { chat: reasoned }]);
  assertSameRendering("qwen3", [...plain, ...tools, { chat: reasoned }], { enable_thinking: false });
});

test("the written chat_template renders as the llama2, llama3 and none templates did", () => {
  assertSameRendering("llama2", plain);
  assertSameRendering("llama3", plain);
  assertSameRendering("none", plain);
});

test("a template whose tool rendering the Jinja cannot reproduce refuses tools instead of rendering otherwise", () => {
  for (const name of ["llama3", "none"] as const) {
    const { tok } = builtin(name);
    const jinja = new JinjaTemplate(builtinChatTemplateJinja(name), {
      bos_token: tok.bosToken,
      eos_token: tok.eosToken,
    });
    assert.throws(
      () => jinja.renderPrompt(oneTurn.slice(0, 1), [weather]),
      /cannot reproduce|no place for a tool list/,
    );
  }
});
