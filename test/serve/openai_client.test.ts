// The official `openai` npm client against a live server: chat without and with streaming, tool calls
// read back into `tool_calls`, the model list, and OpenAI error objects the client turns into its own
// error classes.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import OpenAI from "openai";
import type { RunningServer } from "../../serving/server.js";
import { startServer } from "../../serving/server.js";
import { tempDir } from "../helpers/lora_adapters.js";
import { baseUrl, TOOL_CALL_TEXT, writeToolCallingBase } from "../helpers/serve_fixtures.js";

let server: RunningServer;
let client: OpenAI;

const WEATHER_TOOL = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "the weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
const API_KEY = "sk-test-" + Math.random().toString(36).slice(2);
const ASK = [{ role: "user" as const, content: "Weather in Paris?" }];

before(async () => {
  const dir = await writeToolCallingBase(path.join(tempDir("ringtune-toolbot-"), "toolbot"));
  server = await startServer({
    modelDir: dir,
    name: "toolbot",
    adapters: [],
    http: { host: "127.0.0.1", port: 0 },
    apiKey: API_KEY,
  });
  client = new OpenAI({ baseURL: baseUrl(server), apiKey: API_KEY, maxRetries: 0, timeout: 60_000 });
});

after(async () => {
  await server?.close();
});

test("a client without the server's API key, or with another, is refused with OpenAI's 401", async () => {
  for (const apiKey of ["sk-wrong", API_KEY + "x"]) {
    const stranger = new OpenAI({ baseURL: baseUrl(server), apiKey, maxRetries: 0 });
    await assert.rejects(stranger.models.list(), (err: unknown) => {
      assert.ok(err instanceof OpenAI.AuthenticationError, String(err));
      assert.match((err as Error).message, /API key/);
      return true;
    });
  }
  const bare = await fetch(`${baseUrl(server)}/models`);
  assert.equal(bare.status, 401);
  assert.equal(((await bare.json()) as { error: { type: string } }).error.type, "authentication_error");
});

test("models.list names the served base", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, ["toolbot"]);
});

test("a chat completion without tools returns the answer as content, stopped at the end of turn", async () => {
  const r = await client.chat.completions.create({ model: "toolbot", messages: ASK, temperature: 0, max_tokens: 8 });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices[0]!.message.content, TOOL_CALL_TEXT);
  assert.equal(r.choices[0]!.finish_reason, "stop");
  // the call token and <|im_end|>
  assert.equal(r.usage?.completion_tokens, 2);
});

test("a streamed chat completion delivers the same text in chunks, then the finish reason", async () => {
  const stream = await client.chat.completions.create({
    model: "toolbot",
    messages: ASK,
    temperature: 0,
    max_tokens: 8,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let finish: string | null = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    text += c.delta.content ?? "";
    if (c.finish_reason) finish = c.finish_reason;
  }
  assert.equal(text, TOOL_CALL_TEXT);
  assert.equal(finish, "stop");
  assert.equal(usage?.completion_tokens, 2);
});

test("with tools, the tagged call comes back as tool_calls with JSON arguments", async () => {
  const r = await client.chat.completions.create({
    model: "toolbot",
    messages: ASK,
    tools: [WEATHER_TOOL],
    temperature: 0,
  });
  const m = r.choices[0]!.message;
  assert.equal(r.choices[0]!.finish_reason, "tool_calls");
  assert.equal(m.content, null);
  assert.equal(m.tool_calls?.length, 1);
  const call = m.tool_calls![0]!;
  assert.equal(call.type, "function");
  assert.ok(call.type === "function" && call.function.name === "get_weather");
  assert.ok(call.type === "function" && JSON.parse(call.function.arguments).city === "Paris");
  // the tool list is part of the prompt: the same question with tools is longer
  const plain = await client.chat.completions.create({ model: "toolbot", messages: ASK, temperature: 0 });
  assert.ok(r.usage!.prompt_tokens > plain.usage!.prompt_tokens + 20);
});

test("with tools and streaming, the call arrives as a tool_calls delta", async () => {
  const stream = await client.chat.completions.create({
    model: "toolbot",
    messages: ASK,
    tools: [WEATHER_TOOL],
    temperature: 0,
    stream: true,
  });
  const calls = [];
  let finish = null;
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    if (c?.delta.tool_calls) calls.push(...c.delta.tool_calls);
    if (c?.finish_reason) finish = c.finish_reason;
  }
  assert.equal(finish, "tool_calls");
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.function?.name, "get_weather");
  assert.deepEqual(JSON.parse(calls[0]!.function!.arguments!), { city: "Paris" });
});

test("bad requests become the client's error classes with OpenAI's error object, and the server stays up", async () => {
  await assert.rejects(client.chat.completions.create({ model: "nope", messages: ASK }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.NotFoundError, String(err));
    assert.equal(err.code, "model_not_found");
    assert.match(err.message, /the model 'nope' does not exist; served here: toolbot/);
    return true;
  });
  await assert.rejects(
    client.chat.completions.create({ model: "toolbot", messages: ASK, temperature: 7 }),
    (err: unknown) => {
      assert.ok(err instanceof OpenAI.BadRequestError, String(err));
      assert.equal(err.param, "temperature");
      return true;
    },
  );
  await assert.rejects(
    client.chat.completions.create({ model: "toolbot", messages: ASK, max_tokens: 100_000 }),
    (err: unknown) => {
      assert.ok(err instanceof OpenAI.BadRequestError, String(err));
      assert.equal(err.code, "context_length_exceeded");
      return true;
    },
  );
  await assert.rejects(
    client.completions.create({ model: "toolbot", prompt: [[1, 2], [3]] as never }),
    OpenAI.BadRequestError,
  );
  const ok = await client.chat.completions.create({ model: "toolbot", messages: ASK, temperature: 0 });
  assert.equal(ok.choices[0]!.message.content, TOOL_CALL_TEXT);
});
