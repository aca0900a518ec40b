// A serving worker under deploy/nats/auth.conf's worker user, behind a coordinator under its own: the
// routed HTTP door answers (the worker may answer on ringtune.serve.> and stream to the caller's inbox),
// a job's adapter named by id loads (the worker may read job records), a streamed request ends, and an
// HTTP client that drops its stream stops the generation on the worker (the coordinator's NATS cancel). The
// door takes only clients that send its API key, as cluster-up's SERVE starts it: every route refuses others.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { Coordinator } from "../../coordinator/main.js";
import { Worker } from "../../worker/main.js";
import { JOBS_BUCKET } from "../../proto/job_subjects.js";
import { encodeJobRecord } from "../../proto/job_record_codec.js";
import { finalLayout } from "../../proto/output_layout.js";
import type { NatsServer } from "../helpers/nats_server.js";
import { startNatsServerWithUsers, type NatsWithUsers } from "../helpers/nats_users.js";
import { freePort, waitUntil } from "../helpers/processes.js";
import { tempDir } from "../helpers/lora_adapters.js";
import { postJson, serveFixture } from "../helpers/serve_fixtures.js";

const quiet = pino({ level: process.env.RINGTUNE_TEST_LOG ?? "silent" });
const API_KEY = "k-routed-door-key";
const AUTH = { authorization: `Bearer ${API_KEY}` };

let server: NatsServer;
let users: NatsWithUsers;
let coordinator: Coordinator;
let worker: Worker;
let url: string;

before(async () => {
  users = await startNatsServerWithUsers({ workerIds: ["sw0"] });
  server = users.server;
  const port = await freePort();
  url = `http://127.0.0.1:${port}/v1`;
  coordinator = await Coordinator.start({
    natsUrl: server.url,
    auth: users.as("coordinator"),
    log: quiet,
    serveHttp: { host: "127.0.0.1", port, apiKey: API_KEY },
  });
  const fixture = await serveFixture();
  // A finished LoRA job's record, with its adapter where the trainer leaves it.
  const output = tempDir("ringtune-serve-auth-job-");
  mkdirSync(path.join(output, "final"), { recursive: true });
  cpSync(fixture.adapters.r4!, finalLayout(output).adapter, { recursive: true });
  const nc = await connect({ servers: server.url, ...users.as("coordinator") });
  const now = new Date().toISOString();
  await (
    await new Kvm(nc).open(JOBS_BUCKET)
  ).put(
    "job-auth-r4",
    encodeJobRecord({
      ...{ id: "job-auth-r4", status: "completed", spec: {}, base_dir: output, created_at: now, updated_at: now },
      ...{ step: 1, total_steps: 1, train_loss: {}, output, workers: [] },
    }),
  );
  await nc.close();
  worker = await Worker.start({
    natsUrl: server.url,
    auth: users.asWorker("sw0"),
    id: "sw0",
    log: quiet,
    serve: {
      modelDir: fixture.baseDir,
      name: "base",
      adapters: [{ name: "r2", source: fixture.adapters.r2! }],
      adapterRoots: [os.tmpdir()], // where the fixture's job output lies
    },
  });
  await waitUntil(
    async () => {
      const r = await fetch(`${url}/models`, { headers: AUTH });
      return ((await r.json()) as { data: unknown[] }).data.length > 0;
    },
    "the worker's heartbeat to reach the coordinator",
    30_000,
  );
});

after(async () => {
  await worker?.close().catch(() => {});
  await coordinator?.close().catch(() => {});
  await server?.stop();
});

test("under per-role users, a serving worker answers routed requests, streams, and loads a job's adapter by id", async () => {
  const plain = await postJson(
    `${url}/completions`,
    { model: "r2", prompt: "Hi", max_tokens: 4, ignore_eos: true },
    AUTH,
  );
  assert.equal(plain.status, 200, JSON.stringify(plain.json));
  assert.equal(plain.json.usage.completion_tokens, 4);
  const body = { model: "base", prompt: "Hi", max_tokens: 4, ignore_eos: true, temperature: 0 };
  const whole = await postJson(`${url}/completions`, body, AUTH);
  const res = await fetch(`${url}/completions`, {
    method: "POST",
    headers: AUTH,
    body: JSON.stringify({ ...body, stream: true }),
  });
  const events = (await res.text()).split("\n\n").filter((e) => e.startsWith("data: "));
  assert.equal(events.at(-1), "data: [DONE]");
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
  assert.equal(chunks.map((c) => c.choices[0].text).join(""), whole.json.choices[0].text);
  assert.equal(chunks.at(-1).choices[0].finish_reason, "length");
  const byJob = await postJson(`${url}/completions`, { model: "job-auth-r4", prompt: "Hi", max_tokens: 2 }, AUTH);
  assert.equal(byJob.status, 200, JSON.stringify(byJob.json));
});

test("an HTTP client that drops a stream at the coordinator's door stops the generation on the worker", async () => {
  const engine = worker.serving!.server.ctx.engine;
  const cancelledBefore = engine.finished.cancelled;
  const aborter = new AbortController();
  const res = await fetch(`${url}/completions`, {
    method: "POST",
    headers: AUTH,
    body: JSON.stringify({ model: "base", prompt: "Hi", max_tokens: 240, ignore_eos: true, stream: true }),
    signal: aborter.signal,
  });
  const reader = res.body!.getReader();
  await reader.read(); // the first chunk: the generation runs on the worker
  aborter.abort();
  await waitUntil(async () => engine.finished.cancelled > cancelledBefore, "the worker to cancel", 30_000);
  assert.equal(engine.load.live, 0);
});

test("the routed door refuses a client without its API key, or with another, on every route", async () => {
  const engine = worker.serving!.server.ctx.engine;
  const refused: Record<string, string>[] = [{}, { authorization: "Bearer not-the-key" }, { authorization: API_KEY }];
  for (const headers of refused) {
    const chat = await postJson(
      `${url}/chat/completions`,
      { model: "base", messages: [{ role: "user", content: "Hi" }] },
      headers,
    );
    assert.equal(chat.status, 401, JSON.stringify(chat.json));
    assert.equal(chat.json.error.code, "invalid_api_key");
    const load = await postJson(`${url}/load_lora_adapter`, { lora_name: "planted", lora_path: os.tmpdir() }, headers);
    assert.equal(load.status, 401);
    assert.equal((await fetch(`${url}/models`, { headers })).status, 401);
  }
  assert.equal(engine.load.live, 0);
  // the control: the key gets an answer, and it names no adapter loaded by the refused requests
  const models = await fetch(`${url}/models`, { headers: AUTH });
  assert.equal(models.status, 200);
  const names = ((await models.json()) as { data: { id: string }[] }).data.map((m) => m.id);
  assert.ok(!names.includes("planted"), names.join(", "));
});
