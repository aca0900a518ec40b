// A plain NATS request against a live server: the subject names the model, the body is OpenAI's request
// JSON, the reply OpenAI's response; `stream: true` gets one message per chunk and an empty one at the
// end; two servers of one model share its requests through the queue group.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { connect, createInbox, type NatsConnection } from "@nats-io/transport-node";
import { serveSubjects } from "../../proto/serve_subjects.js";
import type { RunningServer } from "../../serving/server.js";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";
import { serveFixture, startTestServer, type Json, type ServeFixture } from "../helpers/serve_fixtures.js";

let nats: NatsServer;
let fixture: ServeFixture;
let serverNc: NatsConnection;
let clientNc: NatsConnection;
let server: RunningServer;

before(async () => {
  nats = await startNatsServer();
  fixture = await serveFixture();
  serverNc = await connect({ servers: nats.url });
  clientNc = await connect({ servers: nats.url });
  server = await startTestServer(fixture, { http: undefined, nats: serverNc });
});

after(async () => {
  await server?.close();
  await serverNc?.close();
  await clientNc?.close();
  await nats?.stop();
});

const REQUEST = { prompt: [72, 105, 33], max_tokens: 10, temperature: 0, ignore_eos: true, return_token_ids: true };

async function request(subject: string, body: unknown): Promise<Json> {
  const reply = await clientNc.request(subject, JSON.stringify(body), { timeout: 60_000 });
  return reply.json();
}

test("a completion request on the adapter's subject is answered with OpenAI's response", async () => {
  const r = await request(serveSubjects.completions("r4"), REQUEST);
  assert.equal(r.object, "text_completion");
  assert.equal(r.model, "r4");
  assert.equal(r.choices[0].token_ids.length, 10);
  assert.equal(r.choices[0].finish_reason, "length");
  // the same request on another adapter's subject is served by that adapter
  const other = await request(serveSubjects.completions("r8"), REQUEST);
  assert.notDeepEqual(other.choices[0].token_ids, r.choices[0].token_ids);
});

test("a streamed request gets its chunks in order, then an empty message", async () => {
  const whole = await request(serveSubjects.completions("r2"), REQUEST);
  const inbox = createInbox();
  const sub = clientNc.subscribe(inbox);
  clientNc.publish(serveSubjects.completions("r2"), JSON.stringify({ ...REQUEST, stream: true }), { reply: inbox });
  let text = "";
  let finish = null;
  for await (const m of sub) {
    if (m.data.length === 0) break;
    const chunk = m.json<{ choices: { text: string; finish_reason: string | null }[] }>();
    text += chunk.choices[0]!.text;
    finish = chunk.choices[0]!.finish_reason ?? finish;
  }
  assert.equal(text, whole.choices[0].text);
  assert.equal(finish, "length");
});

test("a chat request over NATS is rendered with the template and answered", async () => {
  const r = await request(serveSubjects.chat("base"), {
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 4,
    temperature: 0,
  });
  assert.equal(r.object, "chat.completion");
  assert.equal(typeof r.choices[0].message.content, "string");
  assert.ok(r.usage.prompt_tokens > 2);
});

test("a bad request gets an OpenAI error object on the reply subject", async () => {
  const r = await request(serveSubjects.completions("r4"), { prompt: [1, 2], top_p: 0 });
  assert.equal(r.error.type, "invalid_request_error");
  assert.equal(r.error.param, "top_p");
  const bad = await clientNc.request(serveSubjects.completions("r4"), "{not json", { timeout: 10_000 });
  assert.equal(bad.json<{ error: { code: string } }>().error.code, "bad_json");
});

test("adapters load and unload over NATS, and their subjects come and go with them", async () => {
  const loaded = await request(serveSubjects.loadAdapter("base"), {
    lora_name: "extra",
    lora_path: fixture.adapters.r8,
  });
  assert.equal(loaded.ok, true, JSON.stringify(loaded));
  const r = await request(serveSubjects.completions("extra"), REQUEST);
  const r8 = await request(serveSubjects.completions("r8"), REQUEST);
  assert.deepEqual(r.choices[0].token_ids, r8.choices[0].token_ids);
  const unloaded = await request(serveSubjects.unloadAdapter("base"), { lora_name: "extra" });
  assert.equal(unloaded.ok, true);
  await assert.rejects(
    clientNc.request(serveSubjects.completions("extra"), JSON.stringify(REQUEST), { timeout: 2_000 }),
    /503|no responders/i,
  );
});

test("two servers of one model share its requests through the queue group", async () => {
  const second = await startTestServer(fixture, { http: undefined, nats: serverNc });
  try {
    const before = [server, second].map((s) => s.ctx.engine.stepSizes.length);
    await Promise.all(
      Array.from({ length: 12 }, () => request(serveSubjects.completions("base"), { ...REQUEST, max_tokens: 2 })),
    );
    const after = [server, second].map((s, i) => s.ctx.engine.stepSizes.length - before[i]!);
    assert.ok(after[0]! > 0 && after[1]! > 0, `steps per server: ${after.join(", ")}`);
  } finally {
    await second.close();
  }
});
