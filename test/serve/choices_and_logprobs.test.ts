// OpenAI's `n` and log-probability fields: n choices are n sequences in the batch, each drawn with its own
// seed; `logprobs` / `top_logprobs` report the model's own distribution (before temperature and top-p), in
// chat's shape and in the legacy completions' shape; out-of-range values are 400s naming the field.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import type { RunningServer } from "../../serving/server.js";
import { baseUrl, postJson, serveFixture, startTestServer, type Json } from "../helpers/serve_fixtures.js";

let server: RunningServer;

before(async () => {
  server = await startTestServer(await serveFixture());
});

after(async () => {
  await server?.close();
});

const PROMPT = [72, 101, 108, 108, 111, 44, 32];
const CHAT = { model: "r8", messages: [{ role: "user", content: "Hello" }] };

async function ok(path: string, body: unknown): Promise<Json> {
  const r = await postJson(`${baseUrl(server)}${path}`, body);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json;
}

test("n choices are n draws seeded seed, seed + 1, ...: each equals a single request with its seed", async () => {
  const body = { model: "r4", prompt: PROMPT, max_tokens: 8, temperature: 1, seed: 7, ignore_eos: true };
  const r = await ok("/completions", { ...body, n: 3, return_token_ids: true });
  assert.deepEqual(
    r.choices.map((c: Json) => c.index),
    [0, 1, 2],
  );
  assert.equal(r.usage.completion_tokens, 24);
  assert.equal(r.usage.prompt_tokens, PROMPT.length);
  for (let i = 0; i < 3; i++) {
    const one = await ok("/completions", { ...body, seed: 7 + i, return_token_ids: true });
    assert.deepEqual(r.choices[i].token_ids, one.choices[0].token_ids, `choice ${i}`);
  }
  const distinct = new Set(r.choices.map((c: Json) => JSON.stringify(c.token_ids)));
  assert.ok(distinct.size > 1, "three sampled choices came out identical");
});

test("streamed n choices: each index's deltas join to that choice's text, each ends with its finish reason", async () => {
  const body = { ...CHAT, max_tokens: 10, temperature: 1, seed: 11, n: 2 };
  const whole = await ok("/chat/completions", body);
  const res = await fetch(`${baseUrl(server)}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...body, stream: true }),
  });
  const events = (await res.text()).split("\n\n").filter((e) => e.startsWith("data: ") && e !== "data: [DONE]");
  const text = ["", ""];
  const finish: (string | null)[] = [null, null];
  for (const e of events) {
    const c = JSON.parse(e.slice(6)).choices[0];
    text[c.index] += c.delta.content ?? "";
    finish[c.index] = c.finish_reason ?? finish[c.index];
  }
  for (let i = 0; i < 2; i++) {
    assert.equal(text[i], whole.choices[i].message.content, `choice ${i}`);
    assert.equal(finish[i], whole.choices[i].finish_reason, `choice ${i}`);
  }
});

test("chat logprobs: the greedy token is the likeliest, top_logprobs are sorted, and the tokens spell the answer", async () => {
  const r = await ok("/chat/completions", { ...CHAT, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 5 });
  const content = r.choices[0].logprobs.content as Json[];
  assert.equal(content.length, r.usage.completion_tokens);
  for (const t of content) {
    assert.equal(t.top_logprobs.length, 5);
    assert.equal(t.top_logprobs[0].token, t.token);
    assert.equal(t.top_logprobs[0].logprob, t.logprob);
    assert.ok(t.logprob <= 0);
    for (let j = 1; j < 5; j++) assert.ok(t.top_logprobs[j].logprob <= t.top_logprobs[j - 1].logprob);
    assert.ok(t.top_logprobs.reduce((s: number, x: Json) => s + Math.exp(x.logprob), 0) <= 1 + 1e-5);
    assert.deepEqual(t.bytes, [...Buffer.from(t.token, "utf8")]);
  }
  // The answer's text, less what its end-of-turn token decodes to.
  const spelled = content.map((t) => t.token).join("");
  assert.ok(spelled.startsWith(r.choices[0].message.content), `${spelled} vs ${r.choices[0].message.content}`);
  const plain = await ok("/chat/completions", { ...CHAT, max_tokens: 6, temperature: 0 });
  assert.equal(plain.choices[0].logprobs, null);
});

test("logprobs are the model's distribution, not the sampling one: a sampled first token has the greedy list's value", async () => {
  // Token ids, not texts: single bytes of the byte tokenizer would all print as U+FFFD.
  const body = { ...CHAT, model: "base", max_tokens: 1, return_tokens_as_token_ids: true };
  const greedy = await ok("/chat/completions", { ...body, temperature: 0, logprobs: true, top_logprobs: 20 });
  const top = greedy.choices[0].logprobs.content[0].top_logprobs as { token: string; logprob: number }[];
  assert.equal(top.length, 20);
  assert.match(top[0]!.token, /^token_id:\d+$/);
  let checked = 0;
  for (let seed = 0; seed < 8; seed++) {
    const s = await ok("/chat/completions", { ...body, temperature: 1.3, seed, logprobs: true });
    const [first] = s.choices[0].logprobs.content as Json[];
    assert.deepEqual(first.top_logprobs, []);
    const same = top.find((t) => t.token === first.token);
    if (same) {
      assert.ok(Math.abs(first.logprob - same.logprob) < 1e-6, `seed ${seed}: ${first.logprob} vs ${same.logprob}`);
      checked++;
    }
  }
  assert.ok(checked > 0, "no sampled token was among the greedy top 20");
});

test("completion logprobs: one entry per token, with the k likeliest and text offsets", async () => {
  const body = { model: "r2", prompt: PROMPT, max_tokens: 5, ignore_eos: true, temperature: 0, return_token_ids: true };
  const r = await ok("/completions", { ...body, logprobs: 3 });
  const lp = r.choices[0].logprobs;
  const n = r.choices[0].token_ids.length;
  assert.equal(n, 5);
  assert.equal(lp.tokens.length, n);
  assert.equal(lp.token_logprobs.length, n);
  assert.equal(lp.top_logprobs.length, n);
  assert.equal(lp.text_offset[0], 0);
  for (let i = 0; i < n; i++) {
    const values = Object.values(lp.top_logprobs[i] as Record<string, number>);
    assert.ok(values.length >= 1 && values.length <= 3);
    // greedy: the token drawn is the likeliest
    assert.equal(lp.token_logprobs[i], Math.max(...values));
    if (i > 0) assert.equal(lp.text_offset[i], lp.text_offset[i - 1] + lp.tokens[i - 1].length);
  }
});

test("out-of-range n and log-probability fields are 400s naming the field", async () => {
  const cases: [string, object, string][] = [
    ["/completions", { model: "base", prompt: "x", n: 17 }, "n"],
    ["/completions", { model: "base", prompt: "x", n: 0 }, "n"],
    ["/completions", { model: "base", prompt: "x", logprobs: 6 }, "logprobs"],
    ["/chat/completions", { ...CHAT, logprobs: true, top_logprobs: 21 }, "top_logprobs"],
    ["/chat/completions", { ...CHAT, top_logprobs: 2 }, "top_logprobs"],
    ["/chat/completions", { ...CHAT, logprobs: 3 }, "logprobs"],
  ];
  for (const [path, body, param] of cases) {
    const r = await postJson(`${baseUrl(server)}${path}`, body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.error.param, param, JSON.stringify(r.json));
  }
});
