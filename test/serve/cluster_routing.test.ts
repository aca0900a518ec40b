// Serving on the cluster as `make cluster-up` runs it: a coordinator with --serve-http and two workers
// started with --serve, each holding the base and two adapters. The coordinator routes every request to a
// worker holding its model; a job's adapter named by job id is hot-loaded on demand; a worker that hangs
// and then dies loses no request: what it held is retried on the other.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { JOBS_BUCKET } from "../../proto/job_subjects.js";
import { encodeJobRecord } from "../../proto/job_record_codec.js";
import { finalLayout } from "../../proto/output_layout.js";
import { CoordinatorProcess, killAllCoordinatorProcesses } from "../helpers/coordinator_process.js";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";
import { freePort, waitUntil } from "../helpers/processes.js";
import { runCli } from "../helpers/run_cli.js";
import { craftAdapter, tempDir } from "../helpers/lora_adapters.js";
import {
  ADAPTER_SETTINGS,
  postJson,
  SERVE_BASE_CONFIG,
  serveFixture,
  type ServeFixture,
} from "../helpers/serve_fixtures.js";
import { killAllWorkerProcesses, WorkerProcess } from "../helpers/worker_process.js";

const PROMPT = [72, 101, 108, 108, 111, 44, 32];
const MAX_NEW = 12;

let nats: NatsServer;
let fixture: ServeFixture;
let coordinator: CoordinatorProcess;
let workers: WorkerProcess[];
let url: string;

async function logsOnFailure<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    const logs = [
      `coordinator:\n${coordinator.log
        .map((l) => JSON.stringify(l))
        .join("\n")
        .slice(-4000)}`,
      ...workers.map((w) => `${w.id}:\n${w.log.slice(-4000)}`),
    ];
    throw new Error(`${(err as Error).message}\n${logs.join("\n")}`, { cause: err });
  }
}

before(async () => {
  nats = await startNatsServer();
  fixture = await serveFixture();
  const port = await freePort();
  url = `http://127.0.0.1:${port}/v1`;
  coordinator = CoordinatorProcess.start(nats.url, ["--serve-http", `127.0.0.1:${port}`]);
  const serveArgs = [
    "--serve",
    fixture.baseDir,
    "--serve-name",
    "base",
    "--serve-adapter",
    `r2=${fixture.adapters.r2}`,
    "--serve-adapter",
    `r4=${fixture.adapters.r4}`,
    "--adapter-root",
    os.tmpdir(),
  ];
  workers = ["serve-a", "serve-b"].map((id) => WorkerProcess.start(nats.url, id, serveArgs));
  await logsOnFailure(async () => {
    for (const w of workers)
      await waitUntil(
        async () => w.log.includes("registered with the coordinator") && w.log.includes('"msg":"serving"'),
        `${w.id} to serve and register`,
        180_000,
      );
    // Both workers' heartbeats, with what they serve, have reached the coordinator.
    await waitUntil(
      async () => {
        try {
          const r = await fetch(`${url}/models`);
          const ids = ((await r.json()) as { data: { id: string }[] }).data.map((m) => m.id);
          return ["base", "r2", "r4"].every((m) => ids.includes(m));
        } catch {
          return false;
        }
      },
      "the coordinator to list the served models",
      60_000,
    );
    await new Promise((r) => setTimeout(r, 3_000));
  });
});

after(async () => {
  await killAllWorkerProcesses();
  await killAllCoordinatorProcesses();
  await nats?.stop();
});

async function cliTokens(adapterDir: string | null): Promise<number[]> {
  const args = ["generate", "--model", fixture.baseDir, "--prompt-ids", PROMPT.join(","), "--max-new", String(MAX_NEW)];
  if (adapterDir) args.push("--adapter", adapterDir);
  const r = await runCli(args, {}, 120_000);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim().split(",").map(Number);
}

async function servedTokens(model: string): Promise<number[]> {
  const r = await postJson(`${url}/completions`, {
    model,
    prompt: PROMPT,
    max_tokens: MAX_NEW,
    temperature: 0,
    return_token_ids: true,
  });
  assert.equal(r.status, 200, `${model}: ${JSON.stringify(r.json)}`);
  return r.json.choices[0].token_ids as number[];
}

const expected: Record<string, number[]> = {};

test("requests for two adapters and the base, routed by the coordinator, generate what `ringtune generate` does", async () => {
  await logsOnFailure(async () => {
    expected.base = await cliTokens(null);
    expected.r2 = await cliTokens(fixture.adapters.r2!);
    expected.r4 = await cliTokens(fixture.adapters.r4!);
    assert.notDeepEqual(expected.r2, expected.r4, "the fixture's adapters should change greedy outputs");
    const models = ["base", "r2", "r4", "r2", "r4", "base"];
    const got = await Promise.all(models.map(servedTokens));
    models.forEach((m, i) => assert.deepEqual(got[i], expected[m], `request ${i} for ${m}`));
  });
});

test("a streamed chat through the coordinator arrives in chunks and ends with [DONE]", async () => {
  await logsOnFailure(async () => {
    const body = { model: "r4", messages: [{ role: "user", content: "Hi" }], max_tokens: 8, temperature: 0 };
    const plain = await postJson(`${url}/chat/completions`, body);
    assert.equal(plain.status, 200, JSON.stringify(plain.json));
    const res = await fetch(`${url}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...body, stream: true }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
    const events = (await res.text()).split("\n\n").filter((e) => e.startsWith("data: "));
    assert.equal(events.at(-1), "data: [DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
    assert.equal(text, plain.json.choices[0].message.content);
    assert.equal(chunks.at(-1).choices[0].finish_reason, plain.json.choices[0].finish_reason);
  });
});

test("an unknown model is a 404 naming what the cluster serves", async () => {
  const r = await postJson(`${url}/completions`, { model: "nope", prompt: "x", max_tokens: 1 });
  assert.equal(r.status, 404);
  assert.equal(r.json.error.code, "model_not_found");
  assert.match(r.json.error.message, /'nope' does not exist; served here: .*r2/);
});

test("a finished job's adapter, named by its job id, is hot-loaded on a worker on demand and served", async () => {
  await logsOnFailure(async () => {
    // A LoRA job's outputs as the trainer leaves them: the adapter under final/adapter.
    const output = tempDir("ringtune-serve-job-");
    const adapter = craftAdapter({ settings: ADAPTER_SETTINGS.r8!, cfg: SERVE_BASE_CONFIG });
    mkdirSync(path.dirname(finalLayout(output).adapter), { recursive: true });
    cpSync(adapter, finalLayout(output).adapter, { recursive: true });
    const id = "job-served-r8";
    const nc = await connect({ servers: nats.url });
    try {
      const kv = await new Kvm(nc).open(JOBS_BUCKET);
      const now = new Date().toISOString();
      await kv.put(
        id,
        encodeJobRecord({
          id,
          status: "completed",
          spec: {},
          base_dir: output,
          created_at: now,
          updated_at: now,
          step: 1,
          total_steps: 1,
          train_loss: {},
          output,
          workers: [],
        }),
      );
    } finally {
      await nc.close();
    }
    // Two requests at once: the adapter loads once, both are answered.
    const [a, b] = await Promise.all([servedTokens(id), servedTokens(id)]);
    const want = await cliTokens(adapter);
    assert.deepEqual(a, want);
    assert.deepEqual(b, want);
  });
});

test("requests held by a worker that hangs and then dies are answered by the other worker", async () => {
  await logsOnFailure(async () => {
    const [a, b] = workers as [WorkerProcess, WorkerProcess];
    // serve-a is least loaded and first by id: the router sends it the first of each pair of requests.
    a.pause();
    const models = ["r2", "r4", "r2", "r4"];
    const replies = Promise.all(models.map(servedTokens));
    await new Promise((r) => setTimeout(r, 1_000));
    await a.kill();
    const got = await replies;
    models.forEach((m, i) => assert.deepEqual(got[i], expected[m], `request ${i} for ${m}`));
    assert.ok(
      coordinator.logged(/serving worker unreachable; trying the next/),
      "no request was retried: the test did not exercise the failover",
    );
    // With serve-a gone, later requests go straight to serve-b.
    assert.deepEqual(await servedTokens("r2"), expected.r2);
    assert.ok(b.running);
  });
});
