// Adapters hot-loaded and unloaded over HTTP while serving, concurrent requests for different adapters,
// and a streamed request cancelled by its client.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { RunningServer } from "../../serving/server.js";
import { baseUrl, postJson, serveFixture, startTestServer, type ServeFixture } from "../helpers/serve_fixtures.js";

let fixture: ServeFixture;
let server: RunningServer;

before(async () => {
  fixture = await serveFixture();
  server = await startTestServer(fixture, { adapters: [] });
});

after(async () => {
  await server?.close();
});

const greedy = (model: string, prompt: number[]) => ({
  model,
  prompt,
  max_tokens: 8,
  temperature: 0,
  ignore_eos: true,
  return_token_ids: true,
});

async function models(): Promise<string[]> {
  const r = await fetch(`${baseUrl(server)}/models`);
  return ((await r.json()) as { data: { id: string }[] }).data.map((m) => m.id);
}

test("an adapter loaded at run time is listed and served; unloaded, it is a 404 again", async () => {
  const url = baseUrl(server);
  assert.deepEqual(await models(), ["base"]);
  const before = await postJson(`${url}/completions`, greedy("hot", [1, 2, 3]));
  assert.equal(before.status, 404);
  assert.equal(before.json.error.code, "model_not_found");
  const load = await postJson(`${url}/load_lora_adapter`, { lora_name: "hot", lora_path: fixture.adapters.r4 });
  assert.equal(load.status, 200, JSON.stringify(load.json));
  assert.equal(load.json.rank, 4);
  assert.deepEqual(await models(), ["base", "hot"]);
  const served = await postJson(`${url}/completions`, greedy("hot", [1, 2, 3]));
  const base = await postJson(`${url}/completions`, greedy("base", [1, 2, 3]));
  assert.equal(served.status, 200);
  assert.notDeepEqual(served.json.choices[0].token_ids, base.json.choices[0].token_ids);
  const again = await postJson(`${url}/load_lora_adapter`, { lora_name: "hot", lora_path: fixture.adapters.r2 });
  assert.equal(again.status, 400);
  assert.equal(again.json.error.code, "adapter_exists");
  const unload = await postJson(`${url}/unload_lora_adapter`, { lora_name: "hot" });
  assert.equal(unload.status, 200);
  assert.equal((await postJson(`${url}/completions`, greedy("hot", [1, 2, 3]))).status, 404);
  assert.equal(server.decoder.memory().adapters, 0);
});

test("a bad adapter folder is refused with a message naming the problem; the server serves on", async () => {
  const url = baseUrl(server);
  const r = await postJson(`${url}/load_lora_adapter`, {
    lora_name: "broken",
    lora_path: path.join(fixture.work, "none"),
  });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.param, "lora_path");
  assert.match(r.json.error.message, /adapter 'broken': .*not a PEFT adapter folder/);
  const job = await postJson(`${url}/load_lora_adapter`, { lora_name: "fromjob", lora_path: "job-123" });
  assert.equal(job.status, 400);
  assert.match(job.json.error.message, /job id, but this server has no NATS connection/);
  assert.equal((await postJson(`${url}/completions`, greedy("base", [4]))).status, 200);
});

test("an adapter is served with the template its job recorded beside it, the base with its own", async () => {
  const url = baseUrl(server);
  writeFileSync(
    path.join(fixture.adapters.r2!, "ringtune.json"),
    JSON.stringify({ template: "chatml", tokenizer: "model" }),
  );
  const load = await postJson(`${url}/load_lora_adapter`, { lora_name: "chatty", lora_path: fixture.adapters.r2 });
  assert.equal(load.status, 200, JSON.stringify(load.json));
  assert.equal(server.ctx.catalog.get("chatty").setup.template.name, "chatml");
  assert.equal(server.ctx.catalog.get("base").setup.template.name, "none");
  const ask = { messages: [{ role: "user", content: "hi" }], max_tokens: 2, temperature: 0 };
  const chatml = await postJson(`${url}/chat/completions`, { model: "chatty", ...ask });
  const plain = await postJson(`${url}/chat/completions`, { model: "base", ...ask });
  // ChatML wraps the turn in <|im_start|>user ... <|im_end|> and opens the assistant's: a longer prompt
  assert.ok(
    chatml.json.usage.prompt_tokens > plain.json.usage.prompt_tokens + 5,
    JSON.stringify([chatml.json, plain.json]),
  );
  await postJson(`${url}/unload_lora_adapter`, { lora_name: "chatty" });
});

test("concurrent requests for different adapters each get what they get alone", async () => {
  const url = baseUrl(server);
  for (const [name, dir] of Object.entries(fixture.adapters)) {
    const r = await postJson(`${url}/load_lora_adapter`, { lora_name: name, lora_path: dir });
    assert.equal(r.status, 200, JSON.stringify(r.json));
  }
  const asks = ["r2", "r4", "r8", "base", "r8", "r2"].map((m, i) => greedy(m, [10 + i, 20, 30 + i]));
  const alone = [];
  for (const a of asks) alone.push((await postJson(`${url}/completions`, a)).json.choices[0].token_ids);
  const together = await Promise.all(asks.map((a) => postJson(`${url}/completions`, a)));
  assert.deepEqual(
    together.map((r) => r.json.choices[0].token_ids),
    alone,
  );
});

test("a client that drops a stream cancels its generation; the server keeps serving", async () => {
  const url = baseUrl(server);
  const cancelledBefore = server.ctx.engine.finished.cancelled;
  const aborter = new AbortController();
  const res = await fetch(`${url}/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "r4",
      prompt: [1, 2],
      max_tokens: 200,
      temperature: 0,
      ignore_eos: true,
      stream: true,
    }),
    signal: aborter.signal,
  });
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  const reader = res.body!.getReader();
  const first = await reader.read();
  assert.match(new TextDecoder().decode(first.value), /^data: \{/);
  aborter.abort();
  const deadline = Date.now() + 30_000;
  while (server.ctx.engine.finished.cancelled === cancelledBefore && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  assert.equal(server.ctx.engine.finished.cancelled, cancelledBefore + 1, "the generation was not cancelled");
  assert.deepEqual(server.ctx.engine.load, { live: 0, waiting: 0 });
  const after = await postJson(`${url}/completions`, greedy("r4", [1, 2]));
  assert.equal(after.status, 200);
});

test("an adapter folder outside the server's adapter roots, or a symlink leading out, is refused unread", async () => {
  const root = path.join(fixture.work, "adapters");
  mkdirSync(root, { recursive: true });
  symlinkSync(fixture.adapters.r4!, path.join(root, "link-out"));
  const confined = await startTestServer(fixture, { adapters: [], adapterRoots: [root] });
  try {
    const url = baseUrl(confined);
    for (const lora_path of [fixture.adapters.r4!, path.join(root, "link-out"), path.join(root, "..", "base")]) {
      const r = await postJson(`${url}/load_lora_adapter`, { lora_name: "outside", lora_path });
      assert.equal(r.status, 403, lora_path);
      assert.equal(r.json.error.type, "permission_error");
      assert.equal(r.json.error.param, "lora_path");
      assert.match(r.json.error.message, /--adapter-root/);
    }
    assert.equal((await postJson(`${url}/completions`, greedy("outside", [1]))).status, 404);
  } finally {
    await confined.close();
  }
});
